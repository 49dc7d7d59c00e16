"""Speed of quant_graph on this machine against what a user would otherwise run, as ratios
measured interleaved in one run (issue 16's targets), with one summary line per target.

    python benchmarks/bench.py                    # every section, LLM-sized shapes
    python benchmarks/bench.py --quick            # small shapes, a smoke run (seconds to a minute)
    python benchmarks/bench.py decode sweep       # only the sections named
    python benchmarks/bench.py --threads 1 --rounds 11
    python benchmarks/bench.py --markdown bench.md  # also write the run's tables as markdown

Sections:
  large     each op's main modes at a large shape: the full eager call against inductor's
            compiled code for the same formula (torch.compile(composite, dynamic=True)), and
            the C kernel alone (the bound C function, replaying one recorded call into its
            already-touched outputs) against ``dst.copy_(x)`` into preallocated memory, the
            bandwidth bound. The copy reads and writes x's bytes; a kernel writes fewer
            (int8 out), so a ratio above 1.0 is possible.
  decode    each public call on one token [1, 7168] against one aten op (``x.abs()``) on it
  compiled  each op inside torch.compile(backend="quant_graph", dynamic=True) against
            inductor's compiled composite, at T=1 and at the large T
  sweep     npu_dynamic_quant_asymmetric and npu_dynamic_quant per token over T = 1 .. 4096 at
            H = 7168: eager and compiled against inductor's compiled composite
  compile   first compile of examples/moe_ffn.py with backend="quant_graph" and with
            backend="inductor", each in a fresh subprocess with an empty inductor/AOT cache;
            the time of ``quant-graph dump`` on it and of importing quant_graph
  peers     per-token asymmetric int8 by torch.ops.quantized_decomposed and by torchao
            (choose_qparams_affine + quantize_affine; requirements-bench.txt pins it)
  moe       examples/moe_ffn.py end to end: eager vs compiled per token count

Every timing is the median over --rounds interleaved rounds: each round runs every variant
of a measurement once, in turn (a batch of calls where one call is too short to time), so
a change in the machine's speed during the run hits all variants alike. Timings on a shared
machine are noisy; compare the ratios, which come from one run.

Threads: --threads N sets torch.set_num_threads (the C kernels use as many). With 2 threads,
small calls made back to back may stall in OpenMP: each parallel region waits until every
worker thread runs, and a worker that another process keeps off its core (or that went to
sleep between calls) costs a scheduler time slice, milliseconds, on a call of microseconds.
On a loaded 2-core machine every such call can stall, and the medians show the stall (calls
of any size all near one time, ~16 ms); the header's load average says whether that was so.
--threads 1 shows the times without it.

--markdown PATH writes, after the run, a header line (when, where, how) and one markdown
table per section run plus the summary's, ready to paste into README.md. The sections
record each measurement once, in a Table, which both the console lines and the file read.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import torch

import quant_graph as qg
from quant_graph import native

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
QUICK_SHAPE = (512, 1024)
DECODE_HIDDEN = 7168
SWEEP_TOKENS = (1, 4, 16, 64, 256, 4096)


def median_seconds(variants: dict[str, Callable[[], object]], rounds: int, batch_s: float = 0.01) -> dict[str, float]:
    """Median seconds per call of each variant over interleaved rounds. Each variant is
    called once first (compiles, caches); a call shorter than ``batch_s`` is timed in a batch
    of calls that long, since one call of a few microseconds is below the clock's noise."""
    batch = {}
    for name, fn in variants.items():
        fn()
        start = time.perf_counter()
        fn()
        batch[name] = max(1, math.ceil(batch_s / max(time.perf_counter() - start, 1e-7)))
    samples = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            for _ in range(batch[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / batch[name])
    return {name: statistics.median(times) for name, times in samples.items()}


# --- targets and the summary -------------------------------------------------------------

class Target(NamedTuple):
    name: str
    ratio: str  # what the ratio divides
    at_least: bool  # whether the target is a lower bound (else an upper one)
    bound: float

    def met(self, ratio: float) -> bool:
        return ratio >= self.bound if self.at_least else ratio <= self.bound

    def describe(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.bound:g}x"


EAGER_VS_INDUCTOR = Target("eager_vs_inductor", "inductor's compiled composite time / eager call time", True, 1.2)
KERNEL_VS_COPY = Target("kernel_vs_copy", "dst.copy_(x) time / C kernel alone time", True, 0.7)
DECODE_VS_ATEN = Target("decode_vs_aten", "public call time on [1, 7168] / x.abs() time", False, 4.0)
COMPILED_VS_INDUCTOR = Target("compiled_vs_inductor",
                              'backend="quant_graph" compiled op time / inductor\'s compiled composite time',
                              False, 1.0)
COMPILE_VS_INDUCTOR = Target("compile_vs_inductor",
                             'MoE first compile, backend="quant_graph" / backend="inductor"', False, 1.1)


class Check(NamedTuple):
    """One ratio measured against a target: a summary line, and a row of the summary table."""

    target: Target
    ratio: float
    subject: str

    @property
    def verdict(self) -> str:
        return "PASS" if self.target.met(self.ratio) else "MISS"

    def line(self) -> str:
        return (f"{self.verdict}  {self.target.name:<20} {self.ratio:7.2f}x  (target {self.target.describe()})  "
                f"{self.subject}")


SUMMARY: list[Check] = []
SUMMARY_HEADING = "summary: one line per target (ratios from this run)"


def check(target: Target, ratio: float, subject: str) -> None:
    result = Check(target, ratio, subject)
    SUMMARY.append(result)
    print(f"  {result.line()}")


# --- the run's measurements as tables (what --markdown writes) ---------------------------

class Table:
    """One section's measurements, a row per measured case. ``columns`` maps each header to
    the format of its numbers ("" for text); a cell that is not a number is written as is.
    A table joins TABLES, the run's tables in order, when made."""

    def __init__(self, section: str, heading: str, columns: dict[str, str]):
        self.section, self.heading, self.columns = section, heading, columns
        self.rows: list[tuple] = []
        self.notes: list[str] = []  # lines under the table: what a column cannot hold
        TABLES.append(self)

    def add(self, *cells) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"table {self.section!r}: a row of {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(cells)

    def markdown(self) -> str:
        def cell(value, fmt):
            text = format(value, fmt) if isinstance(value, (int, float)) and fmt else str(value)
            return text.replace("|", "\\|")

        lines = [f"#### {self.heading}", "",
                 "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" if not fmt else "---:" for fmt in self.columns.values()) + "|"]
        lines += ["| " + " | ".join(cell(v, fmt) for v, fmt in zip(row, self.columns.values(), strict=True)) + " |"
                  for row in self.rows]
        if self.notes:
            lines += [""] + self.notes
        return "\n".join(lines)


