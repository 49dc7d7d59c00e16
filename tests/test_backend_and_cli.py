"""The quant_graph backend (by name, as installed), the examples, and the quant-graph CLI."""

import os
import shutil
import subprocess
import sys

import pytest
import torch
from helpers import assert_identical

import quant_graph as qg
from quant_graph import cli


def seeded(seed):
    """A generator of its own for each random tensor: the same values whatever runs first."""
    return torch.Generator().manual_seed(seed)


def test_backend_is_registered_by_name():
    assert "quant_graph" in torch._dynamo.list_backends()


def test_backend_by_name_compiles_and_matches_eager():
    def fn(x):
        y, scale, offset = qg.npu_dynamic_quant_asymmetric(x)
        return (y.float() - offset.unsqueeze(-1)) * scale.unsqueeze(-1)

    torch._dynamo.reset()
    compiled = torch.compile(fn, backend="quant_graph", dynamic=True, fullgraph=True)
    for tokens in (3, 50):
        x = torch.randn(tokens, 32, generator=seeded(28)).half()
        assert_identical(compiled(x), fn(x))


def test_backend_dump_dir_writes_the_ge_graph(tmp_path):
    from quant_graph.converters.ge_graph import read_graphs

    def fn(x, scale, group_index):
        return qg.npu_group_quant(x, scale, group_index)

    torch._dynamo.reset()
    compiled = torch.compile(fn, backend=qg.backend(dump_dir=tmp_path), dynamic=True, fullgraph=True)
    args = (torch.randn(6, 16, generator=seeded(40)), torch.rand(2, 16, generator=seeded(40)), torch.tensor([2, 6]))
    assert_identical(compiled(*args), fn(*args))
    (pbtxt, graph), = read_graphs(tmp_path)
    assert pbtxt.exists() and [op.type for op in graph.op].count("GroupQuant") == 1


def test_w8a8_linear_example_compiles_once_and_matches_eager():
    import w8a8_linear

    torch._dynamo.reset()
    w8a8_linear.main(token_counts=(1, 7, 64, 300))  # asserts compiled == eager and one compile


def test_moe_example_compiles_once_and_matches_eager():
    import moe_ffn

    torch._dynamo.reset()
    model = moe_ffn.W8A8MoEExperts(experts=4, hidden=64, intermediate=64)
    assert moe_ffn.run(model, (1, 17, 64, 200)) == 1


@pytest.mark.parametrize("target,fused", [
    ("examples/w8a8_linear.py:make_model", ["DynamicQuant x1"]),
    ("examples/moe_ffn.py:make_model", ["DequantSwigluQuant x1", "DynamicQuant x1", "GroupQuant x1"]),
])
def test_cli_dump_lists_every_quant_op_as_its_fused_node(tmp_path, capsys, target, fused):
    torch._dynamo.reset()
    assert cli.main(["dump", target, "--dump-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fused GE nodes: " + ", ".join(fused) in out
    assert "not lowered to a fused node: nothing" in out
    assert "[-1, " in out  # the token dim is dynamic
    pbtxts, dots = list(tmp_path.glob("*.pbtxt")), list(tmp_path.glob("*.dot"))
    assert len(pbtxts) == 1 and len(dots) == 1
    assert 'fillcolor="#f6c85f"' in dots[0].read_text()  # fused nodes stand out
    svgs = list(tmp_path.glob("*.svg"))
    if shutil.which("dot") or os.environ.get("CI"):  # .ci/run installs Graphviz
        assert len(svgs) == 1 and "<svg" in svgs[0].read_text()
    else:
        assert svgs == []


def test_cli_dump_reports_a_model_that_does_not_lower(tmp_path, capsys):
    factory = tmp_path / "unlowerable.py"
    factory.write_text(
        "import torch\n"
        "def make_model():\n"
        "    return (lambda x: torch.special.airy_ai(x)), (torch.randn(4, 8),)\n")
    torch._dynamo.reset()
    assert cli.main(["dump", f"{factory}:make_model", "--dump-dir", str(tmp_path / "out")]) == 1
    assert "did not lower" in capsys.readouterr().err


def test_cli_dump_rejects_a_bad_target(capsys):
    assert cli.main(["dump", "no_factory_here.py"]) == 2
    assert "expected <file.py>:<factory>" in capsys.readouterr().err


def test_cli_check_as_installed():
    result = subprocess.run([sys.executable, "-m", "quant_graph", "check"], capture_output=True, text=True,
                            check=True)
    assert "NPU        none" in result.stdout
    assert "offline GE mode available" in result.stdout
    assert "C kernels  built" in result.stdout


def test_console_script_is_installed():
    from pathlib import Path

    script = Path(sys.executable).parent / "quant-graph"
    assert script.exists(), "pip install -e . puts the quant-graph script beside the interpreter"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "dump" in result.stdout and "check" in result.stdout


def test_import_survives_a_broken_torch_npu(tmp_path):
    """A torch_npu that is installed but cannot import (no CANN) must not break quant_graph."""
    broken = tmp_path / "torch_npu"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise OSError('libhccl.so: cannot open shared object file')\n")
    code = "import quant_graph, sys; print(quant_graph.npu_dynamic_quant.__name__, 'torchair' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split() == ["npu_dynamic_quant", "False"]


def test_quant_modes_example_runs(capsys):
    import quant_modes

    quant_modes.every_mode()
    out = capsys.readouterr().out
    assert "(4, 16, 8) int32" in out and "float8_e4m3fn" in out
