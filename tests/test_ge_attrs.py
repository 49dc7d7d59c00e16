"""Every attr, input and output of each op's fused GE node, pinned to literal values.

Built with TorchAir's real graph code in offline GE mode. For each op and mode the test
names EVERY attr of the operator's REG_OP definition: either its exact value on the node,
or ABSENT where TorchAir's ``ge_op`` leaves an attr at its REG_OP default out of the node.
Inputs are pinned by name, order, presence and dtype; outputs by name and dtype; and all of
it is held against REG_OP (``ge_ir.parse_reg_op``) too.

The expected values are TorchAir's own converters for the same torch_npu ops, copied
literally from torch_npu 2.13.0's
``torch_npu/dynamo/torchair/_ge_concrete_graph/ge_converter/custom/``:
``npu_dynamic_quant.py`` (DynamicQuant for symmetric per-token quant: dst_type;
DynamicQuantV2: dst_type, is_symmetrical, quant_mode, dst_type_max),
``quantized.py`` (AscendQuantV2: sqrt_mode=False, round_mode="round", axis=min(axis, -1);
Quantize: dtype as "torch.qint8"/"torch.quint8"/"torch.qint32", axis made non-negative),
``npu_group_quant.py`` (GroupQuant: dst_type; int8 here, not TorchAir's uint8 default, which
SPEC.md names a TorchAir bug) and ``npu_dequant_swiglu_quant.py`` (DequantSwigluQuant:
dst_type=DT_INT8 (torch code 1), round_mode="rint", activate_dim=-1, swiglu_mode=0,
clamp_limit=7.0, glu_alpha=1.702, glu_bias=1.0, quant_mode "static"/"dynamic").
Where quant_graph knowingly differs from TorchAir (SPEC.md, "Known TorchAir behaviour"),
the comment at the case says so.
"""

import pytest
import torch
from ge_ir import conformance_errors, parse_reg_op

import quant_graph as qg
from quant_graph._registry import fused_ge_types
from quant_graph.ge import dump_ge_graph

ABSENT = "<absent: REG_OP default>"
UNRECORDED = "?"  # an output whose dtype the graph does not record (an unused output)


@pytest.fixture(scope="module")
def ge_dtype():
    """GE DataType names -> values; the one place this module imports quant_graph's converters."""
    from quant_graph import converters

    converters.load_torchair()
    from torchair.ge import DataType

    return lambda name: getattr(DataType, name)


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


# (id, GE op type, fn, args, attrs, inputs [(name, GE dtype or None if absent)], output dtypes)
CASES = []


def case(id, op_type, fn, args, attrs, inputs, outputs):
    CASES.append(pytest.param(op_type, fn, args, attrs, inputs, outputs, id=id))


# --- DynamicQuant / DynamicQuantV2 ----------------------------------------------------
# Symmetric per-token quant lowers to DynamicQuant (V1), as TorchAir's converter does (on
# A2/A3 CANN runs it on that kernel; docs/contracts.md); every other mode to DynamicQuantV2.
DQ_DST = [(None, "DT_INT8"), (torch.int8, "DT_INT8"), (torch.quint4x2, "DT_INT4")]
FP8_DST = [(torch.float8_e4m3fn, "DT_FLOAT8_E4M3FN"), (torch.float8_e5m2, "DT_FLOAT8_E5M2")]


def _dq(symmetric, dst_type, quant_mode, smooth, x_dtype):
    g = _g(1)
    x = (torch.randn(5, 3, 64, generator=g)).to(x_dtype)
    op = qg.npu_dynamic_quant if symmetric else qg.npu_dynamic_quant_asymmetric
    args = [x]
    if smooth == "vector":
        args.append((torch.rand(64, generator=g) + 0.5).to(x_dtype))
    if smooth == "moe":
        args += [(torch.rand(3, 64, generator=g) + 0.5).to(x_dtype), torch.tensor([4, 12, 15], dtype=torch.int32)]

    def fn(x, smooth_scales=None, group_index=None):
        return op(x, smooth_scales=smooth_scales, group_index=group_index, dst_type=dst_type, quant_mode=quant_mode)

    return fn, tuple(args)


