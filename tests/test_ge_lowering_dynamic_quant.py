"""GE lowering of the torch_npu 2.13/2.14 dynamic quant modes (perchannel, dst_type_max,
float8 and hifloat8 outputs, int dtype codes): the node TorchAir's own converter picks
(DynamicQuant for per-token symmetric quant with dst_type_max 0, DynamicQuantV2 for the
rest), with its attrs, conforming to REG_OP; the compiled run equals eager."""

import pytest
import torch
from ge_ir import conformance_errors, parse_reg_op
from helpers import assert_identical

import quant_graph as qg
from quant_graph import converters
from quant_graph._registry import fused_ge_types
from quant_graph.converters.ge_graph import ge_dtype_names
from quant_graph.ge import dump_ge_graph

# DynamicQuantV2's REG_OP text in TorchAir lists y as int8/int4 only; CANN's own proto
# (hicann/ops-nn quant/dynamic_quant_v2/op_graph/dynamic_quant_v2_proto.h) and the seed
# DynamicQuantV2.md also list the float8 formats and hifloat8.
V2_Y_DTYPES = {"DT_INT8", "DT_INT4", "DT_FLOAT8_E5M2", "DT_FLOAT8_E4M3FN", "DT_HIFLOAT8"}


@pytest.fixture(scope="module", autouse=True)
def torchair_offline():
    _, offline = converters.load_torchair()
    assert offline, "these tests expect a machine without CANN"


def reg_op(op_type):
    ir = parse_reg_op(op_type)
    if op_type == "DynamicQuantV2":
        ir.outputs[0][1].update(V2_Y_DTYPES)
    return ir


def lowered_node(tmp_path, fn, *args):
    torch._dynamo.reset()
    dump = dump_ge_graph(fn, *args, dump_dir=tmp_path)
    assert_identical(dump.outputs, fn(*args))
    (node,) = dump.graphs[0].nodes(fused_ge_types())
    assert conformance_errors(node, reg_op(node.type)) == []
    return node


CASES = {
    # id: (symmetric, call kwargs, node type, expected attrs; y's GE dtype)
    "perchannel sym": (True, {"quant_mode": "perchannel"}, "DynamicQuantV2",
                       {"quant_mode": "perchannel", "is_symmetrical": True, "dst_type_max": 0.0}, "DT_INT8"),
    "perchannel asym int4": (False, {"quant_mode": "perchannel", "dst_type": torch.quint4x2}, "DynamicQuantV2",
                             {"quant_mode": "perchannel", "is_symmetrical": False}, "DT_INT4"),
    "hifloat8 sym": (True, {"dst_type": 290}, "DynamicQuant", {}, "DT_HIFLOAT8"),
    "hifloat8 sym dst_type_max": (True, {"dst_type": 290, "dst_type_max": 15.0}, "DynamicQuantV2",
                                  {"quant_mode": "pertoken", "is_symmetrical": True, "dst_type_max": 15.0},
                                  "DT_HIFLOAT8"),
    "hifloat8 asym pertensor": (False, {"dst_type": 290, "quant_mode": "pertensor", "dst_type_max": 224.0},
                                "DynamicQuantV2", {"quant_mode": "pertensor", "dst_type_max": 224.0},
                                "DT_HIFLOAT8"),
    "float8 asym": (False, {"dst_type": torch.float8_e4m3fn}, "DynamicQuantV2", {"is_symmetrical": False},
                    "DT_FLOAT8_E4M3FN"),
    "code 291 asym perchannel": (False, {"dst_type": 291, "quant_mode": "perchannel"}, "DynamicQuantV2",
                                 {"quant_mode": "perchannel"}, "DT_FLOAT8_E5M2"),
    "code 292 sym": (True, {"dst_type": 292}, "DynamicQuant", {}, "DT_FLOAT8_E4M3FN"),
    "code 16 sym pertensor": (True, {"dst_type": 16, "quant_mode": "pertensor"}, "DynamicQuantV2",
                              {"quant_mode": "pertensor", "is_symmetrical": True}, "DT_INT4"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_new_modes_lower_as_torchair_does(tmp_path, case):
    symmetric, kwargs, op_type, attrs, y_dtype = CASES[case]
    op = qg.npu_dynamic_quant if symmetric else qg.npu_dynamic_quant_asymmetric
    node = lowered_node(tmp_path, lambda x: op(x, **kwargs), torch.randn(3, 6, 32).bfloat16())
    assert node.type == op_type
    for key, value in attrs.items():
        assert node.attrs[key] == value, key
    # DynamicQuant's ge_op leaves dst_type out at its default DT_INT8 (2)
    assert ge_dtype_names()[node.attrs.get("dst_type", 2)] == y_dtype
    if y_dtype != "DT_INT4":  # int4 is repacked to int32 after the node
        assert node.outputs[0].dtype == y_dtype
    assert len(node.outputs) == (2 if op_type == "DynamicQuant" else 3)


def test_perchannel_smooth_scales_reach_the_node(tmp_path):
    def fn(x, smooth):
        return qg.npu_dynamic_quant_asymmetric(x, smooth_scales=smooth, quant_mode="perchannel")

    node = lowered_node(tmp_path, fn, torch.randn(2, 6, 32).half(), torch.rand(6).half() + 0.5)
    present = {t.name: t for t in node.inputs if t.source is not None}
    assert set(present) == {"x", "smooth_scales"} and present["smooth_scales"].dtype == "DT_FLOAT16"


def test_the_registered_op_called_with_an_int_code_lowers_alike(tmp_path):
    node = lowered_node(tmp_path, lambda x: torch.ops.quant_graph.npu_dynamic_quant(x, dst_type=290, dst_type_max=56.0),
                        torch.randn(5, 32).half())
    assert node.type == "DynamicQuantV2" and node.attrs["dst_type_max"] == 56.0
    assert ge_dtype_names()[node.attrs["dst_type"]] == "DT_HIFLOAT8"
