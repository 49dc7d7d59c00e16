"""What a new user meets: the version, a validation error inside torch.compile, and
quant-graph dump's messages when something is missing or nothing lowers."""

import logging
import shutil
import subprocess
import sys

import pytest
import torch

import quant_graph as qg
from quant_graph import cli
from quant_graph.converters import _offline


def test_version_everywhere():
    from importlib.metadata import version

    assert qg.__version__ == version("quant-graph")
    result = subprocess.run([sys.executable, "-m", "quant_graph", "--version"], capture_output=True, text=True,
                            check=True)
    assert result.stdout.startswith(f"quant-graph {qg.__version__} (torch {torch.__version__}")


def test_a_validation_error_while_compiling_is_not_logged_as_a_fake_tensor_bug(caplog):
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: qg.npu_dynamic_quant(x), backend="quant_graph", dynamic=True)
    with caplog.at_level(logging.INFO, logger="torch._subclasses.fake_tensor"), pytest.raises(Exception) as info:
        compiled(torch.zeros(4, 16))
    assert "npu_dynamic_quant: input (x) must be float16 or bfloat16, got torch.float32" in str(info.value)
    assert not [r for r in caplog.records if r.name == "torch._subclasses.fake_tensor"]


def test_other_fake_tensor_type_errors_are_still_logged():
    record = logging.LogRecord("torch._subclasses.fake_tensor", logging.ERROR, __file__, 1,
                               "fake tensor raised TypeError", None, (TypeError, TypeError("a real bug"), None))
    logger = logging.getLogger("torch._subclasses.fake_tensor")
    assert all(f.filter(record) for f in logger.filters)


def test_dump_names_every_missing_piece_before_compiling(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUANT_GRAPH_TORCH_NPU_DIR", str(tmp_path / "empty"))
    assert cli.main(["dump", "examples/w8a8_linear.py:make_model", "--dump-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "offline GE mode needs what is missing here" in err
    assert f"--no-deps --target {tmp_path / 'empty'} torch-npu==2.13.0" in err and "quant-graph install-ge" in err
    assert not (tmp_path / "out").exists()


def test_install_ge_runs_pip_for_each_missing_piece(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUANT_GRAPH_TORCH_NPU_DIR", str(tmp_path / "side"))
    ran = []
    monkeypatch.setattr(cli.subprocess, "run", lambda command: ran.append(command) or subprocess.CompletedProcess(
        command, 0))
    assert cli.main(["install-ge"]) == 0
    assert ran == [[sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(tmp_path / "side"),
                    _offline.TORCH_NPU_PIN]]
    assert "installing TorchAir's Python sources" in capsys.readouterr().out


def test_install_ge_with_nothing_missing_says_ready(capsys):
    assert _offline.missing_pieces() == []
    assert cli.main(["install-ge"]) == 0
    assert "offline GE mode is ready" in capsys.readouterr().out


def test_dump_lists_every_file_explains_the_summary_and_a_skipped_svg(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    torch._dynamo.reset()
    assert cli.main(["dump", "examples/w8a8_linear.py:make_model", "--dump-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    written = {line.strip() for line in out.split("written:\n")[1].splitlines() if line.strip()}
    assert written == {str(p) for p in tmp_path.iterdir()}
    assert {p.suffix for p in tmp_path.iterdir()} == {".pbtxt", ".txt", ".dot"}
    assert "SVG not rendered: Graphviz's `dot` is not on PATH" in out
    assert "legend:" in out and "? a dtype the graph" in out and "DT_INT64[] is a size" in out
