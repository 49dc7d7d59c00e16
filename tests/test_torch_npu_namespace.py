"""torch.ops.npu.<op> and quant_graph.torch_npu off an Ascend host: torch_npu's registered
schemas verbatim (read from the torch_npu wheel CI installs for TorchAir), the same kernels
as the quant_graph namespace, the same GE graphs, and FX patterns written against
torch.ops.npu (as vllm-ascend's fusion passes are) matching compiled graphs."""

import re
import subprocess
import sys

import pytest
import torch
from helpers import assert_identical
from samples import valid_samples
from torch.fx.passes.utils.matcher_utils import SubgraphMatcher

import quant_graph as qg
from quant_graph import _host
from quant_graph._registry import OPS
from quant_graph.converters import _offline
from quant_graph.ge import dump_ge_graph


def torch_npu_schemas():
    """``name -> schema`` of the five ops in torch_npu's own yaml (npu_native_functions_by_codegen.yaml)."""
    yaml = _offline.side_install_dir() / "torch_npu" / "csrc" / "aten" / "npu_native_functions_by_codegen.yaml"
    schemas = {}
    for line in yaml.read_text().splitlines():
        match = re.match(r"\s*-?\s*func:\s*(\w+)(\(.*)$", line)
        if match and match.group(1) in OPS:
            schemas[match.group(1)] = match.group(2).strip()
    return schemas


def test_this_host_has_no_loadable_torch_npu_so_quant_graph_defines_the_namespace():
    assert _host.TORCH_NPU in ("absent", "unloadable") and _host.defines_npu_namespace()


@pytest.mark.parametrize("name", sorted(OPS))
def test_npu_schemas_are_torch_npus_verbatim(name):
    expected = torch_npu_schemas()[name]
    for namespace in ("npu", "quant_graph"):
        schema = getattr(getattr(torch.ops, namespace), name).default._schema
        assert str(schema) == str(torch._C.parse_schema(f"{namespace}::{name}{expected}"))


@pytest.mark.parametrize("pair", valid_samples()[::4], ids=lambda pair: f"{pair[0].name}:{pair[1].name}")
def test_both_namespaces_give_identical_results(kernel_path, pair):
    info, sample = pair
    if sample.kwargs.keys() & {"x", "input"} or not sample.args:
        pytest.fail("samples pass the input positionally")
    npu = getattr(torch.ops.npu, info.name)(*sample.args, **sample.kwargs)
    assert_identical(npu, info.op(*sample.args, **sample.kwargs))


@pytest.mark.parametrize("name", sorted(OPS))
def test_opcheck_on_the_npu_ops(name):
    info, sample = next(p for p in valid_samples() if p[0].name == name and p[1].args[0].numel())
    torch.library.opcheck(getattr(torch.ops.npu, name).default, sample.args, sample.kwargs)


def test_both_namespaces_lower_to_identical_ge_nodes(tmp_path):
    x = torch.randn(9, 64, generator=torch.Generator().manual_seed(0)).bfloat16()
    summaries = {}
    for namespace in ("npu", "quant_graph"):
        op = getattr(torch.ops, namespace)

        def fn(x):
            y, scale, offset = op.npu_dynamic_quant_asymmetric(x, quant_mode="pertensor")
            return op.npu_quantize(y.float(), scale, None, 12, -1, False)

        torch._dynamo.reset()
        dump = dump_ge_graph(fn, x, dump_dir=tmp_path / namespace)
        assert dump.not_lowered() == []
        summaries[namespace] = [(n.type, n.attrs, [(t.name, t.dtype, t.shape) for t in n.inputs])
                                for n in dump.fused_nodes()]
        assert_identical(dump.outputs, fn(x))
    assert summaries["npu"] == summaries["quant_graph"] and len(summaries["npu"]) == 2


def test_the_summary_names_ops_of_both_namespaces(tmp_path):
    def fn(x):
        return torch.ops.npu.npu_dynamic_quant(x)[0], qg.npu_dynamic_quant_asymmetric(x)[0]

    torch._dynamo.reset()
    summary = dump_ge_graph(fn, torch.ones(4, 16).half(), dump_dir=tmp_path).summary()
    assert "quant ops captured: npu_dynamic_quant_asymmetric x1, torch.ops.npu.npu_dynamic_quant x1" in summary


def test_an_fx_pattern_on_torch_ops_npu_matches_the_compiled_graph():
    """vllm-ascend's norm_quant_fusion_pass matches torch.ops.npu.npu_dynamic_quant.default
    after RMSNorm in the post-AOT graph; the same pattern finds it here."""
    from torch._dynamo.backends.common import aot_autograd

    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    def model(x, weight):
        normed = x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6).to(x.dtype) * weight
        return torch.ops.npu.npu_dynamic_quant(normed)

    def pattern(normed):
        out = torch.ops.npu.npu_dynamic_quant.default(normed)
        return out[0], out[1]

    torch._dynamo.reset()
    x, w = torch.randn(5, 32).half(), torch.rand(32).half()
    compiled = torch.compile(model, backend=aot_autograd(fw_compiler=capture), dynamic=True)
    assert_identical(compiled(x, w), model(x, w))
    matches = SubgraphMatcher(torch.fx.symbolic_trace(pattern).graph, ignore_literals=True).match(graphs[0].graph)
    assert len(matches) == 1


def test_quant_graph_torch_npu_is_torch_npu_shaped():
    from quant_graph import torch_npu

    assert torch_npu.npu_dynamic_quant is torch.ops.npu.npu_dynamic_quant and torch_npu.hifloat8 == 290
    assert set(dir(torch_npu)) == set(OPS) | {"hifloat8", "float4_e2m1fn_x2", "float4_e1m2fn_x2"}
    with pytest.raises(AttributeError, match="provides only torch_npu's quantization operators.*npu_format_cast"):
        torch_npu.npu_format_cast  # noqa: B018


def test_torch_npu_style_example_compiles_once_and_matches_eager():
    import torch_npu_style

    torch._dynamo.reset()
    assert torch_npu_style.run(torch_npu_style.GptOssStyleW8A8Experts(), (1, 9, 64)) == 1


def test_cli_dumps_the_torch_npu_style_example(tmp_path):
    result = subprocess.run([sys.executable, "-m", "quant_graph", "dump", "examples/torch_npu_style.py:make_model",
                             "--dump-dir", str(tmp_path), "--no-dot"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "torch.ops.npu.npu_dequant_swiglu_quant x1, torch.ops.npu.npu_dynamic_quant x1" in result.stdout
    assert "fused GE nodes: DequantSwigluQuant x1, DynamicQuant x1" in result.stdout
