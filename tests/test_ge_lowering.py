"""Every op and mode lowers, through TorchAir's real graph code in offline GE mode, to
exactly one fused GE node with the right attrs and inputs, dynamic dims as -1, each node
conforming to its REG_OP definition; the compiled run's results equal plain eager."""

import pytest
import torch
from ge_ir import conformance_errors, parse_reg_op
from helpers import assert_identical

import quant_graph as qg
from quant_graph import converters
from quant_graph._registry import fused_ge_types
from quant_graph.converters.ge_graph import ge_dtype_names
from quant_graph.ge import dump_ge_graph


def seeded(seed):
    """A generator of its own for each random tensor: the same values whatever runs first."""
    return torch.Generator().manual_seed(seed)


# What a lowering may add around its fused node: int4 repacking, broadcasting, casts.
GLUE_TYPES = {"Data", "NetOutput", "Const", "Shape", "Div", "ConcatV2", "Reshape", "Bitcast", "Unsqueeze", "Cast"}


@pytest.fixture(scope="module", autouse=True)
def torchair_offline():
    torchair, offline = converters.load_torchair()
    assert offline, "these tests expect a machine without CANN"
    return torchair


def lower(tmp_path, fn, *args):
    torch._dynamo.reset()  # each test's fn shares a code object with its siblings
    dump = dump_ge_graph(fn, *args, dump_dir=tmp_path)
    assert_identical(dump.outputs, fn(*args))
    assert len(dump.graphs) == 1
    assert dump.pbtxt_paths[0].read_text().count("node {") == len(dump.graphs[0].graph.op)
    return dump


def the_fused_node(dump, op_type):
    graph = dump.graphs[0]
    fused = graph.nodes(fused_ge_types())
    assert [n.type for n in fused] == [op_type], [n.type for n in fused]
    extra = {op.type for op in graph.graph.op} - GLUE_TYPES - {op_type}
    assert not extra, f"decomposed or unexpected nodes: {extra}"
    node = fused[0]
    assert conformance_errors(node, parse_reg_op(op_type)) == []
    return node


def inputs_of(node):
    return {t.name: t for t in node.inputs if t.source is not None}


DQ_CASES = {
    "int8": ({}, {"dst_type": "DT_INT8", "quant_mode": "pertoken"}),
    "int4": ({"dst_type": torch.quint4x2}, {"dst_type": "DT_INT4"}),
    "pertensor": ({"quant_mode": "pertensor"}, {"quant_mode": "pertensor"}),
    "smooth": ({"smooth": "vector"}, {}),
    "moe": ({"smooth": "moe"}, {}),
}


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("case", list(DQ_CASES))
def test_dynamic_quant_lowers_to_dynamic_quant_v2(tmp_path, symmetric, case):
    call, expected_attrs = DQ_CASES[case]
    call = dict(call)
    smooth = call.pop("smooth", None)
    x = torch.randn(5, 4, 64, generator=seeded(64)).to(torch.bfloat16)
    extra = {}
    if smooth == "vector":
        extra["smooth_scales"] = torch.rand(64, generator=seeded(67)).to(torch.bfloat16)
    if smooth == "moe":
        extra = {"smooth_scales": torch.rand(3, 64, generator=seeded(69)).to(torch.bfloat16),
                 "group_index": torch.tensor([4, 12, 20], dtype=torch.int32)}
    op = qg.npu_dynamic_quant if symmetric else qg.npu_dynamic_quant_asymmetric

    def fn(x, smooth_scales=None, group_index=None):
        return op(x, smooth_scales=smooth_scales, group_index=group_index, **call)

    # as TorchAir: per-token symmetric quant lowers to DynamicQuant (V1), which has neither
    # is_symmetrical nor quant_mode, and whose ge_op leaves dst_type out at its default DT_INT8
    v1 = symmetric and case != "pertensor"
    node = the_fused_node(lower(tmp_path, fn, x, *extra.values()), "DynamicQuant" if v1 else "DynamicQuantV2")
    dst_name = qg_dtype = expected_attrs.get("dst_type", "DT_INT8")
    if v1:
        assert set(node.attrs) <= {"dst_type"}
        assert ge_dtype_names()[node.attrs.get("dst_type", 2)] == dst_name
    else:
        assert node.attrs["is_symmetrical"] is symmetric
        assert ge_dtype_names()[node.attrs["dst_type"]] == dst_name
        assert node.attrs["quant_mode"] == expected_attrs.get("quant_mode", "pertoken")
    present = inputs_of(node)
    assert present["x"].shape == [-1, -1, -1] and present["x"].dtype == "DT_BF16"
    assert ("smooth_scales" in present) == (smooth is not None)
    assert ("group_index" in present) == (smooth == "moe")
    # the symmetric op leaves DynamicQuantV2's offset output unused (its dtype unrecorded)
    expected = [qg_dtype, "DT_FLOAT"] if symmetric else [qg_dtype, "DT_FLOAT", "DT_FLOAT"]
    if v1:
        assert len(node.outputs) == 2
    assert [o.dtype for o in node.outputs][:len(expected)] == expected


