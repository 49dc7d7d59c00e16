"""torch.compile(dynamic=True) output against the reference (not against the same eager
kernel), compiling once across token counts; and the exit code of every outcome of
``quant-graph dump``."""

import subprocess
import sys

import pytest
import torch
from helpers import assert_identical
from reference import (
    dequant_swiglu_quant_reference,
    dynamic_quant_reference,
    group_quant_reference,
    kernel_expf,
    quantize_mul_reference,
    quantize_per_channel_oracle,
)
from torch._dynamo.testing import CompileCounterWithBackend

import quant_graph as qg
from quant_graph import cli

TOKENS = (3, 17, 64)


def ties_and_ends(tokens, width, lo, hi, g):
    """Rows of random values with a column each of ties (k + 0.5), lo - 10 and hi + 10."""
    x = torch.randn(tokens, width, generator=g) * (hi - lo) / 4
    x[:, 0] = torch.arange(tokens) % 7 - 3 + 0.5
    x[:, 1], x[:, 2] = lo - 10.0, hi + 10.0
    return x


def _dq(tokens, g, symmetric):
    x = (torch.randn(tokens, 64, generator=g) * 3).bfloat16()
    x[:, 0], x[:, 1] = -128.0, 127.0  # asymmetric: scale 1 offset 0 when the rest is inside
    x[:, 2:8] = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5])
    return (x,), {"quant_mode": "pertoken"}


CASES = {
    "npu_dynamic_quant": (lambda t, g: _dq(t, g, True),
                          lambda a, k: dynamic_quant_reference(*a, symmetric=True, **k)),
    "npu_dynamic_quant_asymmetric": (lambda t, g: _dq(t, g, False),
                                     lambda a, k: dynamic_quant_reference(*a, symmetric=False, **k)),
    "npu_quantize div": (lambda t, g: ((ties_and_ends(t, 16, -128, 127, g), torch.ones(16), None, torch.qint8, -1,
                                        True), {}),
                         lambda a, k: quantize_per_channel_oracle(*a[:5])),
    "npu_quantize mul int4": (lambda t, g: ((ties_and_ends(t, 16, -8, 7, g), torch.ones(16), torch.zeros(16),
                                             torch.quint4x2, -1, False), {}),
                              lambda a, k: quantize_mul_reference(*a[:5])),
    "npu_group_quant": (lambda t, g: ((ties_and_ends(t, 32, -128, 127, g), torch.ones(2, 32),
                                       torch.tensor([t // 2, t], dtype=torch.int32)), {}),
                        lambda a, k: group_quant_reference(*a)),
    "npu_dequant_swiglu_quant": (
        lambda t, g: ((torch.randint(-300, 300, (t, 128), generator=g, dtype=torch.int32),),
                      {"weight_scale": torch.rand(2, 128, generator=g) * 0.02,
                       "activation_scale": torch.rand(t, generator=g) + 0.01,
                       "quant_scale": torch.rand(2, 64, generator=g) + 0.5,
                       "group_index": torch.tensor([t // 3, t - t // 3 - 1]), "quant_mode": 1}),
        lambda a, k: dequant_swiglu_quant_reference(*a, exp=kernel_expf, **k)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_compiled_matches_the_reference_and_compiles_once(case):
    make, reference = CASES[case]
    op = getattr(qg, case.split()[0])

    def fn(args, kwargs):
        return op(*args, **kwargs)

    torch._dynamo.reset()
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(fn, backend=counter, dynamic=True, fullgraph=True)
    for tokens in TOKENS:
        args, kwargs = make(tokens, torch.Generator().manual_seed(tokens))
        out = compiled(args, kwargs)
        expected = reference(args, kwargs)
        assert_identical(tuple(out) if isinstance(out, tuple) else out, expected)
    assert counter.frame_count == 1


# --- quant-graph dump: exit codes -----------------------------------------------------------

def write_factory(tmp_path, body):
    path = tmp_path / "factory.py"
    path.write_text("import torch\nimport quant_graph as qg\n\n\ndef make_model():\n" + body)
    return f"{path}:make_model"


GROUP_QUANT_MODEL = (
    "    g = torch.Generator().manual_seed(0)\n"
    "    def model(x, scale, group_index):\n"
    "        return qg.npu_group_quant(x, scale, group_index)\n"
    "    return model, (torch.randn(6, 16, generator=g), torch.rand(2, 16, generator=g),\n"
    "                   torch.tensor([2, 6], dtype=torch.int32))\n")


def dump(target, tmp_path):
    torch._dynamo.reset()
    return cli.main(["dump", target, "--dump-dir", str(tmp_path / "out"), "--no-dot"])


def test_a_model_that_lowers_exits_0(tmp_path, capsys):
    assert dump(write_factory(tmp_path, GROUP_QUANT_MODEL), tmp_path) == 0
    out = capsys.readouterr().out
    assert "fused GE nodes: GroupQuant x1" in out and "not lowered to a fused node: nothing" in out


def test_a_quant_op_without_its_fused_node_exits_1(tmp_path, capsys, monkeypatch):
    """The converter made to emit a plain Cast in place of GroupQuant (TorchAir's raw op
    replaced, no package code edited): the dump builds, but the op did not lower."""
    from quant_graph import converters

    converters.load_torchair()
    from torchair._ge_concrete_graph import ge_apis
    from torchair.ge import DataType

    monkeypatch.setattr(ge_apis, "GroupQuant", lambda x, *args, **kwargs: ge_apis.Cast(x, dst_type=DataType.DT_INT8))
    assert dump(write_factory(tmp_path, GROUP_QUANT_MODEL), tmp_path) == 1
    out = capsys.readouterr().out
    assert "not lowered to a fused node: npu_group_quant" in out and "fused GE nodes: none" in out


def test_a_model_with_no_quant_op_exits_1_and_says_so(tmp_path, capsys):
    body = "    return (lambda x: x * 2), (torch.ones(4, 8),)\n"
    assert dump(write_factory(tmp_path, body), tmp_path) == 1
    captured = capsys.readouterr()
    assert "quant ops captured: none" in captured.out
    assert "no quant op was captured" in captured.err and "npu_dynamic_quant" in captured.err


def test_a_factory_that_raises_exits_2_with_one_line(tmp_path):
    target = write_factory(tmp_path, "    raise RuntimeError('no weights here')\n")
    result = subprocess.run([sys.executable, "-m", "quant_graph", "dump", target, "--dump-dir",
                             str(tmp_path / "out"), "--no-dot"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"quant-graph dump: {target} raised RuntimeError: no weights here"
    assert "Traceback" not in result.stderr