TABLES: list[Table] = []
MS, US, RATIO, SECONDS = ".2f", ".1f", ".2f", ".1f"


def summary_table() -> Table:
    table = Table("summary", SUMMARY_HEADING,
                  {"target": "", "ratio": RATIO, "PASS/MISS": "", "subject": ""})
    for result in SUMMARY:
        table.add(f"{result.target.name} ({result.target.describe()})", result.ratio, result.verdict, result.subject)
    return table


# --- one straightforward torch composite per SPEC formula (what a user would write) ------

def composite_dynamic_quant_asymmetric(x):
    xf = x.float()
    row_max, row_min = xf.amax(-1, keepdim=True), xf.amin(-1, keepdim=True)
    scale = (row_max - row_min) / 255
    offset = 127 - row_max / scale
    y = torch.round(xf / scale + offset).clamp(-128, 127).to(torch.int8)
    return y, scale.squeeze(-1), offset.squeeze(-1)


def composite_dynamic_quant(x):
    xf = x.float()
    scale = xf.abs().amax(-1, keepdim=True) / 127
    y = torch.round(xf / scale).clamp(-128, 127).to(torch.int8)
    return y, scale.squeeze(-1)


def composite_dynamic_quant_perchannel(x):
    xf = x.float()
    scale = xf.abs().amax(-2, keepdim=True) / 127
    y = torch.round(xf / scale).clamp(-128, 127).to(torch.int8)
    return y, scale.squeeze(-2)


def composite_quantize(x, scales, zero_points):
    v = x.float() * scales.float() + zero_points.float()
    return torch.round(v).clamp(-128, 127).to(torch.int8)


def composite_quantize_float8(x, scale):
    v = x.float() * (1.0 / scale.float())
    return v.nan_to_num(0.0).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)


