"""benchmarks/bench.py runs and says what it measured: a quick run of two cheap sections in a
subprocess, checked for its summary lines' form and for a line per target of each section
run. Timings are the benchmark's to report, never asserted here."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"
# decode has a target per op; peers has none but runs whichever peers are installed (and
# says which are not), so the test needs no more than requirements-dev.txt
SECTIONS_RUN = ("decode", "peers")
SUMMARY_LINE = re.compile(r"(PASS|MISS)  (\w+) +(\d+\.\d\d)x  \(target (>=|<=) (\d+(?:\.\d+)?)x\)  (\S.*)")


def bench_module():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_a_summary_line_per_target():
    bench = bench_module()
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--rounds", "3", *SECTIONS_RUN],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for name in SECTIONS_RUN:
        assert f"== {name}" in out
    assert "torch.ops.quantized_decomposed" in out and "torchao" in out

    summary = out.split("\n== summary", 1)[1].splitlines()[1:]
    verdicts = [line for line in summary if line.startswith(("PASS", "MISS"))]
    targets = {t.name: t for name in SECTIONS_RUN for t in bench.SECTIONS[name][1]}
    assert verdicts and targets
    seen = set()
    for line in verdicts:
        match = SUMMARY_LINE.fullmatch(line)
        assert match, line
        verdict, name, ratio, op, bound, _subject = match.groups()
        target = targets[name]
        assert (op, float(bound)) == (">=" if target.at_least else "<=", target.bound), line
        # the verdict follows from the printed ratio (rounded to two places, as printed)
        assert (verdict == "PASS") == target.met(float(ratio)) or abs(float(ratio) - target.bound) < 0.01, line
        seen.add(name)
    assert seen == set(targets)
    for target in targets.values():
        assert f"  {target.name}: {target.ratio}, target {target.describe()}" in summary
    decode_ops = [line for line in verdicts if " decode_vs_aten " in line]
    assert len(decode_ops) == len(bench.CASES)


def test_unknown_section_is_refused_by_name(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_module().main(["--quick", "nosuch"])
    assert exit_info.value.code == 2
    assert "unknown section(s) ['nosuch']" in capsys.readouterr().err


def test_peers_without_torchao_say_so_and_keep_the_others(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao", None)  # makes `import torchao...` raise ImportError
    peers = bench_module().per_token_int8_peers(torch.randn(4, 16, dtype=torch.float16))
    assert callable(peers["torch.ops.quantized_decomposed"])
    assert peers["torchao"].startswith("cannot be imported") and "requirements-bench.txt" in peers["torchao"]
    y, scale, zero_point = peers["torch.ops.quantized_decomposed"]()
    assert y.dtype == torch.int8 and y.shape == (4, 16)
