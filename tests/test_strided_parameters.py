"""Parameters that are views with strides (slices, transposes) give the results their
contiguous copies give, on both kernel paths: the C kernels take raw pointers."""

import torch
from helpers import assert_identical

import quant_graph as qg


def seeded(seed):
    """A generator of its own for each random tensor: the same values whatever runs first."""
    return torch.Generator().manual_seed(seed)


def strided(t):
    """The same values as t, held at every other element of a larger tensor."""
    holder = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    holder[..., ::2] = t
    view = holder[..., ::2]
    assert not view.is_contiguous()
    return view


def test_dynamic_quant(kernel_path):
    x = torch.randn(10, 32, generator=seeded(20)).half()
    smooth = torch.rand(3, 32, generator=seeded(21)).half() + 0.5
    ends = torch.tensor([2, 2, 10], dtype=torch.int32)
    assert_identical(qg.npu_dynamic_quant(x, smooth_scales=strided(smooth), group_index=strided(ends)),
                     qg.npu_dynamic_quant(x, smooth_scales=smooth, group_index=ends))


def test_quantize(kernel_path):
    x = torch.randn(6, 16, generator=seeded(28)) * 9
    scales, zero_points = torch.rand(16, generator=seeded(29)) + 0.1, torch.randn(16, generator=seeded(29))
    assert_identical(qg.npu_quantize(x, strided(scales), strided(zero_points), torch.qint8, -1, False),
                     qg.npu_quantize(x, scales, zero_points, torch.qint8, -1, False))
    zp_int = torch.randint(-3, 3, (16,), dtype=torch.int32, generator=seeded(32))
    assert_identical(qg.npu_quantize(x, strided(scales), strided(zp_int), torch.qint8, -1, True),
                     qg.npu_quantize(x, scales, zp_int, torch.qint8, -1, True))


def test_group_quant(kernel_path):
    x = torch.randn(8, 16, generator=seeded(38))
    scale = torch.rand(16, 2, generator=seeded(39)).t()  # [2, 16], transposed
    group_index = torch.tensor([3, 8])
    offset_view = torch.tensor([9.0, 0.5])[1:]  # a storage offset
    assert_identical(qg.npu_group_quant(x, scale, strided(group_index), offset=offset_view),
                     qg.npu_group_quant(x, scale.contiguous(), group_index, offset=torch.tensor([0.5])))


def test_dequant_swiglu_quant(kernel_path):
    x = torch.randint(-20, 20, (6, 128), dtype=torch.int32, generator=seeded(47))
    kwargs = {"weight_scale": torch.rand(2, 128, generator=seeded(48)) * 0.01,
              "activation_scale": torch.rand(6, generator=seeded(47)),
              "quant_scale": torch.rand(2, 64, generator=seeded(49)) + 0.5, "group_index": torch.tensor([2, 3]),
              "quant_mode": 1}
    views = {k: strided(v) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    assert_identical(qg.npu_dequant_swiglu_quant(x, **views), qg.npu_dequant_swiglu_quant(x, **kwargs))