def composite_group_quant(x, scale, group_index, offset):
    counts = torch.diff(group_index, prepend=group_index.new_zeros(1))
    row_scale = scale.repeat_interleave(counts, dim=0, output_size=x.shape[0])
    return torch.round(x.float() * row_scale + offset).clamp(-128, 127).to(torch.int8)


def composite_dequant_swiglu_quant(x, weight_scale, activation_scale, quant_scale, group_index):
    rows = torch.repeat_interleave(torch.arange(group_index.numel()), group_index, output_size=x.shape[0])
    xf = x.float() * weight_scale[rows] * activation_scale.unsqueeze(-1)
    a, b = xf.chunk(2, dim=-1)
    out = torch.nn.functional.silu(b) * a * quant_scale[rows]
    scale = out.abs().amax(-1, keepdim=True) / 127
    return torch.round(out / scale).clamp(-128, 127).to(torch.int8), scale.squeeze(-1)


def composite_dequant_swiglu_quant_gpt_oss(x, weight_scale, activation_scale, quant_scale):
    xf = x.float() * weight_scale * activation_scale.unsqueeze(-1)
    gate, linear = xf[:, 0::2].clamp(max=7.0), xf[:, 1::2].clamp(-7.0, 7.0)
    out = gate * torch.sigmoid(1.702 * gate) * (linear + 1.0) * quant_scale
    scale = out.abs().amax(-1, keepdim=True) / 127
    return torch.round(out / scale).clamp(-128, 127).to(torch.int8), scale.squeeze(-1)


# --- the cases: an op's call and its composite, on inputs of [tokens, hidden] -------------

class Case(NamedTuple):
    title: str
    public: Callable  # quant_graph's call, a function of args only (so torch.compile can take it)
    composite: Callable
    args: tuple


CASES: dict[str, tuple[Callable[[int, int], Case], tuple[int, int]]] = {}


def case(large_tokens: int, large_hidden: int):
    def register(build):
        CASES[build.__name__] = (build, (large_tokens, large_hidden))
        return build
    return register


def group_ends(tokens, groups):
    """Cumulative token ends of ``groups`` near-equal groups."""
    return torch.linspace(0, tokens, groups + 1)[1:].round().to(torch.int64)


@case(16384, 7168)
def dynamic_quant_asymmetric(tokens, hidden):
    return Case(f"npu_dynamic_quant_asymmetric int8 per token, fp16 [{tokens}, {hidden}]",
                lambda x: qg.npu_dynamic_quant_asymmetric(x), composite_dynamic_quant_asymmetric,
                (torch.randn(tokens, hidden, dtype=torch.float16),))


@case(16384, 7168)
def dynamic_quant(tokens, hidden):
    return Case(f"npu_dynamic_quant int8 per token, fp16 [{tokens}, {hidden}]",
                lambda x: qg.npu_dynamic_quant(x), composite_dynamic_quant,
                (torch.randn(tokens, hidden, dtype=torch.float16),))


@case(16384, 7168)
def dynamic_quant_perchannel(tokens, hidden):
    return Case(f"npu_dynamic_quant int8 per channel, fp16 [{tokens}, {hidden}]",
                lambda x: qg.npu_dynamic_quant(x, quant_mode="perchannel"), composite_dynamic_quant_perchannel,
                (torch.randn(tokens, hidden, dtype=torch.float16),))


@case(8192, 7168)
def quantize(tokens, hidden):
    x = torch.randn(tokens, hidden, dtype=torch.float16)
    scales, zero_points = torch.rand(hidden, dtype=torch.float16) + 0.5, torch.randn(hidden, dtype=torch.float16)
    return Case(f"npu_quantize div_mode=False qint8, fp16 [{tokens}, {hidden}]",
                lambda x, s, z: qg.npu_quantize(x, s, z, torch.qint8, -1, False), composite_quantize,
                (x, scales, zero_points))


@case(8192, 7168)
def quantize_float8(tokens, hidden):
    """cann-recipes' per-tensor call: a 1-element scale, div_mode=True, float8_e4m3fn out."""
    return Case(f"npu_quantize div_mode=True float8_e4m3fn per tensor, bf16 [{tokens}, {hidden}]",
                lambda x, s: qg.npu_quantize(x, s, None, torch.float8_e4m3fn, -1, True), composite_quantize_float8,
                (torch.randn(tokens, hidden, dtype=torch.bfloat16), torch.tensor([0.02])))