for _sym in (True, False):
    for _dst, _ge in DQ_DST + (FP8_DST if _sym else []):
        for _mode in ("pertoken", "pertensor"):
            for _smooth in ("none",) + (("vector", "moe") if _dst is None and _mode == "pertoken" else ()):
                _xd = torch.bfloat16 if _smooth != "vector" else torch.float16
                _xname = "DT_BF16" if _xd == torch.bfloat16 else "DT_FLOAT16"
                _fn, _args = _dq(_sym, _dst, _mode, _smooth, _xd)
                _inputs = [("x", _xname), ("smooth_scales", None if _smooth == "none" else _xname),
                           ("group_index", "DT_INT32" if _smooth == "moe" else None)]
                if _sym and _mode == "pertoken":  # as TorchAir: DynamicQuant (V1), its only attr dst_type
                    case(f"DynamicQuant-{_ge}-{_smooth}", "DynamicQuant", _fn, _args,
                         {"dst_type": ABSENT if _ge == "DT_INT8" else _ge}, _inputs, [_ge, "DT_FLOAT"])
                    continue
                case(f"DynamicQuantV2-{'sym' if _sym else 'asym'}-{_ge}-{_mode}-{_smooth}", "DynamicQuantV2", _fn,
                     _args,
                     {"dst_type": _ge, "is_symmetrical": _sym, "quant_mode": _mode, "dst_type_max": 0.0},
                     _inputs,
                     # the symmetric op leaves DynamicQuantV2's offset output unused
                     [_ge, "DT_FLOAT", UNRECORDED if _sym else "DT_FLOAT"])


# --- Quantize (div_mode=True) ----------------------------------------------------------
def _quantize(x, scales, zero_points, dtype, axis, div_mode):
    def fn(x, scales, zero_points):
        return qg.npu_quantize(x, scales, zero_points, dtype, axis, div_mode)

    return fn, (x, scales, zero_points)


_X3 = torch.randn(6, 5, 16, generator=_g(2)) * 4
_ZP = {"DT_INT32": torch.int32, "DT_INT8": torch.int8, "DT_UINT8": torch.uint8, "DT_BF16": torch.bfloat16}
for _id, _dtype, _attr, _out, _axis, _ge_axis, _xd, _xname, _sd, _sname, _zp in [
    ("qint8-axis1-f32", torch.qint8, "torch.qint8", "DT_INT8", 1, 1, torch.float32, "DT_FLOAT", torch.float32,
     "DT_FLOAT", None),
    ("qint8-axis-1-zp-int8", torch.qint8, "torch.qint8", "DT_INT8", -1, 2, torch.float16, "DT_FLOAT16",
     torch.float32, "DT_FLOAT", "DT_INT8"),
    # bfloat16 scales need bfloat16 input and zero points (CANN's aclnnQuantize checks)
    ("quint8-axis0-zp-uint8", torch.quint8, "torch.quint8", "DT_UINT8", 0, 0, torch.bfloat16, "DT_BF16",
     torch.float32, "DT_FLOAT", "DT_UINT8"),
    ("quint8-axis-2-zp-int32", torch.quint8, "torch.quint8", "DT_UINT8", -2, 1, torch.float32, "DT_FLOAT",
     torch.float32, "DT_FLOAT", "DT_INT32"),
    ("qint32-axis2-zp-bf16", torch.qint32, "torch.qint32", "DT_INT32", 2, 2, torch.bfloat16, "DT_BF16",
     torch.bfloat16, "DT_BF16", "DT_BF16"),
    ("qint32-axis-3", torch.qint32, "torch.qint32", "DT_INT32", -3, 0, torch.float16, "DT_FLOAT16", torch.float32,
     "DT_FLOAT", None),
]:
    _c = _X3.shape[_axis]
    _fn, _args = _quantize(_X3.to(_xd), (torch.rand(_c, generator=_g(3)) + 0.1).to(_sd),
                           None if _zp is None else torch.arange(_c).to(_ZP[_zp]), _dtype, _axis, True)
    case(f"Quantize-{_id}", "Quantize", _fn, _args, {"dtype": _attr, "axis": _ge_axis},
         [("x", _xname), ("scales", _sname), ("zero_points", None if _zp is None else _zp)], [_out])

