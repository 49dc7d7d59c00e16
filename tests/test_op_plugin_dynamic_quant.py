"""op-plugin's own tests of the two ops, ported to CPU (Ascend/op-plugin
test/test_custom_ops/test_npu_dynamic_quant.py and test_npu_dynamic_quant_asymmetric.py,
rewritten here): the same inputs (randn [2, 32, 256] in float16 or bfloat16; for the MoE
cases 64 experts, randn smooth_scales [64, 256] and sorted random group ends with the
last set to the row count), the same float32 goldens with no clamping, and the same
tolerances (y within 1, scale and offset within rtol 1e-4). Their int4 cases read the
packed int32 output back as nibbles, low nibble of each byte first."""

import numpy as np
import pytest
import torch

import quant_graph as qg

SHAPE = [2, 32, 256]
GROUPS = 64


def generate(dtype, moe, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.randn(SHAPE, dtype=dtype)
    if not moe:
        return x, None, None
    rows = x.numel() // SHAPE[-1]
    smooth = torch.randn(GROUPS, SHAPE[-1], dtype=dtype)
    ends = sorted(int(v) for v in rng.integers(0, rows, GROUPS))
    ends[-1] = rows
    return x, smooth, torch.tensor(ends, dtype=torch.int32)


def smoothed(x, smooth, group_index):
    xf = x.float()
    if group_index is None:
        return xf
    flat = xf.reshape(-1, SHAPE[-1])
    start = 0
    for g, end in enumerate(group_index.tolist()):
        if end > start:
            flat[start:end] = flat[start:end] * smooth[g].float()
        start = end
    return flat.reshape(xf.shape)


def golden_symmetric(x, smooth, group_index, int4):
    xf = smoothed(x, smooth, group_index)
    scale = xf.abs().amax(-1, keepdim=True) / (7 if int4 else 127)
    return (xf / scale).round(), scale.squeeze(-1)


def golden_asymmetric(x, smooth, group_index, int4):
    xf = smoothed(x, smooth, group_index)
    hi, lo = xf.amax(-1, keepdim=True), xf.amin(-1, keepdim=True)
    scale = (hi - lo) / (15 if int4 else 255)
    offset = (7 if int4 else 127) - hi / scale
    return (xf / scale + offset).round(), scale.squeeze(-1), offset.squeeze(-1)


def nibbles(packed):
    """int32 words of 8 int4 values as the values: each byte's low nibble first, sign-extended."""
    b = packed.contiguous().view(torch.uint8).reshape(-1, 1).to(torch.int16)
    low, high = b & 0xF, b >> 4
    values = torch.cat([low, high], dim=-1)
    return torch.where(values >= 8, values - 16, values).reshape(SHAPE)


CASES = [  # op-plugin's test names, without the op prefix
    ("fp16_input", torch.float16, False, False), ("bf16_input", torch.bfloat16, False, False),
    ("fp16_input_smooth_group", torch.float16, True, False), ("bfp16_input_smooth_group", torch.bfloat16, True, False),
    ("int4_fp16_input", torch.float16, False, True), ("int4_bf16_input", torch.bfloat16, False, True),
    ("int4_fp16_input_smooth_group", torch.float16, True, True),
    ("int4_bf16_input_smooth_group", torch.bfloat16, True, True),
]


@pytest.mark.parametrize("dtype,moe,int4", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_npu_dynamic_quant(kernel_path, dtype, moe, int4):
    x, smooth, group_index = generate(dtype, moe, seed=len(CASES) * int4 + 2 * moe + (dtype == torch.bfloat16))
    y_golden, scale_golden = golden_symmetric(x, smooth, group_index, int4)
    y, scale = qg.npu_dynamic_quant(x, smooth_scales=smooth, group_index=group_index,
                                    dst_type=torch.quint4x2 if int4 else torch.int8)
    y = nibbles(y) if int4 else y
    torch.testing.assert_close(y.float(), y_golden, atol=1.0, rtol=0.0)
    torch.testing.assert_close(scale, scale_golden, atol=0.0, rtol=1e-4)


@pytest.mark.parametrize("dtype,moe,int4", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_npu_dynamic_quant_asymmetric(kernel_path, dtype, moe, int4):
    x, smooth, group_index = generate(dtype, moe, seed=100 + len(CASES) * int4 + 2 * moe + (dtype == torch.bfloat16))
    y_golden, scale_golden, offset_golden = golden_asymmetric(x, smooth, group_index, int4)
    y, scale, offset = qg.npu_dynamic_quant_asymmetric(x, smooth_scales=smooth, group_index=group_index,
                                                       dst_type=torch.quint4x2 if int4 else torch.int8)
    y = nibbles(y) if int4 else y
    torch.testing.assert_close(y.float(), y_golden, atol=1.0, rtol=0.0)
    torch.testing.assert_close(scale, scale_golden, atol=0.0, rtol=1e-4)
    torch.testing.assert_close(offset, offset_golden, atol=0.0, rtol=1e-4)