@case(8192, 7168)
def group_quant(tokens, hidden):
    groups = min(8, tokens)
    x = torch.randn(tokens, hidden, dtype=torch.float16)
    scale, offset = torch.rand(groups, hidden) * 50, torch.tensor([0.25])
    return Case(f"npu_group_quant int8, fp16 [{tokens}, {hidden}], {groups} groups",
                lambda x, s, g, o: qg.npu_group_quant(x, s, g, offset=o), composite_group_quant,
                (x, scale, group_ends(tokens, groups), offset))


@case(8192, 8192)
def dequant_swiglu_quant(tokens, hidden):
    groups, h = min(8, tokens), hidden // 2
    x = torch.randint(-500, 500, (tokens, hidden), dtype=torch.int32)
    weight_scale, activation_scale = torch.rand(groups, hidden) * 0.01, torch.rand(tokens) * 0.01
    counts = torch.diff(group_ends(tokens, groups), prepend=torch.zeros(1, dtype=torch.int64))
    return Case(f"npu_dequant_swiglu_quant dynamic, int32 [{tokens}, {hidden}], {groups} groups",
                lambda x, w, a, q, g: qg.npu_dequant_swiglu_quant(x, weight_scale=w, activation_scale=a,
                                                                  quant_scale=q, group_index=g, quant_mode=1),
                composite_dequant_swiglu_quant,
                (x, weight_scale, activation_scale, torch.rand(groups, h) + 0.5, counts))


