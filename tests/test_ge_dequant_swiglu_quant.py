"""npu_dequant_swiglu_quant's torch_npu 2.13/2.14 arguments lower, through TorchAir's real
graph code in offline GE mode, to one DequantSwigluQuant node conforming to its REG_OP,
with the attrs TorchAir's own converter (ge_converter/custom/npu_dequant_swiglu_quant.py)
writes for them: swiglu_mode, clamp_limit, glu_alpha, glu_bias as given, activate_dim as
given (-1 for None), round_mode as its string ("rint" for None or 0) and dst_type as the GE
DataType of the torch_npu code (DT_INT8 = 2 for None or 1). Where TorchAir passes a
float16/bfloat16 quant_scale uncast, which the REG_OP (float32 only) refuses, we cast."""

import pytest
import torch
from test_ge_lowering import inputs_of, lower, the_fused_node, torchair_offline  # noqa: F401

import quant_graph as qg

# TorchAir's ge_op leaves an attr out of the node where it equals the REG_OP default
REG_OP_DEFAULTS = {"activate_left": False, "quant_mode": "static", "dst_type": "DT_INT8", "round_mode": "rint",
                   "activate_dim": -1, "swiglu_mode": 0, "clamp_limit": 7.0, "glu_alpha": 1.702, "glu_bias": 1.0}

CASES = {
    "mode 1 fp16 rank 3": (torch.float16, (2, 5, 128), {"swiglu_mode": 1, "clamp_limit": 3.0, "glu_alpha": 0.5,
                                                        "glu_bias": 0.25, "dst_type": 1, "round_mode": 0}),
    "mode 2 bf16 left static": (torch.bfloat16, (7, 128), {"swiglu_mode": 2, "activate_left": True,
                                                           "quant_mode": 0, "glu_bias": -1.5}),
    "mode 1 int32 grouped int32 counts": (torch.int32, (9, 256), {"swiglu_mode": 1, "group_index": "int32",
                                                                  "quant_mode": 1, "dst_type": torch.int8}),
    "int32 float16 bias no activation_scale": (torch.int32, (6, 128), {"bias": torch.float16, "no_act": True}),
    "int32 float32 bias": (torch.int32, (6, 128), {"bias": torch.float32, "swiglu_mode": 1}),
    "activate_dim 0 static": (torch.int32, (8, 3, 64), {"activate_dim": 0, "quant_mode": 0, "one_scale": True,
                                                        "swiglu_mode": 2}),
    "activate_dim -2 static": (torch.float16, (4, 6, 64), {"activate_dim": -2, "quant_mode": 0,
                                                           "one_scale": True}),
}

TENSOR_ARGS = ("weight_scale", "activation_scale", "bias", "quant_scale", "quant_offset", "group_index")


def build(dtype, shape, opts):
    opts = dict(opts)
    g = torch.Generator().manual_seed(len(shape))
    *lead, width = shape
    bias_dtype, no_act, one_scale = opts.pop("bias", None), opts.pop("no_act", False), opts.pop("one_scale", False)
    grouped = opts.pop("group_index", None)
    kwargs = {"quant_mode": 1, **opts}
    groups = 2 if grouped else 1
    if dtype == torch.int32:
        x = torch.randint(-50, 50, shape, generator=g, dtype=torch.int32)
        kwargs["weight_scale"] = torch.rand(groups, width, generator=g) * 0.01
        if not no_act:
            kwargs["activation_scale"] = torch.rand(*lead, generator=g)
    else:
        x = torch.randn(shape, generator=g).to(dtype)
    if bias_dtype is not None:
        kwargs["bias"] = torch.randn(width, generator=g).to(bias_dtype)
    if one_scale:
        kwargs["quant_scale"], kwargs["quant_offset"] = torch.tensor([0.05]), torch.tensor([1.0])
    else:
        kwargs["quant_scale"] = (torch.rand(groups, width // 2, generator=g) + 0.1).half()
    if grouped:
        kwargs["group_index"] = torch.tensor([4, 3], dtype=getattr(torch, grouped))
    return x, kwargs


@pytest.mark.parametrize("case", list(CASES))
def test_lowers_with_torchairs_attrs(tmp_path, case):
    dtype, shape, opts = CASES[case]
    x, kwargs = build(dtype, shape, opts)
    names = [n for n in TENSOR_ARGS if n in kwargs]
    flags = {k: v for k, v in kwargs.items() if k not in names}

    def fn(x, *tensors):
        return qg.npu_dequant_swiglu_quant(x, **dict(zip(names, tensors, strict=True)), **flags)

    from torchair.ge import DataType  # importable once the torchair_offline fixture ran

    node = the_fused_node(lower(tmp_path, fn, x, *(kwargs[n] for n in names)), "DequantSwigluQuant")
    defaults = {**REG_OP_DEFAULTS, "dst_type": DataType.DT_INT8}
    expected = {
        "activate_left": flags.get("activate_left", False),
        "quant_mode": {0: "static", 1: "dynamic"}[flags["quant_mode"]],
        "dst_type": DataType.DT_INT8, "round_mode": "rint", "activate_dim": flags.get("activate_dim", -1),
        "swiglu_mode": flags.get("swiglu_mode", 0), "clamp_limit": flags.get("clamp_limit", 7.0),
        "glu_alpha": flags.get("glu_alpha", 1.702), "glu_bias": flags.get("glu_bias", 1.0)}
    for attr, value in expected.items():
        assert node.attrs.get(attr, defaults[attr]) == pytest.approx(value), attr
    present = inputs_of(node)
    assert [t.name for t in node.inputs] == ["x", *TENSOR_ARGS]
    assert set(present) == {"x", *names}
    assert present["x"].dtype == {torch.int32: "DT_INT32", torch.float16: "DT_FLOAT16",
                                  torch.bfloat16: "DT_BF16"}[dtype]
    assert len(present["x"].shape) == len(shape)
    assert present["quant_scale"].dtype == "DT_FLOAT"  # cast: TorchAir would pass float16 on
    if "bias" in present:
        assert present["bias"].dtype == {torch.float16: "DT_FLOAT16", torch.float32: "DT_FLOAT"}[kwargs["bias"].dtype]
    if "group_index" in present:
        assert present["group_index"].dtype == "DT_INT32"
    assert [(t.name, t.dtype) for t in node.outputs] == [("y", "DT_INT8"), ("scale", "DT_FLOAT")]
