"""op-plugin's own tests of npu_quantize and npu_group_quant, rewritten to run on CPU.

Ported from Ascend/op-plugin test/test_custom_ops/test_npu_quantize.py and
test_npu_group_quant.py (master and the 7.3.0, 26.0.0 and 26.1.0 branches hold the same
cases): the same shapes, input dtypes, uniform input generators (seeded here), goldens and
tolerance (torch_npu's ``assertRtolEqual``, restated below). Every case runs on both kernel
paths. The one case op-plugin skips, an NZ-format (``npu_format_cast(x, 29)``) int4 per-tensor
quant, runs here in its ND form: the NZ layout exists only on an NPU, and its golden is the
ND golden with the input rearranged into that layout first.
"""

import warnings

import numpy as np
import pytest
import torch

import quant_graph as qg


def uniform(rng, low, high, shape, dtype):
    """op-plugin's generator: numpy uniform draws cast to the dtype (integers truncate)."""
    return torch.from_numpy(rng.uniform(low, high, shape).astype(dtype))


def assert_rtol_equal(actual, golden, prec=1e-4):
    """torch_npu's TestCase.assertRtolEqual for these outputs: same shape and dtype, and an
    element counts as wrong when both its absolute and its relative difference exceed
    ``prec``; more than ``prec`` of all elements wrong fails."""
    assert actual.shape == golden.shape and actual.dtype == golden.dtype, (actual, golden)
    a, g = actual.double().numpy(), golden.double().numpy()
    diff = np.abs(a - g)
    wrong = (diff > prec) & (diff / (np.maximum(np.abs(a), np.abs(g)) + 1e-10) > prec)
    assert wrong.sum() <= a.size * prec, f"{wrong.sum()} of {a.size} elements differ"


def per_channel_golden(x, scales, zero_points, axis, dtype):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantize_per_channel.*deprecated")
        return torch.quantize_per_channel(x, scales, zero_points, axis, dtype).int_repr()


def ascend_quant_v2_golden(x, scales, zero_points):
    v = x.numpy().astype(np.float32) * scales.numpy().astype(np.float32) + zero_points.numpy().astype(np.float32)
    return torch.from_numpy(np.clip(np.round(v, 0), -128, 127).astype(np.int8))


# (name, x shape, scales/zero points shape, x dtype, zero point dtype, axis, dtype); scales float32
PER_CHANNEL = [
    ("3_3_0_int32", (3, 3), (3,), np.float32, np.int32, 0, torch.qint32),
    ("3_3_3_3_1_int8", (3, 3), (3,), np.float32, np.int8, 1, torch.qint8),
    ("3_3_3_3_3_3_3_3_4_uint8", (3,) * 8, (3,), np.float32, np.int32, 4, torch.quint8),
    ("30_30_30_30_30_2_uint8", (30, 30, 30, 30), (30,), np.float16, np.uint8, 2, torch.quint8),
]


@pytest.mark.parametrize("shape,param_shape,x_dtype,zp_dtype,axis,dtype", [c[1:] for c in PER_CHANNEL],
                         ids=[c[0] for c in PER_CHANNEL])
def test_npu_quantize_per_channel(kernel_path, shape, param_shape, x_dtype, zp_dtype, axis, dtype):
    rng = np.random.default_rng(len(shape) * 100 + axis)
    x = uniform(rng, -1, 1, shape, x_dtype)
    scales = uniform(rng, -1, 1, param_shape, np.float32)
    zero_points = uniform(rng, -1, 1, param_shape, zp_dtype)
    golden = per_channel_golden(x.float(), scales, zero_points, axis, dtype)  # op-plugin's golden takes x as float
    assert_rtol_equal(qg.npu_quantize(x, scales, zero_points, dtype, axis), golden)


# (name, scales/zero points shape, axis): x float16 [16, 128], all parameters float16
ASCEND_QUANT_V2 = [
    ("perchannel", (128,), 1),
    ("perhead", (16, 1), -2),
    ("pertensor", (1,), -1),
]


@pytest.mark.parametrize("param_shape,axis", [c[1:] for c in ASCEND_QUANT_V2], ids=[c[0] for c in ASCEND_QUANT_V2])
def test_npu_quantize_ascend_quant_v2(kernel_path, param_shape, axis):
    rng = np.random.default_rng(sum(param_shape) + axis)
    x = uniform(rng, -1, 1, (16, 128), np.float16)
    scales = uniform(rng, -1, 1, param_shape, np.float16)
    zero_points = uniform(rng, -1, 1, param_shape, np.float16)
    out = qg.npu_quantize(x, scales, zero_points, torch.qint8, axis, div_mode=False)
    assert_rtol_equal(out, ascend_quant_v2_golden(x, scales, zero_points))


def int4_words(values):
    """op-plugin's packing golden: consecutive int4 values, 8 to an int32, the first in the
    lowest nibble, each as its two's-complement low 4 bits."""
    nibbles = values.numpy().astype(np.int8).reshape(-1).astype(np.int64) & 0xF
    words = np.zeros((nibbles.size + 7) // 8, dtype=np.int64)
    for j in range(8):
        words |= np.pad(nibbles, (0, (-nibbles.size) % 8))[j::8] << (4 * j)
    return torch.from_numpy(words.astype(np.uint32).view(np.int32))


def test_npu_quantize_ascend_quant_v2_int4_pertensor(kernel_path):
    """op-plugin's ascend_quant_v2_nz_pertensor in ND: float32 [1, 256, 128] in [0, 1), a
    1-element float16 scale of 1, int4 packed 8 per int32, compared word for word."""
    rng = np.random.default_rng(256)
    x = torch.from_numpy(rng.random((1, 256, 128)).astype(np.float32))
    scales = torch.ones(1, dtype=torch.float16)
    golden_int4 = torch.from_numpy(np.clip(np.round(x.numpy() * np.float32(1), 0), -8, 7).astype(np.int8))
    out = qg.npu_quantize(x, scales, None, torch.quint4x2, -1, False)
    assert out.shape == (1, 256, 16) and out.dtype == torch.int32
    assert out.flatten().tolist() == int4_words(golden_int4).tolist()


def group_quant_golden(x, scale, group_index, offset):
    """op-plugin's golden: rows [group_index[e-1], group_index[e]) times scale row e, plus offset."""
    x, scale, offset = (t.numpy().astype(np.float32) for t in (x, scale, offset))
    ends = group_index.numpy()
    rows = [x[(0 if e == 0 else ends[e - 1]):ends[e]] * scale[e] + offset for e in range(scale.shape[0])]
    y = np.concatenate([np.empty((0, x.shape[1]), np.float32), *rows], axis=0)
    return torch.from_numpy(np.clip(np.round(y, 0), -128, 127).astype(np.int8))


@pytest.mark.parametrize("seed", range(4))  # op-plugin draws one random grouping per run; four here
def test_npu_group_quant(kernel_path, seed):
    rng = np.random.default_rng(seed)
    S, H, E = 16, 128, 5
    x = uniform(rng, -1, 1, (S, H), np.float32)
    scale = uniform(rng, -1, 1, (E, H), np.float32)
    offset = uniform(rng, -1, 1, (1,), np.float32)
    group_index = torch.from_numpy(np.append(np.sort(rng.uniform(0, S, E - 1).astype(np.int32)), S).astype(np.int32))
    out = qg.npu_group_quant(x, scale, group_index, offset=offset, dst_dtype=torch.qint8)
    assert_rtol_equal(out, group_quant_golden(x, scale, group_index, offset))
