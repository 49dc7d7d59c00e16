"""GE lowering of npu_quantize's torch_npu 2.13/2.14 modes (plain int dtypes, float8 outputs,
1-element div-mode scales) and of npu_group_quant's int dtype codes: the attrs TorchAir's own
converters write for the same call, each node checked against its REG_OP."""

import ast
from pathlib import Path

import pytest
import torch
from ge_ir import conformance_errors, parse_reg_op
from test_ge_lowering import inputs_of, lower, the_fused_node, torchair_offline  # noqa: F401 - a fixture

import quant_graph as qg
from quant_graph.converters.ge_graph import ge_dtype_names


def torchair_function(name):
    """A function of TorchAir's npu_quantize converter module, run as TorchAir wrote it (the
    module itself cannot be imported here: it registers a converter for torch.ops.npu)."""
    import torchair
    from torchair.ge import DataType

    path = Path(torchair.__file__).parent / "_ge_concrete_graph" / "ge_converter" / "custom" / "quantized.py"
    (fn,) = [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef) and n.name == name]
    namespace = {"DataType": DataType}
    exec(compile(ast.Module([fn], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def torchair_quantize_attrs(code, div_mode):
    """What conveter_npu_quantize_default writes for dtype ``code``: Quantize's dtype string, or
    AscendQuantV2's dst_type (its DT_QINT8 replaced by DT_INT8)."""
    from torchair.ge import DataType
    from torchair.ge._ge_graph import torch_dtype_value_to_ge_type

    ge_type = torch_dtype_value_to_ge_type(code)
    if div_mode:
        return torchair_function("ge_type_to_torch_str")(ge_type)
    return DataType.DT_INT8 if ge_type == DataType.DT_QINT8 else ge_type


@pytest.mark.parametrize("code,out", [(1, "DT_INT8"), (12, "DT_INT8"), (0, "DT_UINT8"), (13, "DT_UINT8"),
                                      (3, "DT_INT32"), (14, "DT_INT32"), (23, "DT_FLOAT8_E5M2"),
                                      (24, "DT_FLOAT8_E4M3FN")])
@pytest.mark.parametrize("one_scale", [False, True])
def test_quantize_div_mode_new_dtypes_lower_to_quantize(tmp_path, code, out, one_scale):
    x = torch.randn(6, 5, 16) * 10
    size = 1 if one_scale else 5
    # with the 1-element scales a zero point too: float32 for float8 outputs (Ascend 950), else int32
    zp = torch.arange(size).to(torch.float32 if code in (23, 24) else torch.int32) if one_scale else None

    def fn(x, scales, zero_points):
        return qg.npu_quantize(x, scales, zero_points, code, 1, True)

    node = the_fused_node(lower(tmp_path, fn, x, torch.rand(size) + 0.1, zp), "Quantize")
    assert node.attrs["dtype"] == torchair_quantize_attrs(code, True)
    assert node.attrs["axis"] == 1 and node.outputs[0].dtype == out
    present = inputs_of(node)
    assert ("zero_points" in present) == (zp is not None)
    assert present["x"].shape == [-1, -1, -1]


@pytest.mark.parametrize("code,dst", [(1, "DT_INT8"), (23, "DT_FLOAT8_E5M2"), (291, "DT_FLOAT8_E5M2"),
                                      (24, "DT_FLOAT8_E4M3FN"), (292, "DT_FLOAT8_E4M3FN")])
@pytest.mark.parametrize("axis,ge_axis", [(-2, -2), (1, -1)])
def test_quantize_mul_mode_new_dtypes_lower_to_ascend_quant_v2(tmp_path, code, dst, axis, ge_axis):
    x = torch.randn(6, 4, 16).bfloat16()
    size = x.shape[-2] if axis == -2 else x.shape[-1]

    def fn(x, scales, zero_points):
        return qg.npu_quantize(x, scales, zero_points, code, axis, False)

    dump = lower(tmp_path, fn, x, torch.rand(size).bfloat16() + 0.1, torch.randn(size).bfloat16())
    (node,) = dump.graphs[0].nodes(("AscendQuantV2",))
    assert node.attrs["dst_type"] == torchair_quantize_attrs(code, False)
    assert ge_dtype_names()[node.attrs["dst_type"]] == dst and node.outputs[0].dtype == dst
    assert node.attrs["axis"] == ge_axis and node.attrs["round_mode"] == "round" and node.attrs["sqrt_mode"] is False
    # TorchAir 2.13's REG_OP text lists y as int8/int4 only; CANN's current ascend_quant_v2_proto.h
    # (hicann/ops-nn) also lists DT_HIFLOAT8, DT_FLOAT8_E5M2 and DT_FLOAT8_E4M3FN
    lag = [] if dst == "DT_INT8" else [f"output y is {dst}, REG_OP allows ['DT_INT4', 'DT_INT8']"]
    assert conformance_errors(node, parse_reg_op("AscendQuantV2")) == lag


@pytest.mark.parametrize("code,ge_dst", [(1, "DT_INT8"), (12, "DT_INT8"), (16, "DT_INT4")])
def test_group_quant_int_codes_lower_like_their_dtypes(tmp_path, code, ge_dst):
    def fn(x, scale, group_index):
        return qg.npu_group_quant(x, scale, group_index, dst_dtype=code)

    node = the_fused_node(lower(tmp_path, fn, torch.randn(9, 32).half(), torch.rand(3, 32).half(),
                                torch.tensor([2, 2, 9])), "GroupQuant")
    assert ge_dtype_names()[node.attrs.get("dst_type", 2)] == ge_dst
