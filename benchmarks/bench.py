"""Bandwidth of quant_graph's eager fallbacks on this machine, as ratios measured in one run.

    python benchmarks/bench.py            # every operator at an LLM-sized shape
    python benchmarks/bench.py --quick    # small shapes, a smoke run

For each operator: GB/s of input+output bytes for the eager fallback, for a
straightforward torch composite of the SPEC formula, for that composite under
torch.compile (inductor), and for ``clone`` of the input (the memory bound), each as a
ratio to clone. Peak extra memory is the resident-set growth during one call beyond the
outputs' own bytes, as a ratio to the input's size.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import torch

import quant_graph as qg


def seconds(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise KeyError(field)


def peak_extra_bytes(fn):
    """Peak RSS growth during fn() minus the bytes of what it returns (Linux)."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status_kib("VmRSS")
    out = fn()
    peak = _status_kib("VmHWM")
    out_bytes = sum(t.numel() * t.element_size() for t in (out if isinstance(out, tuple) else (out,)))
    return max(0, (peak - before) * 1024 - out_bytes)


def nbytes(*tensors):
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


# --- straightforward composites of the SPEC formulas (what a user would write) --------

def composite_dynamic_quant_asymmetric(x):
    xf = x.float()
    row_max, row_min = xf.amax(-1, keepdim=True), xf.amin(-1, keepdim=True)
    scale = (row_max - row_min) / 255
    offset = 127 - row_max / scale
    y = torch.round(xf / scale + offset).clamp(-128, 127).to(torch.int8)
    return y, scale.squeeze(-1), offset.squeeze(-1)


CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


@case
def dynamic_quant_asymmetric(quick):
    tokens, hidden = (1024, 1024) if quick else (16384, 7168)
    x = torch.randn(tokens, hidden, dtype=torch.float16)
    out_bytes = tokens * hidden + 8 * tokens
    return (f"npu_dynamic_quant_asymmetric int8 per token, fp16 [{tokens}, {hidden}]", x,
            lambda: qg.npu_dynamic_quant_asymmetric(x), lambda: composite_dynamic_quant_asymmetric(x),
            composite_dynamic_quant_asymmetric, (x,), out_bytes)


def composite_dynamic_quant_perchannel(x):
    xf = x.float()
    scale = xf.abs().amax(-2, keepdim=True) / 127
    y = torch.round(xf / scale).clamp(-128, 127).to(torch.int8)
    return y, scale.squeeze(-2)


@case
def dynamic_quant_perchannel(quick):
    tokens, hidden = (1024, 1024) if quick else (16384, 7168)
    x = torch.randn(tokens, hidden, dtype=torch.float16)
    out_bytes = tokens * hidden + 4 * hidden
    return (f"npu_dynamic_quant int8 per channel, fp16 [{tokens}, {hidden}]", x,
            lambda: qg.npu_dynamic_quant(x, quant_mode="perchannel"), lambda: composite_dynamic_quant_perchannel(x),
            composite_dynamic_quant_perchannel, (x,), out_bytes)


def composite_quantize(x, scales, zero_points):
    v = x.float() * scales.float() + zero_points.float()
    return torch.round(v).clamp(-128, 127).to(torch.int8)


@case
def quantize(quick):
    tokens, hidden = (1024, 1024) if quick else (8192, 7168)
    x = torch.randn(tokens, hidden, dtype=torch.float16)
    scales, zero_points = torch.rand(hidden, dtype=torch.float16) + 0.5, torch.randn(hidden, dtype=torch.float16)
    return (f"npu_quantize div_mode=False qint8, fp16 [{tokens}, {hidden}]", x,
            lambda: qg.npu_quantize(x, scales, zero_points, torch.qint8, -1, False),
            lambda: composite_quantize(x, scales, zero_points), composite_quantize, (x, scales, zero_points),
            tokens * hidden)


def composite_quantize_float8(x, scale):
    v = x.float() * (1.0 / scale.float())
    return v.nan_to_num(0.0).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)