# --- AscendQuantV2 (div_mode=False) ------------------------------------------------------
for _id, _dtype, _out, _axis, _ge_axis, _xd, _xname, _shape, _offset in [
    ("qint8-axis-1-f32", torch.qint8, "DT_INT8", -1, -1, torch.float32, "DT_FLOAT", (16,), False),
    ("qint8-axis-2-f16-offset", torch.qint8, "DT_INT8", -2, -2, torch.float16, "DT_FLOAT16", (5,), True),
    ("qint8-axis1-bf16-offset", torch.qint8, "DT_INT8", 1, -1, torch.bfloat16, "DT_BF16", (1,), True),
    ("int4-axis0-f32", torch.quint4x2, "DT_INT4", 0, -1, torch.float32, "DT_FLOAT", (16,), False),
    ("int4-axis-2-f16-multidim", torch.quint4x2, "DT_INT4", -2, -2, torch.float16, "DT_FLOAT16", (1, 5, 1), True),
]:
    _fn, _args = _quantize(_X3.to(_xd), (torch.rand(_shape, generator=_g(4)) + 0.1).to(_xd),
                           torch.randn(_shape, generator=_g(5)).to(_xd) if _offset else None, _dtype, _axis, False)
    case(f"AscendQuantV2-{_id}", "AscendQuantV2", _fn, _args,
         {"sqrt_mode": False, "round_mode": "round", "dst_type": _out, "axis": _ge_axis},
         [("x", _xname), ("scale", _xname), ("offset", _xname if _offset else None)], [_out])


# --- GroupQuant -------------------------------------------------------------------------
def _group_quant(x, scale, group_index, offset, dst_dtype):
    def fn(x, scale, group_index, offset):
        return qg.npu_group_quant(x, scale, group_index, offset=offset, dst_dtype=dst_dtype)

    return fn, (x, scale, group_index, offset)


for _id, _dst, _out, _xd, _xname, _sd, _sname, _gd, _gname, _offset in [
    # TorchAir defaults dst_dtype to uint8 here: a TorchAir bug (SPEC.md); REG_OP and meta say int8
    ("default-f16-int32-offset", None, "DT_INT8", torch.float16, "DT_FLOAT16", torch.float32, "DT_FLOAT",
     torch.int32, "DT_INT32", True),
    ("int8-bf16-int64", torch.int8, "DT_INT8", torch.bfloat16, "DT_BF16", torch.bfloat16, "DT_BF16", torch.int64,
     "DT_INT64", False),
    ("qint8-f32-int64-offset", torch.qint8, "DT_INT8", torch.float32, "DT_FLOAT", torch.float16, "DT_FLOAT16",
     torch.int64, "DT_INT64", True),
    ("int4-bf16-int32", torch.quint4x2, "DT_INT4", torch.bfloat16, "DT_BF16", torch.float32, "DT_FLOAT",
     torch.int32, "DT_INT32", False),
]:
    _fn, _args = _group_quant((torch.randn(9, 32, generator=_g(6))).to(_xd),
                              (torch.rand(3, 32, generator=_g(7))).to(_sd),
                              torch.tensor([2, 2, 9], dtype=_gd), torch.tensor([0.5]).to(_sd) if _offset else None,
                              _dst)
    case(f"GroupQuant-{_id}", "GroupQuant", _fn, _args, {"dst_type": _out},
         [("x", _xname), ("scale", _sname), ("group_index", _gname), ("offset", _sname if _offset else None)],
         [_out])


# --- DequantSwigluQuant -----------------------------------------------------------------
DSQ_OPTIONAL = ("weight_scale", "activation_scale", "bias", "quant_scale", "quant_offset", "group_index")


def _dsq(x, tensors, flags):
    names = list(tensors)

    def fn(x, *values):
        return qg.npu_dequant_swiglu_quant(x, **dict(zip(names, values, strict=True)), **flags)

    return fn, (x, *tensors.values())


def _dsq_case(id, x, tensors, flags, attrs, input_dtypes):
    """attrs: the ones that differ from the REG_OP defaults TorchAir leaves out."""
    fn, args = _dsq(x, tensors, flags)
    expected = {"activate_left": ABSENT, "quant_mode": ABSENT, "dst_type": "DT_INT8", "round_mode": "rint",
                "activate_dim": -1, "swiglu_mode": ABSENT, "clamp_limit": ABSENT, "glu_alpha": ABSENT,
                "glu_bias": ABSENT, **attrs}
    inputs = [("x", input_dtypes["x"])] + [(n, input_dtypes.get(n)) for n in DSQ_OPTIONAL]
    case(f"DequantSwigluQuant-{id}", "DequantSwigluQuant", fn, args, expected, inputs, ["DT_INT8", "DT_FLOAT"])


_T, _H = 10, 64
_XI = torch.randint(-50, 50, (_T, 2 * _H), generator=_g(8), dtype=torch.int32)
_XB = torch.randn(_T, 2 * _H, generator=_g(9)).bfloat16()
_WS, _AS = torch.rand(1, 2 * _H, generator=_g(10)) * 0.01, torch.rand(_T, generator=_g(11))
_dsq_case("int32-dynamic", _XI, {"weight_scale": _WS, "activation_scale": _AS}, {"quant_mode": 1},
          {"quant_mode": "dynamic"}, {"x": "DT_INT32", "weight_scale": "DT_FLOAT", "activation_scale": "DT_FLOAT"})