@pytest.mark.parametrize("dst_type,ge_name", [(torch.float8_e4m3fn, "DT_FLOAT8_E4M3FN"),
                                              (torch.float8_e5m2, "DT_FLOAT8_E5M2")])
def test_dynamic_quant_float8_dst_type(tmp_path, dst_type, ge_name):
    # the raw op's REG_OP text lists int8/int4 only; the seed's DynamicQuantV2 also takes FP8
    dump = lower(tmp_path, lambda x: qg.npu_dynamic_quant(x, dst_type=dst_type),
                 torch.randn(6, 32, generator=seeded(94)).half())
    (node,) = dump.graphs[0].nodes(("DynamicQuant",))
    assert ge_dtype_names()[node.attrs["dst_type"]] == ge_name
    assert node.outputs[0].dtype == ge_name


@pytest.mark.parametrize("dtype,attr", [(torch.qint8, "torch.qint8"), (torch.quint8, "torch.quint8"),
                                        (torch.qint32, "torch.qint32")])
@pytest.mark.parametrize("axis", [1, -1, 0])
@pytest.mark.parametrize("with_zero_points", [False, True])
def test_quantize_div_mode_lowers_to_quantize(tmp_path, dtype, attr, axis, with_zero_points):
    x = torch.randn(6, 5, 16, generator=seeded(105))
    channels = x.shape[axis]
    zp = torch.arange(channels, dtype=torch.int32) if with_zero_points else None

    def fn(x, scales, zero_points):
        return qg.npu_quantize(x, scales, zero_points, dtype, axis, True)

    node = the_fused_node(lower(tmp_path, fn, x, torch.rand(channels, generator=seeded(112)) + 0.1, zp), "Quantize")
    assert node.attrs["dtype"] == attr and node.attrs["axis"] == axis % 3
    present = inputs_of(node)
    assert ("zero_points" in present) == with_zero_points
    assert present["x"].shape == [-1, -1, -1]


@pytest.mark.parametrize("dtype,dst", [(torch.qint8, "DT_INT8"), (torch.quint4x2, "DT_INT4")])
@pytest.mark.parametrize("axis,ge_axis", [(-1, -1), (-2, -2), (1, -1)])
@pytest.mark.parametrize("with_offset", [False, True])
def test_quantize_mul_mode_lowers_to_ascend_quant_v2(tmp_path, dtype, dst, axis, ge_axis, with_offset):
    x = torch.randn(6, 4, 16, generator=seeded(123)).half()
    size = x.shape[-2] if axis == -2 else x.shape[-1]
    zp = torch.randn(size, generator=seeded(125)).half() if with_offset else None

    def fn(x, scales, zero_points):
        return qg.npu_quantize(x, scales, zero_points, dtype, axis, False)

    scales = torch.rand(size, generator=seeded(130)).half() + 0.1
    node = the_fused_node(lower(tmp_path, fn, x, scales, zp), "AscendQuantV2")
    assert ge_dtype_names()[node.attrs["dst_type"]] == dst
    assert node.attrs["axis"] == ge_axis and node.attrs["sqrt_mode"] is False
    assert ("offset" in inputs_of(node)) == with_offset


@pytest.mark.parametrize("dst,ge_dst", [(None, "DT_INT8"), (torch.qint8, "DT_INT8"), (torch.quint4x2, "DT_INT4")])
@pytest.mark.parametrize("with_offset", [False, True])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_group_quant_lowers_to_group_quant(tmp_path, dst, ge_dst, with_offset, index_dtype):
    x = torch.randn(9, 32, generator=seeded(140)).bfloat16()
    offset = torch.tensor([0.5]) if with_offset else None

    def fn(x, scale, group_index, offset):
        return qg.npu_group_quant(x, scale, group_index, offset=offset, dst_dtype=dst)

    scale = torch.rand(3, 32, generator=seeded(146))
    node = the_fused_node(lower(tmp_path, fn, x, scale, torch.tensor([2, 2, 9], dtype=index_dtype),
                                offset), "GroupQuant")
    assert ge_dtype_names()[node.attrs.get("dst_type", 2)] == ge_dst
    present = inputs_of(node)
    assert ("offset" in present) == with_offset
    assert present["group_index"].dtype == ("DT_INT32" if index_dtype == torch.int32 else "DT_INT64")
    assert present["x"].shape == [-1, -1]