@case(8192, 8192)
def dequant_swiglu_quant_gpt_oss(tokens, hidden):
    x = torch.randint(-500, 500, (tokens, hidden), dtype=torch.int32)
    return Case(f"npu_dequant_swiglu_quant swiglu_mode=1 (GPT-OSS) dynamic, int32 [{tokens}, {hidden}]",
                lambda x, w, a, q: qg.npu_dequant_swiglu_quant(x, weight_scale=w, activation_scale=a,
                                                               quant_scale=q, quant_mode=1, swiglu_mode=1),
                composite_dequant_swiglu_quant_gpt_oss,
                (x, torch.rand(hidden) * 0.01, torch.rand(tokens) * 0.01, torch.rand(hidden // 2) + 0.5))


def large_shape(name, quick):
    return QUICK_SHAPE if quick else CASES[name][1]


def recorded_kernel_calls(call: Callable[[], object]) -> Callable[[], object] | None:
    """The C kernel calls that ``call`` makes, as a replay: the bound C functions on the
    arguments recorded from one call, writing again into that call's outputs (already
    touched, so the replay pays no page faults). None when ``call`` runs no C kernel (a
    format without a C writer, or the portable path). The call is recorded on the Python
    kernels (the C++ dispatcher kernels call the same C functions, out of ctypes' sight)."""
    recorded = []
    record_and_run = native.Kernel.__call__

    def recording(kernel, **args):
        recorded.append((kernel, dict(args)))
        record_and_run(kernel, **args)

    native.Kernel.__call__ = recording
    try:
        with native.without_dispatch():
            outputs = call()
    finally:
        native.Kernel.__call__ = record_and_run
    if not recorded:
        return None
    bound = [(kernel._function, kernel.struct(threads=torch.get_num_threads(), **{
        k: v.data_ptr() if isinstance(v, torch.Tensor) else v for k, v in args.items()})) for kernel, args in recorded]

    def replay():
        for function, struct in bound:
            function(struct)
        return recorded, outputs  # holds the tensors the structs point into

    return replay


# --- sections ------------------------------------------------------------------------

SECTIONS: dict[str, tuple[Callable, tuple[Target, ...]]] = {}


def section(name: str, *targets: Target):
    def register(fn):
        SECTIONS[name] = (fn, targets)
        return fn
    return register


def ms(seconds):
    return f"{seconds * 1e3:9{MS}}"


def us(seconds):
    return f"{seconds * 1e6:9{US}}"


def large_case(c: Case, rounds: int, table: Table) -> None:
    x = c.args[0]
    torch._dynamo.reset()
    inductor = torch.compile(c.composite, dynamic=True)
    copy_into = torch.empty_like(x)
    variants = {"eager call": lambda: c.public(*c.args), "inductor composite": lambda: inductor(*c.args),
                "dst.copy_(x)": lambda: copy_into.copy_(x)}
    kernel = recorded_kernel_calls(variants["eager call"])
    if kernel is not None:
        variants["C kernel alone"] = kernel
    t = median_seconds(variants, rounds)
    print(f"\n{c.title}\n  " + "  ".join(f"{label} {ms(s).strip()} ms" for label, s in t.items()))
    eager_vs_inductor = t["inductor composite"] / t["eager call"]
    check(EAGER_VS_INDUCTOR, eager_vs_inductor, c.title)
    if kernel is None:
        print("  no C kernel for this format: the call runs the portable torch path")
        kernel_ms = kernel_vs_copy = "no C kernel"
    else:
        kernel_ms, kernel_vs_copy = t["C kernel alone"] * 1e3, t["dst.copy_(x)"] / t["C kernel alone"]
        check(KERNEL_VS_COPY, kernel_vs_copy, c.title)
    table.add(c.title, t["eager call"] * 1e3, t["inductor composite"] * 1e3, t["dst.copy_(x)"] * 1e3, kernel_ms,
              eager_vs_inductor, kernel_vs_copy)


@section("large", EAGER_VS_INDUCTOR, KERNEL_VS_COPY)
def large(opts):
    table = Table("large", "large inputs: eager call vs inductor's compiled composite; C kernel alone vs dst.copy_(x)",
                  {"case": "", "eager ms": MS, "inductor composite ms": MS, "dst.copy_(x) ms": MS,
                   "C kernel alone ms": MS, "eager vs inductor": RATIO, "kernel vs copy": RATIO})
    print(f"\n== {table.heading}")
    for name, (build, _) in CASES.items():
        large_case(build(*large_shape(name, opts.quick)), opts.rounds, table)


@section("decode", DECODE_VS_ATEN)
def decode(opts):
    table = Table("decode", f"decode: each public call on one token [1, {DECODE_HIDDEN}] vs x.abs() on the same tensor",
                  {"case": "", "call us": US, "x.abs() us": US, "ratio": RATIO})
    print(f"\n== {table.heading}")
    for build, _ in CASES.values():
        c = build(1, DECODE_HIDDEN)
        x = c.args[0]
        t = median_seconds({"call": lambda: c.public(*c.args), "abs": x.abs}, opts.rounds)
        print(f"\n{c.title}: call {us(t['call']).strip()} us, x.abs() {us(t['abs']).strip()} us")
        check(DECODE_VS_ATEN, t["call"] / t["abs"], c.title)
        table.add(c.title, t["call"] * 1e6, t["abs"] * 1e6, t["call"] / t["abs"])


def compiled_pair(c: Case):
    """The op under backend="quant_graph" and inductor's compiled composite, compiled afresh
    (a reset, so no earlier section's cache entries or recompile counts carry over)."""
    torch._dynamo.reset()
    return (torch.compile(c.public, backend="quant_graph", dynamic=True),
            torch.compile(c.composite, dynamic=True))


@section("compiled", COMPILED_VS_INDUCTOR)
def compiled(opts):
    table = Table("compiled", 'compiled graphs: the op under torch.compile(backend="quant_graph", dynamic=True) '
                  "vs inductor's compiled composite",
                  {"case": "", "T": "d", "quant_graph ms": MS, "inductor ms": MS, "ratio": RATIO})
    print(f"\n== {table.heading}")
    for name, (build, _) in CASES.items():
        for tokens in (1, large_shape(name, opts.quick)[0]):
            c = build(tokens, large_shape(name, opts.quick)[1])
            ours, inductor = compiled_pair(c)
            t = median_seconds({"quant_graph": lambda: ours(*c.args), "inductor": lambda: inductor(*c.args)},
                               opts.rounds)
            print(f"\n{c.title}: quant_graph {ms(t['quant_graph']).strip()} ms, "
                  f"inductor {ms(t['inductor']).strip()} ms")
            check(COMPILED_VS_INDUCTOR, t["quant_graph"] / t["inductor"], c.title)
            table.add(c.title, tokens, t["quant_graph"] * 1e3, t["inductor"] * 1e3, t["quant_graph"] / t["inductor"])


@section("sweep")
def sweep(opts):
    hidden = QUICK_SHAPE[1] if opts.quick else DECODE_HIDDEN
    table = Table("sweep", f"token sweep at H = {hidden}: time per call, and as a ratio to inductor's compiled "
                  "composite (below 1: faster than inductor)",
                  {"op": "", "T": "d", "eager us": US, "compiled us": US, "inductor us": US, "eager/ind": RATIO,
                   "compiled/ind": RATIO, "fastest": ""})
    print(f"\n== {table.heading}")
    for name in ("dynamic_quant_asymmetric", "dynamic_quant"):
        build = CASES[name][0]
        first = build(1, hidden)
        ours, inductor = compiled_pair(first)
        op = first.title.split(",")[0]
        print(f"\n{op}")
        print(f"  {'T':>5} {'eager us':>10} {'compiled us':>12} {'inductor us':>12} {'eager/ind':>10} "
              f"{'compiled/ind':>13}  fastest")
        for tokens in SWEEP_TOKENS:
            c = build(tokens, hidden)
            t = median_seconds({"eager": lambda: c.public(*c.args), "compiled": lambda: ours(*c.args),
                                "inductor": lambda: inductor(*c.args)}, opts.rounds)
            print(f"  {tokens:>5} {us(t['eager']):>10} {us(t['compiled']):>12} {us(t['inductor']):>12} "
                  f"{t['eager'] / t['inductor']:>10.2f} {t['compiled'] / t['inductor']:>13.2f}  {min(t, key=t.get)}")
            table.add(op, tokens, t["eager"] * 1e6, t["compiled"] * 1e6, t["inductor"] * 1e6,
                      t["eager"] / t["inductor"], t["compiled"] / t["inductor"], min(t, key=t.get))


def child_env(opts, cache_dir=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS=str(opts.threads))
    if cache_dir is not None:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache_dir  # inductor's FX graph and AOT autograd caches live under it
    return env


def moe_sizes(quick):
    """(experts, hidden, intermediate) of the MoE example as benchmarked."""
    return (8, 256, 128) if quick else (8, 2048, 1408)


FIRST_COMPILE_CHILD = """
import sys, time
import torch
torch.set_num_threads({threads})
sys.path.insert(0, {examples!r})
from moe_ffn import W8A8MoEExperts, routed_tokens
model = W8A8MoEExperts(*{sizes})
x, counts = routed_tokens(1, model.experts, model.hidden)
torch._dynamo.decorators.mark_unbacked(x, 0)
compiled = torch.compile(model, backend={backend!r}, dynamic=True, fullgraph=True)
start = time.perf_counter()
compiled(x, counts)
print(time.perf_counter() - start)
"""


def first_compile_seconds(opts, backend):
    """The MoE example's first compiled call (compile + run at T=1) in a fresh process with an empty cache."""
    source = FIRST_COMPILE_CHILD.format(threads=opts.threads, examples=str(EXAMPLES), sizes=moe_sizes(opts.quick),
                                        backend=backend)
    with tempfile.TemporaryDirectory(prefix="bench-inductor-cache-") as cache:
        done = subprocess.run([sys.executable, "-c", source], env=child_env(opts, cache), capture_output=True,
                              text=True)
    if done.returncode != 0:
        raise RuntimeError(f'the MoE example failed to compile with backend="{backend}":\n{done.stderr}')
    return float(done.stdout.split()[-1])


def wall_seconds(command, env):
    """Wall time of a subprocess, and the finished process (its exit code and stderr)."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done


@section("compile", COMPILE_VS_INDUCTOR)
def compile_time(opts):
    experts, hidden, intermediate = moe_sizes(opts.quick)
    table = Table("compile", f"compile: the MoE example ({experts} experts, hidden {hidden}, intermediate "
                  f"{intermediate}), first compiled call at T=1, each in a fresh process with an empty "
                  "inductor/AOT cache", {"measurement": "", "s": SECONDS})
    print(f"\n== {table.heading}")
    seconds = {backend: first_compile_seconds(opts, backend) for backend in ("quant_graph", "inductor")}
    print("  " + ", ".join(f'backend="{b}" {s:.1f} s' for b, s in seconds.items()))
    for backend, s in seconds.items():
        table.add(f'first compiled call, backend="{backend}"', s)
    check(COMPILE_VS_INDUCTOR, seconds["quant_graph"] / seconds["inductor"], "examples/moe_ffn.py first compile")

    with tempfile.TemporaryDirectory(prefix="bench-dump-") as scratch:
        env = child_env(opts, str(Path(scratch) / "inductor-cache"))
        python_torch_s, _ = wall_seconds([sys.executable, "-c", "import torch"], env)
        import_s, _ = wall_seconds([sys.executable, "-c", "import quant_graph.cli"], env)
        target = f"{EXAMPLES / 'moe_ffn.py'}:make_model"  # absolute: the run may start in any directory
        dump_s, done = wall_seconds([sys.executable, "-m", "quant_graph", "dump", target,
                                     "--dump-dir", str(Path(scratch) / "dump"), "--no-dot"], env)
    dump = "quant-graph dump examples/moe_ffn.py:make_model --no-dot"
    if done.returncode != 0:
        print(f"  quant-graph dump failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
        table.add(f"{dump}, wall", f"failed (exit {done.returncode})")
    else:
        print(f"  {dump}: {dump_s:.1f} s wall, of which "
              f"starting Python and importing quant_graph.cli {import_s:.1f} s (importing torch alone "
              f"{python_torch_s:.1f} s)")
        table.add(f"{dump}, wall", dump_s)
    table.add("starting Python and importing quant_graph.cli", import_s)
    table.add("starting Python and importing torch", python_torch_s)


def per_token_int8_peers(x):
    """What a user would pick instead of npu_dynamic_quant_asymmetric, by name; a name whose
    library is missing maps to why."""
    import torch.ao.quantization.fx._decomposed  # noqa: F401 - registers torch.ops.quantized_decomposed

    decomposed = torch.ops.quantized_decomposed

    def quantized_decomposed():
        scale, zero_point = decomposed.choose_qparams_per_token_asymmetric(x, torch.int8)
        return decomposed.quantize_per_token(x, scale, zero_point, -128, 127, torch.int8), scale, zero_point

    peers = {"torch.ops.quantized_decomposed": quantized_decomposed}
    try:
        from torchao.quantization.quant_primitives import MappingType, choose_qparams_affine, quantize_affine
    except ImportError as err:
        peers["torchao"] = f"cannot be imported ({err}); pip install --no-deps -r requirements-bench.txt"
        return peers
    block = (1, x.shape[-1])

    def torchao():
        scale, zero_point = choose_qparams_affine(x, MappingType.ASYMMETRIC, block, torch.int8)
        return quantize_affine(x, block, scale, zero_point, torch.int8), scale, zero_point

    peers["torchao"] = torchao
    return peers


@section("peers")
def peers(opts):
    c = dynamic_quant_asymmetric(*large_shape("dynamic_quant_asymmetric", opts.quick))
    table = Table("peers", f"peers: per-token asymmetric int8, {c.title.split(', ', 1)[1]}; time as a ratio to "
                  "quant_graph's eager call (above 1: quant_graph is faster)",
                  {"implementation": "", "ms": MS, "time / quant_graph": RATIO})
    print(f"\n== {table.heading}")
    found = per_token_int8_peers(c.args[0])
    runnable = {name: fn for name, fn in found.items() if callable(fn)}
    t = median_seconds({"quant_graph": lambda: c.public(*c.args), **runnable}, opts.rounds)
    ours = "quant_graph npu_dynamic_quant_asymmetric"
    print(f"  {ours:<42} {ms(t['quant_graph'])} ms")
    table.add(ours, t["quant_graph"] * 1e3, 1.0)
    for name, fn in found.items():
        if callable(fn):
            print(f"  {name:<42} {ms(t[name])} ms  {t[name] / t['quant_graph']:6.2f}x")
            table.add(name, t[name] * 1e3, t[name] / t["quant_graph"])
        else:
            print(f"  {name:<42} {fn}")
            table.add(name, fn, "")


@section("moe")
def moe(opts):
    """examples/moe_ffn.py end to end: eager vs torch.compile(backend="quant_graph"), recompiles."""
    from torch._dynamo.testing import CompileCounterWithBackend

    sys.path.insert(0, str(EXAMPLES))
    from moe_ffn import W8A8MoEExperts, routed_tokens

    experts, hidden, intermediate = moe_sizes(opts.quick)
    token_counts = (1, 17, 512, 4096)
    model = W8A8MoEExperts(experts, hidden, intermediate)
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("quant_graph")
    compiled_model = torch.compile(model, backend=counter, dynamic=True, fullgraph=True)
    table = Table("moe", f"moe: examples/moe_ffn.py, {experts} experts, hidden {hidden}, intermediate {intermediate}; "
                  "torch.compile(backend='quant_graph', dynamic=True, fullgraph=True)",
                  {"tokens": "d", "eager ms": MS, "compiled ms": MS, "speedup": RATIO, "compiled == eager": ""})
    print(f"\n== {table.heading}")
    print(f"  {'tokens':>6} {'eager ms':>10} {'compiled ms':>12} {'speedup':>8}  compiled == eager")
    for tokens in token_counts:
        x, counts = routed_tokens(tokens, experts, hidden, seed=tokens)
        torch._dynamo.decorators.mark_unbacked(x, 0)
        same = all(torch.equal(a, b) for a, b in zip(compiled_model(x, counts), model(x, counts), strict=True))
        t = median_seconds({"eager": lambda: model(x, counts), "compiled": lambda: compiled_model(x, counts)},
                           opts.rounds)
        print(f"  {tokens:>6} {ms(t['eager']):>10} {ms(t['compiled']):>12} {t['eager'] / t['compiled']:>7.2f}x  {same}")
        table.add(tokens, t["eager"] * 1e3, t["compiled"] * 1e3, t["eager"] / t["compiled"], same)
    recompiles = f"recompiles across {list(token_counts)}: {counter.frame_count - 1}"
    print(f"  {recompiles}")
    table.notes.append(recompiles.capitalize() + ".")


def cpu_model() -> str:
    """The CPU's model name where Linux gives it (/proc/cpuinfo), else the architecture."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small shapes: a smoke run")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per measurement (median; default 7)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch.set_num_threads, which the C kernels follow (default 2; see Threads above)")
    parser.add_argument("--markdown", metavar="PATH", type=Path,
                        help="after the run, write its tables to PATH as markdown (for README.md)")
    parser.add_argument("sections", nargs="*", help=f"any of {', '.join(SECTIONS)} (default: all)")
    opts = parser.parse_args(argv)
    unknown = [s for s in opts.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    if opts.rounds < 1 or opts.threads < 1:
        parser.error("--rounds and --threads must be at least 1")
    if opts.markdown is not None and not opts.markdown.resolve().parent.is_dir():
        # refused before the run, not after it: a full run takes many minutes
        parser.error(f"--markdown {opts.markdown}: no directory {opts.markdown.resolve().parent}")
    torch.set_num_threads(opts.threads)
    # the load says how far to trust this run: other processes on the cores stall the threads (see Threads)
    setup = (f"torch {torch.__version__}, {torch.get_num_threads()} threads, {opts.rounds} rounds, "
             f"C kernels: {'yes' if native.library() else 'no (portable path)'}"
             f"{', quick shapes' if opts.quick else ''}; "
             f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the start")
    started = datetime.now(timezone.utc)
    print(setup)
    chosen = opts.sections or list(SECTIONS)
    for name in chosen:
        SECTIONS[name][0](opts)
    print(f"\n== {SUMMARY_HEADING}")
    targets = dict.fromkeys(t for name in chosen for t in SECTIONS[name][1])
    for target in targets:
        print(f"  {target.name}: {target.ratio}, target {target.describe()}")
    for result in SUMMARY:
        print(result.line())
    if opts.markdown is not None:
        summary = summary_table()
        summary.notes += [f"- {t.name}: {t.ratio}, target {t.describe()}" for t in targets]
        where = f"{cpu_model()}, {platform.system()}, Python {platform.python_version()}"
        header = (f"Measured {started:%Y-%m-%d %H:%M} UTC on {where}: {setup} "
                  f"(`python benchmarks/bench.py {' '.join(argv if argv is not None else sys.argv[1:])}`).")
        opts.markdown.write_text("\n\n".join([header, *(table.markdown() for table in TABLES)]) + "\n")
        print(f"\nmarkdown tables written to {opts.markdown}")


if __name__ == "__main__":
    main()
