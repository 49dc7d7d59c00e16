"""One test per validation rule that torch_npu 2.13/2.14's schema, SPEC.md, op-plugin and
the CANN aclnnDynamicQuantV4 document add to the dynamic quant ops: the exception type,
and a message naming the op, the argument and the value seen."""

import re

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import quant_graph as qg

OPS = {"npu_dynamic_quant_asymmetric": qg.npu_dynamic_quant_asymmetric, "npu_dynamic_quant": qg.npu_dynamic_quant}
X = torch.randn(2, 6, 16).to(torch.float16)

CASES = [
    # (id, kwargs, error, argument, value as the message shows it)
    ("unknown dtype code", {"dst_type": 1000}, ValueError, "dst_type", "1000"),
    ("code of an unsupported format: uint8", {"dst_type": 0}, ValueError, "dst_type", "torch.uint8 (code 0)"),
    ("code of an unsupported format: int32", {"dst_type": 3}, ValueError, "dst_type", "torch.int32 (code 3)"),
    ("fp4 (296)", {"dst_type": 296}, ValueError, "dst_type", "float4_e2m1fn_x2 (code 296)"),
    ("dtype not taken: qint8", {"dst_type": torch.qint8}, ValueError, "dst_type", "torch.qint8 (code 12)"),
    ("dst_type_max of another type", {"dst_type": 290, "dst_type_max": "15"}, TypeError, "dst_type_max", "'15'"),
    ("dst_type_max bool", {"dst_type": 290, "dst_type_max": True}, TypeError, "dst_type_max", "True"),
    ("dst_type_max negative", {"dst_type": 290, "dst_type_max": -1.0}, ValueError, "dst_type_max", "-1.0"),
    ("dst_type_max past 32768", {"dst_type": 290, "dst_type_max": 32769.0}, ValueError, "dst_type_max", "32769.0"),
    ("dst_type_max NaN", {"dst_type": 290, "dst_type_max": float("nan")}, ValueError, "dst_type_max", "nan"),
    ("dst_type_max inf", {"dst_type": 290, "dst_type_max": float("inf")}, ValueError, "dst_type_max", "inf"),
    ("dst_type_max with int8", {"dst_type_max": 15.0}, ValueError, "dst_type_max", "int8"),
    ("dst_type_max with int4", {"dst_type": torch.quint4x2, "dst_type_max": 7.0}, ValueError, "dst_type_max",
     "int4"),
    ("dst_type_max with float8", {"dst_type": torch.float8_e4m3fn, "dst_type_max": 224.0}, ValueError,
     "dst_type_max", "float8_e4m3fn"),
    ("perchannel with group_index", {"quant_mode": "perchannel", "smooth_scales": torch.ones(2, 16).half(),
                                     "group_index": torch.tensor([6, 12], dtype=torch.int32)}, ValueError,
     "group_index", "quant_mode='perchannel'"),
    ("perchannel smooth_scales of H", {"quant_mode": "perchannel", "smooth_scales": torch.ones(16).half()},
     ValueError, "smooth_scales", "(16,)"),
    ("perchannel smooth_scales 2-D", {"quant_mode": "perchannel", "smooth_scales": torch.ones(1, 6).half()},
     ValueError, "smooth_scales", "(1, 6)"),
    ("quant_mode unknown", {"quant_mode": "perblock"}, ValueError, "quant_mode", "'perblock'"),
]


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("kwargs,error,argument,value", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_named(name, kwargs, error, argument, value):
    with pytest.raises(error) as info:
        OPS[name](X, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{name}: ") and argument in message and value in message, message


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("kwargs,error,argument,value",
                         [c[1:] for c in CASES if c[2] is ValueError and c[0] != "unknown dtype code"],
                         ids=[c[0] for c in CASES if c[2] is ValueError and c[0] != "unknown dtype code"])
def test_the_registered_op_and_its_fake_kernel_check_alike(name, kwargs, error, argument, value):
    op = getattr(torch.ops.quant_graph, name)
    with pytest.raises(error, match=re.escape(value)):
        op(X, **kwargs)
    with FakeTensorMode() as mode, pytest.raises(error, match=re.escape(value)):
        op(mode.from_tensor(X), **{k: mode.from_tensor(v) if isinstance(v, torch.Tensor) else v
                                   for k, v in kwargs.items()})


def test_an_unknown_code_is_refused_by_the_registered_op_too():
    with pytest.raises(ValueError, match=r"^npu_dynamic_quant: dst_type must be a torch.dtype or one of .*got 1000$"):
        torch.ops.quant_graph.npu_dynamic_quant(X, dst_type=1000)


def test_dst_type_max_at_the_range_ends_is_accepted():
    for m in (0.0, 32768.0, 15, 0.5):
        qg.npu_dynamic_quant(X, dst_type=290, dst_type_max=m)
