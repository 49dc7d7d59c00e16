"""benchmarks/bench.py runs and says what it measured: a quick run of two cheap sections in a
subprocess, checked for its summary lines' form and for a line per target of each section
run, and for the markdown tables it writes with --markdown (a table per section run and the
summary's, a row per measured case). Timings are the benchmark's to report, never asserted here."""

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


def markdown_tables(text):
    """{first word of each '#### heading': (header cells, rows of cells)} of a markdown file."""
    tables = {}
    for block in text.split("\n#### ")[1:]:
        heading, _, body = block.partition("\n")
        cells = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
                 for line in body.splitlines() if line.startswith("|")]
        header, rule, *rows = cells
        assert all(re.fullmatch(r"-+:?", cell) for cell in rule), rule
        assert all(len(row) == len(header) for row in rows), rows
        tables[heading.split(":")[0]] = header, rows
    return tables


def numbers(row):
    return [float(cell) for cell in row]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The console output and the markdown file of one quick run of SECTIONS_RUN."""
    markdown = tmp_path_factory.mktemp("bench") / "bench.md"
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--rounds", "3", "--markdown", str(markdown),
                           *SECTIONS_RUN], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout, markdown.read_text()


def test_quick_run_prints_a_summary_line_per_target(quick_run):
    bench = bench_module()
    out, _ = quick_run
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


def test_markdown_into_a_missing_directory_is_refused_before_the_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_module().main(["--quick", "--markdown", str(tmp_path / "nosuch" / "bench.md"), "decode"])
    assert exit_info.value.code == 2
    assert f"no directory {tmp_path / 'nosuch'}" in capsys.readouterr().err


def test_peers_without_torchao_say_so_and_keep_the_others(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao", None)  # makes `import torchao...` raise ImportError
    peers = bench_module().per_token_int8_peers(torch.randn(4, 16, dtype=torch.float16))
    assert callable(peers["torch.ops.quantized_decomposed"])
    assert peers["torchao"].startswith("cannot be imported") and "requirements-bench.txt" in peers["torchao"]
    y, scale, zero_point = peers["torch.ops.quantized_decomposed"]()
    assert y.dtype == torch.int8 and y.shape == (4, 16)


def test_markdown_has_a_table_per_section_run_and_a_row_per_case(quick_run):
    bench = bench_module()
    out, markdown = quick_run
    header = markdown.splitlines()[0]
    assert header.startswith("Measured ") and " UTC on " in header, header
    for fact in (f"torch {torch.__version__}", " threads, 3 rounds, ", "C kernels: ", "load average ", "quick shapes"):
        assert fact in header, (fact, header)

    tables = markdown_tables(markdown)
    assert list(tables) == [*SECTIONS_RUN, "summary"]
    header, rows = tables["decode"]
    assert header == ["case", "call us", "x.abs() us", "ratio"]
    assert [row[0] for row in rows] == [build(1, bench.DECODE_HIDDEN).title for build, _ in bench.CASES.values()]
    assert all(value > 0 for row in rows for value in numbers(row[1:]))

    header, rows = tables["peers"]
    assert header == ["implementation", "ms", "time / quant_graph"]
    assert [row[0] for row in rows] == ["quant_graph npu_dynamic_quant_asymmetric", "torch.ops.quantized_decomposed",
                                        "torchao"]
    assert numbers(rows[0][1:])[1] == 1.0 and all(value > 0 for value in numbers(rows[1][1:]))
    # torchao is optional (requirements-bench.txt): its row has times, or says why it has none
    assert rows[2][1].startswith("cannot be imported") or all(value > 0 for value in numbers(rows[2][1:]))

    # the summary table holds the console's summary lines, the same ratios to the same digits
    header, rows = tables["summary"]
    assert header == ["target", "ratio", "PASS/MISS", "subject"]
    printed = [SUMMARY_LINE.fullmatch(line).groups() for line in out.split("\n== summary", 1)[1].splitlines()
               if line.startswith(("PASS", "MISS"))]
    assert [(row[2], row[0].split(" ")[0], row[1], row[3]) for row in rows] == [
        (verdict, name, ratio, subject) for verdict, name, ratio, _op, _bound, subject in printed]
    assert len(rows) == len(bench.CASES)


def test_table_escapes_pipes_and_refuses_a_row_of_the_wrong_width():
    bench = bench_module()
    table = bench.Table("demo", "demo: a heading", {"case": "", "ms": ".2f"})
    table.add("a | b", 1.234)
    assert table.markdown().splitlines()[-1] == "| a \\| b | 1.23 |"
    with pytest.raises(ValueError, match="a row of 1 cells for 2 columns"):
        table.add("only one")