@case
def quantize_float8(quick):
    """cann-recipes' per-tensor call: a 1-element scale, div_mode=True, float8_e4m3fn out."""
    tokens, hidden = (1024, 1024) if quick else (8192, 7168)
    x, scale = torch.randn(tokens, hidden, dtype=torch.bfloat16), torch.tensor([0.02])
    return (f"npu_quantize div_mode=True float8_e4m3fn per tensor, bf16 [{tokens}, {hidden}]", x,
            lambda: qg.npu_quantize(x, scale, None, torch.float8_e4m3fn, -1, True),
            lambda: composite_quantize_float8(x, scale), composite_quantize_float8, (x, scale), tokens * hidden)


def composite_group_quant(x, scale, group_index, offset):
    counts = torch.diff(group_index, prepend=group_index.new_zeros(1))
    row_scale = scale.repeat_interleave(counts, dim=0, output_size=x.shape[0])
    return torch.round(x.float() * row_scale + offset).clamp(-128, 127).to(torch.int8)


@case
def group_quant(quick):
    tokens, hidden, groups = (1024, 1024, 8) if quick else (8192, 7168, 8)
    x = torch.randn(tokens, hidden, dtype=torch.float16)
    scale, offset = torch.rand(groups, hidden) * 50, torch.tensor([0.25])
    group_index = torch.linspace(0, tokens, groups + 1)[1:].round().to(torch.int64)
    return (f"npu_group_quant int8, fp16 [{tokens}, {hidden}], {groups} groups", x,
            lambda: qg.npu_group_quant(x, scale, group_index, offset=offset),
            lambda: composite_group_quant(x, scale, group_index, offset), composite_group_quant,
            (x, scale, group_index, offset), tokens * hidden)


def composite_dequant_swiglu_quant(x, weight_scale, activation_scale, quant_scale, group_index):
    rows = torch.repeat_interleave(torch.arange(group_index.numel()), group_index, output_size=x.shape[0])
    xf = x.float() * weight_scale[rows] * activation_scale.unsqueeze(-1)
    a, b = xf.chunk(2, dim=-1)
    out = torch.nn.functional.silu(b) * a * quant_scale[rows]
    scale = out.abs().amax(-1, keepdim=True) / 127
    return torch.round(out / scale).clamp(-128, 127).to(torch.int8), scale.squeeze(-1)


