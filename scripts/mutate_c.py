"""Plant semantic bugs in the C kernels one at a time and check the test suite catches each.

    .venv/bin/python scripts/mutate_c.py              # every mutant, the whole suite per mutant
    .venv/bin/python scripts/mutate_c.py -k rint nan  # mutants whose name holds a word

Each mutant is one textual edit of ``quant_graph/csrc/kernels.c`` (rounding, clamping,
offsets, group boundaries, packing ...), applied in a temporary copy of the repository; the
suite runs there with ``-x`` and its own kernel cache, so the checkout and ``~/.cache`` are
never touched. A mutant is *caught* when pytest fails. Not part of CI (minutes per mutant
that survives); the README's development section reports the last score.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KERNELS = Path("quant_graph/csrc/kernels.c")

# (name, text in kernels.c, replacement): each text occurs exactly once.
MUTANTS = [
    ("rint -> round (ties away from zero)", "    return rintf(v);", "    return roundf(v);"),
    ("NaN not zeroed before the cast", "    v = v != v ? 0.0f : v;", "    v = v;"),
    ("int8 saturates at lo + 1",
     "d[i] = (int8_t)saturate(v[i] / div + add, lo, hi);", "d[i] = (int8_t)saturate(v[i] / div + add, lo + 1, hi);"),
    ("uint8 saturates at hi - 1",
     "d[i] = (uint8_t)saturate(v[i] / div + add, lo, hi);", "d[i] = (uint8_t)saturate(v[i] / div + add, lo, hi - 1);"),
    ("int32 upper clamp dropped", "            x = x > fmt.hi ? fmt.hi : x;\n", ""),
    ("int4 nibbles in reverse order", "& 0xfu) << (4 * j);", "& 0xfu) << (4 * (7 - j));"),
    ("asymmetric offset from the min", "*offset = dst_max - s.max / *scale;", "*offset = dst_max - s.min / *scale;"),
    ("symmetric scale over DST_MAX + 1", "*scale = s.absmax / dst_max;", "*scale = s.absmax / (dst_max + 1.0f);"),
    ("zero-scale rows not zeroed", "    if (scale == 0.0f)\n        memset", "    if (0)\n        memset"),
    # both lines: either alone still carries a NaN into the column's statistics
    ("perchannel column statistics ignore NaN",
     "mx[i] = (v[i] > mx[i]) | (v[i] != v[i]) ? v[i] : mx[i];\n"
     "        mn[i] = (v[i] < mn[i]) | (v[i] != v[i]) ? v[i] : mn[i];",
     "mx[i] = (v[i] > mx[i]) ? v[i] : mx[i];\n        mn[i] = (v[i] < mn[i]) ? v[i] : mn[i];"),
    ("clamped swiglu: gate not clamped", "    gate = gate > limit ? limit : gate;\n", ""),
    ("clamped swiglu: linear lower clamp dropped", "    linear = linear < -limit ? -limit : linear;\n", ""),
    ("clamped swiglu: glu_bias dropped", "* (linear + bias);", "* linear;"),
    ("mode 1 halves not interleaved", "clamped_glu(buf[2 * i], buf[2 * i + 1],",
     "clamped_glu(buf[2 * i + 1], buf[2 * i],"),
    ("group boundary off by one", "while (g < groups - 1 && r >= ends[g]) g++;",
     "while (g < groups - 1 && r > ends[g]) g++;"),
    ("per-tensor stats of one thread only", "#pragma omp critical\n            merge_stats(&total, local);", ""),
    ("smooth scale of column 0 for every column", "buf[i] = buf[i] * smooth[i];", "buf[i] = buf[i] * smooth[0];"),
    ("affine zero point of row 0 for every row", "z = zero ? zero[r % period] : 0.0f;", "z = zero ? zero[0] : 0.0f;"),
    ("affine per-column zero point dropped", "                if (zero)\n", "                if (0)\n"),
    ("bf16 widened with the wrong shift", "(uint32_t)s[i] << 16;", "(uint32_t)s[i] << 15;"),
    ("swiglu halves swapped", "activate_left ? buf : buf + h, *up = activate_left ? buf + h : buf;",
     "activate_left ? buf + h : buf, *up = activate_left ? buf : buf + h;"),
    ("silu with exp(+v)", "return v / (1.0f + qg_expf(-v));", "return v / (1.0f + qg_expf(v));"),
    ("exp: low part of ln2 dropped", "    r = r - n * QG_LN2_LO;\n", ""),
    ("exp: polynomial's last coefficient off", "p = p * r + 5.0000001201e-1f;", "p = p * r + 5.0001e-1f;"),
    ("exp: 2^n scaled once by 2^k1 only", "const float e = p * s1 * s2;", "const float e = p * s1 * s1;"),
    ("dequant bias subtracted", "(float)((int64_t)xi[i] + bias[i]);", "(float)((int64_t)xi[i] - bias[i]);"),
    ("static quant offset subtracted", "buf[i] = buf[i] + qo[i];", "buf[i] = buf[i] - qo[i];"),
    ("rows past the groups not zeroed", "                memset(y_row, 0, (size_t)y_stride);\n", ""),
    ("dynamic swiglu quant_scale dropped", "for (int64_t i = 0; i < h; i++) buf[i] = buf[i] * qs[i];",
     "for (int64_t i = 0; i < h; i++) buf[i] = buf[i];"),
]


def run_mutant(name: str, text: str, replacement: str, pytest_args: list[str]) -> tuple[bool, float]:
    with tempfile.TemporaryDirectory(prefix="qg-mutant-") as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", ".hypothesis"))
        source = (copy / KERNELS).read_text()
        if source.count(text) != 1:
            raise SystemExit(f"mutant {name!r}: its text occurs {source.count(text)} times in {KERNELS}, not once")
        (copy / KERNELS).write_text(source.replace(text, replacement))
        env = {**os.environ, "QUANT_GRAPH_CACHE_DIR": str(Path(tmp) / "cache")}
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *pytest_args],
                                cwd=copy, env=env, capture_output=True, text=True)
        return result.returncode != 0, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", nargs="*", default=[], help="run only mutants whose name contains one of these")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (default: the whole suite)")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.k or any(word in m[0] for word in args.k)]
    survivors = []
    for name, text, replacement in chosen:
        caught, seconds = run_mutant(name, text, replacement, args.pytest_args)
        print(f"{'caught  ' if caught else 'SURVIVED'} {seconds:6.1f} s  {name}", flush=True)
        if not caught:
            survivors.append(name)
    print(f"\n{len(chosen) - len(survivors)} of {len(chosen)} C mutants caught")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