_dsq_case("int32-dynamic-grouped-left", _XI,
          {"weight_scale": torch.rand(2, 2 * _H, generator=_g(12)), "activation_scale": _AS.reshape(_T, 1),
           "quant_scale": torch.rand(2, _H, generator=_g(13)) + 0.1, "group_index": torch.tensor([3, 5])},
          {"quant_mode": 1, "activate_left": True}, {"quant_mode": "dynamic", "activate_left": True},
          {"x": "DT_INT32", "weight_scale": "DT_FLOAT", "activation_scale": "DT_FLOAT", "quant_scale": "DT_FLOAT",
           "group_index": "DT_INT64"})
_dsq_case("int32-static-bias-offset", _XI,
          {"weight_scale": _WS.reshape(-1), "activation_scale": _AS,
           "bias": torch.randint(-5, 5, (2 * _H,), generator=_g(14), dtype=torch.int32),
           "quant_scale": torch.rand(1, _H, generator=_g(15)) + 0.1, "quant_offset": torch.rand(1, _H)},
          {"quant_mode": 0}, {},
          {"x": "DT_INT32", "weight_scale": "DT_FLOAT", "activation_scale": "DT_FLOAT", "bias": "DT_INT32",
           "quant_scale": "DT_FLOAT", "quant_offset": "DT_FLOAT"})
_dsq_case("bf16-dynamic-left", _XB, {}, {"quant_mode": 1, "activate_left": True},
          {"quant_mode": "dynamic", "activate_left": True}, {"x": "DT_BF16"})
# quant_scale/quant_offset in float16/bfloat16 are cast to DequantSwigluQuant's float32
# (TorchAir passes them uncast although REG_OP takes float32: SPEC.md)
_dsq_case("bf16-static-half-params", _XB,
          {"quant_scale": (torch.rand(_H, generator=_g(16)) + 0.1).half(),
           "quant_offset": torch.rand(1, _H, generator=_g(17)).bfloat16()},
          {}, {}, {"x": "DT_BF16", "quant_scale": "DT_FLOAT", "quant_offset": "DT_FLOAT"})


@pytest.mark.parametrize("op_type,fn,args,attrs,inputs,outputs", CASES)
def test_fused_node_is_pinned(tmp_path, ge_dtype, op_type, fn, args, attrs, inputs, outputs):
    torch._dynamo.reset()
    dump = dump_ge_graph(fn, *args, dump_dir=tmp_path)
    fused = [node for node in dump.fused_nodes() if node.type in fused_ge_types()]
    assert [n.type for n in fused] == [op_type]
    node = fused[0]
    ir = parse_reg_op(op_type)

    # every REG_OP attr is accounted for, with its exact value (or left out at its default)
    assert set(attrs) == set(ir.attrs), "the test names every REG_OP attr"
    assert set(node.attrs) <= set(ir.attrs), f"attrs REG_OP lacks: {set(node.attrs) - set(ir.attrs)}"
    for name, value in attrs.items():
        if value == ABSENT:
            assert name not in node.attrs, f"{name}={node.attrs.get(name)!r}, expected absent (REG_OP default)"
            continue
        if name == "dst_type":
            value = ge_dtype(value)
        assert name in node.attrs, f"attr {name} missing"
        got = node.attrs[name]
        assert (type(got), got) == (type(value), value), f"attr {name}: {got!r}, expected {value!r}"

    # inputs: REG_OP's names in REG_OP's order, each present with its dtype or absent
    assert [name for name, _ in inputs] == [name for name, _, _ in ir.inputs]
    seen = [(t.name, t.dtype if t.source is not None else None) for t in node.inputs]
    assert seen == inputs

    # outputs: REG_OP's names, each with its dtype
    assert [o.name for o in node.outputs] == [name for name, _ in ir.outputs]
    assert [o.dtype for o in node.outputs] == outputs
    aliases = {"DT_FLOAT32": "DT_FLOAT", "DT_BFLOAT16": "DT_BF16"}
    for out, (name, allowed) in zip(node.outputs, ir.outputs, strict=True):
        # REG_OP's DynamicQuantV2 text lags the seed, which also takes FP8 outputs
        if out.dtype != UNRECORDED and not out.dtype.startswith("DT_FLOAT8"):
            assert out.dtype in {aliases.get(d, d) for d in allowed}, (name, out.dtype, allowed)
    errors = conformance_errors(node, ir)
    assert [e for e in errors if not e.startswith("output y is DT_FLOAT8_")] == []