@case
def dequant_swiglu_quant(quick):
    tokens, hidden, groups = (1024, 512, 8) if quick else (8192, 4096, 8)
    x = torch.randint(-500, 500, (tokens, 2 * hidden), dtype=torch.int32)
    weight_scale, activation_scale = torch.rand(groups, 2 * hidden) * 0.01, torch.rand(tokens) * 0.01
    quant_scale = torch.rand(groups, hidden) + 0.5
    group_index = torch.full((groups,), tokens // groups, dtype=torch.int64)
    args = (x, weight_scale, activation_scale, quant_scale, group_index)
    return (f"npu_dequant_swiglu_quant dynamic, int32 [{tokens}, {2 * hidden}], {groups} groups", x,
            lambda: qg.npu_dequant_swiglu_quant(x, weight_scale=weight_scale, activation_scale=activation_scale,
                                                quant_scale=quant_scale, group_index=group_index, quant_mode=1),
            lambda: composite_dequant_swiglu_quant(*args), composite_dequant_swiglu_quant, args,
            tokens * hidden + 4 * tokens)


def composite_dequant_swiglu_quant_gpt_oss(x, weight_scale, activation_scale, quant_scale):
    xf = x.float() * weight_scale * activation_scale.unsqueeze(-1)
    gate, linear = xf[:, 0::2].clamp(max=7.0), xf[:, 1::2].clamp(-7.0, 7.0)
    out = gate * torch.sigmoid(1.702 * gate) * (linear + 1.0) * quant_scale
    scale = out.abs().amax(-1, keepdim=True) / 127
    return torch.round(out / scale).clamp(-128, 127).to(torch.int8), scale.squeeze(-1)


@case
def dequant_swiglu_quant_gpt_oss(quick):
    tokens, hidden = (1024, 512) if quick else (8192, 4096)
    x = torch.randint(-500, 500, (tokens, 2 * hidden), dtype=torch.int32)
    weight_scale, activation_scale = torch.rand(2 * hidden) * 0.01, torch.rand(tokens) * 0.01
    quant_scale = torch.rand(hidden) + 0.5
    args = (x, weight_scale, activation_scale, quant_scale)
    return (f"npu_dequant_swiglu_quant swiglu_mode=1 (GPT-OSS) dynamic, int32 [{tokens}, {2 * hidden}]", x,
            lambda: qg.npu_dequant_swiglu_quant(x, weight_scale=weight_scale, activation_scale=activation_scale,
                                                quant_scale=quant_scale, quant_mode=1, swiglu_mode=1),
            lambda: composite_dequant_swiglu_quant_gpt_oss(*args), composite_dequant_swiglu_quant_gpt_oss, args,
            tokens * hidden + 4 * tokens)


def run(name, quick, repeats, with_compile):
    title, x, ours, composite, composite_fn, composite_args, out_bytes = CASES[name](quick)
    moved = nbytes(x) + out_bytes
    clone_s = seconds(lambda: x.clone(), repeats)
    clone_gbs = 2 * nbytes(x) / clone_s / 1e9
    rows = [("x.clone() (memory bound)", clone_gbs)]
    rows.append(("quant_graph eager fallback", moved / seconds(ours, repeats) / 1e9))
    rows.append(("straightforward torch composite", moved / seconds(composite, max(1, repeats // 2)) / 1e9))
    if with_compile:
        compiled = torch.compile(composite_fn, dynamic=True)
        compiled_s = seconds(lambda: compiled(*composite_args), repeats)
        rows.append(("composite under torch.compile", moved / compiled_s / 1e9))
    extra = peak_extra_bytes(ours) / nbytes(x)
    print(f"\n{title}")
    print(f"  {'variant':<34} {'GB/s':>7} {'x clone':>8}")
    for label, gbs in rows:
        print(f"  {label:<34} {gbs:7.2f} {gbs / clone_gbs:8.2f}")
    print(f"  eager fallback vs composite: {rows[1][1] / rows[2][1]:.1f}x faster; "
          f"peak extra memory {extra:.2f}x the input")


def moe_example(quick, repeats):
    """Example (b) end to end: eager vs torch.compile(backend="quant_graph"), compile time, recompiles."""
    import sys

    from torch._dynamo.testing import CompileCounterWithBackend

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    from moe_ffn import W8A8MoEExperts, routed_tokens

    experts, hidden, intermediate = (8, 256, 128) if quick else (8, 2048, 1408)
    token_counts = (1, 17, 512, 4096)
    model = W8A8MoEExperts(experts, hidden, intermediate)
    counter = CompileCounterWithBackend("quant_graph")
    compiled = torch.compile(model, backend=counter, dynamic=True, fullgraph=True)
    print(f"\nexample (b) W8A8 MoE experts: {experts} experts, hidden {hidden}, intermediate {intermediate}; "
          f"torch.compile(backend='quant_graph', dynamic=True, fullgraph=True)")
    print(f"  {'tokens':>6} {'eager ms':>10} {'compiled ms':>12} {'speedup':>8}  compiled == eager")
    compile_s = None
    for tokens in token_counts:
        x, counts = routed_tokens(tokens, experts, hidden, seed=tokens)
        torch._dynamo.decorators.mark_unbacked(x, 0)
        if compile_s is None:
            start = time.perf_counter()
            compiled(x, counts)
            compile_s = time.perf_counter() - start
        same = all(torch.equal(a, b) for a, b in zip(compiled(x, counts), model(x, counts), strict=True))
        runs = repeats if tokens < 4096 or quick else max(1, repeats // 3)
        eager_s = seconds(lambda: model(x, counts), runs)
        compiled_s = seconds(lambda: compiled(x, counts), runs)
        print(f"  {tokens:>6} {eager_s * 1e3:>10.1f} {compiled_s * 1e3:>12.1f} {eager_s / compiled_s:>7.2f}x  {same}")
    print(f"  first call (compile + run, tokens=1): {compile_s:.1f} s; recompiles across "
          f"{list(token_counts)}: {counter.frame_count - 1}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small shapes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    parser.add_argument("cases", nargs="*", help=f"any of {', '.join(CASES)}, moe (default: all)")
    args = parser.parse_args()
    unknown = set(args.cases) - set(CASES) - {"moe"}
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; choose from {list(CASES)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"C kernels: {'yes' if qg.native.library() else 'no (portable path)'}")
    for name in args.cases or CASES:
        if name in CASES:
            run(name, args.quick, args.repeats, not args.no_compile)
    if not args.cases or "moe" in args.cases:
        moe_example(args.quick, args.repeats)


if __name__ == "__main__":
    main()
