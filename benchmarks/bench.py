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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small shapes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    parser.add_argument("cases", nargs="*", help=f"any of {', '.join(CASES)} (default: all)")
    args = parser.parse_args()
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; choose from {list(CASES)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"C kernels: {'yes' if qg.native.library() else 'no (portable path)'}")
    for name in args.cases or CASES:
        run(name, args.quick, args.repeats, not args.no_compile)


if __name__ == "__main__":
    main()
