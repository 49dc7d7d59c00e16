"""A parameter on another device than the input (here: meta) is an error naming the op and
the argument, never memory a kernel reads."""

import pytest
import torch

import quant_graph as qg

META = {"device": "meta"}
X = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))

CASES = [
    ("npu_group_quant", "scale", lambda: qg.npu_group_quant(X, torch.ones(1, 16, **META), torch.tensor([4]))),
    ("npu_group_quant", "group_index", lambda: qg.npu_group_quant(X, torch.ones(1, 16), torch.tensor([4], **META))),
    ("npu_quantize", "scales", lambda: qg.npu_quantize(X, torch.ones(16, **META), None, torch.qint8, -1, True)),
    ("npu_quantize", "zero_points", lambda: qg.npu_quantize(X, torch.ones(16), torch.zeros(16, **META), torch.qint8,
                                                            -1, False)),
    ("npu_dynamic_quant", "smooth_scales",
     lambda: qg.npu_dynamic_quant(X.half(), smooth_scales=torch.ones(16, dtype=torch.half, **META))),
    ("npu_dynamic_quant_asymmetric", "group_index",
     lambda: qg.npu_dynamic_quant_asymmetric(X.half(), smooth_scales=torch.ones(1, 16, dtype=torch.half),
                                             group_index=torch.tensor([4], dtype=torch.int32, **META))),
    ("npu_dequant_swiglu_quant", "activation_scale",
     lambda: qg.npu_dequant_swiglu_quant(torch.ones(4, 16, dtype=torch.int32), weight_scale=torch.ones(16),
                                         activation_scale=torch.ones(4, **META), quant_scale=torch.ones(8))),
]


@pytest.mark.parametrize("op,arg,call", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_parameter_on_another_device_is_refused(kernel_path, op, arg, call):
    with pytest.raises(ValueError, match=f"^{op}: {arg} must be on (x|input)'s device cpu, got meta$"):
        call()


def test_all_on_meta_gives_meta_outputs_of_the_right_shape():
    y, scale = qg.npu_dynamic_quant(torch.empty(3, 16, dtype=torch.half, **META), dst_type=torch.quint4x2)
    assert (y.device.type, y.shape, y.dtype, scale.shape) == ("meta", (3, 2), torch.int32, (3,))