DSQ_CASES = {
    "int32 dynamic grouped": dict(grouped=True),
    "int32 static bias offset": dict(static=True, bias=True, offset=True),
    "bf16 dynamic": dict(bf16=True),
    "bf16 static fp16 quant_scale": dict(bf16=True, static=True, half_scale=True),
}


@pytest.mark.parametrize("activate_left", [False, True])
@pytest.mark.parametrize("case", list(DSQ_CASES))
def test_dequant_swiglu_quant_lowers_to_dequant_swiglu_quant(tmp_path, activate_left, case):
    opts = DSQ_CASES[case]
    tokens, hidden = 10, 64
    kwargs = {"quant_mode": 0 if opts.get("static") else 1, "activate_left": activate_left}
    if opts.get("bf16"):
        x = torch.randn(tokens, 2 * hidden, generator=seeded(170)).bfloat16()
    else:
        x = torch.randint(-50, 50, (tokens, 2 * hidden), dtype=torch.int32, generator=seeded(172))
        groups = 2 if opts.get("grouped") else 1
        kwargs["weight_scale"] = torch.rand(groups, 2 * hidden, generator=seeded(174)) * 0.01
        kwargs["activation_scale"] = torch.rand(tokens, generator=seeded(175))
    scale = torch.rand(2 if opts.get("grouped") else 1, hidden, generator=seeded(176)) + 0.1
    kwargs["quant_scale"] = scale.half() if opts.get("half_scale") else scale
    if opts.get("bias"):
        kwargs["bias"] = torch.randint(-5, 5, (2 * hidden,), dtype=torch.int32, generator=seeded(179))
    if opts.get("offset"):
        kwargs["quant_offset"] = torch.rand(1, hidden, generator=seeded(181))
    if opts.get("grouped"):
        kwargs["group_index"] = torch.tensor([3, 5])
    names = list(kwargs)
    tensors = [v for v in kwargs.values() if isinstance(v, torch.Tensor)]
    flags = {k: v for k, v in kwargs.items() if not isinstance(v, torch.Tensor)}

    def fn(x, *tensors):
        return qg.npu_dequant_swiglu_quant(x, **dict(zip([n for n in names if n not in flags], tensors,
                                                         strict=True)), **flags)

    node = the_fused_node(lower(tmp_path, fn, x, *tensors), "DequantSwigluQuant")
    # TorchAir's ge_op leaves out attrs at their REG_OP default ("static", false)
    assert node.attrs.get("quant_mode", "static") == ("static" if opts.get("static") else "dynamic")
    assert node.attrs.get("activate_left", False) is activate_left
    present = inputs_of(node)
    optional = ("weight_scale", "activation_scale", "bias", "quant_scale", "quant_offset", "group_index")
    for name in optional:
        assert (name in present) == (name in kwargs), name
    # TorchAir leaves these out of the node; the summary still names them, in REG_OP order
    assert [t.name for t in node.inputs] == ["x", *optional]
    assert {t.name for t in node.inputs if t.source is None} == {n for n in optional if n not in kwargs}
    assert present["quant_scale"].dtype == "DT_FLOAT"
    assert present["x"].shape == [-1, 2 * hidden] or present["x"].shape == [-1, -1]


def test_mixed_moe_block_lowers_every_quant_op_fused(tmp_path):
    from moe_ffn import make_model

    model, args = make_model(tokens=24, experts=3, hidden=64, intermediate=64)
    dump = lower(tmp_path, model, *args)
    graph = dump.graphs[0]
    assert sorted(n.type for n in graph.nodes(fused_ge_types())) == ["DequantSwigluQuant", "DynamicQuant",
                                                                      "GroupQuant"]
    for node in graph.nodes(fused_ge_types()):
        assert conformance_errors(node, parse_reg_op(node.type)) == [], node.type
    assert dump.not_lowered() == []
    summary = dump.summary()
    assert "not lowered to a fused node: nothing" in summary
    assert "x=DT_BF16[-1, 64]" in summary  # the token dim is dynamic


def test_offline_mode_refuses_to_run_a_graph():
    from torchair.core import _torchair

    from quant_graph.converters._offline import CannRequiredError

    with pytest.raises(CannRequiredError, match="CANN"):
        _torchair.TorchNpuGraphBase("g").load(b"", {})


def test_missing_side_install_says_how_to_get_it(tmp_path, monkeypatch):
    from quant_graph.converters import _offline

    monkeypatch.setenv("QUANT_GRAPH_TORCH_NPU_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps --target"):
        _offline.import_offline()
