"""quant_graph._hifloat8 against two independent references: PyPI's en-dtypes (what CANN's
goldens use) and a pure-Python encoder written here from the format's description
(nearest of the enumerated values, ties away from zero, saturating)."""

import bisect
import math

import en_dtypes
import numpy as np
import pytest
import torch

from quant_graph._hifloat8 import decode, hifloat8_bits


def _positive_values():
    """Every finite positive HiF8 value, enumerated from the format table."""
    values = [2.0 ** (m - 23) for m in range(1, 8)]
    for e in range(-15, 16):
        width = 3 if abs(e) <= 3 else 2 if abs(e) <= 7 else 1
        values += [2.0**e * (1 + m / 2**width) for m in range(2**width)]
    return sorted(v for v in values if v <= 32768)


POSITIVE = _positive_values()


def python_reference(x: float) -> float:
    """The HiF8 value a float32 x converts to: nearest, ties away from zero, saturating."""
    if math.isnan(x) or math.isinf(x):
        return x
    a = abs(x)
    if a >= POSITIVE[-1]:
        return math.copysign(POSITIVE[-1], x)
    i = bisect.bisect_right(POSITIVE, a)
    below = POSITIVE[i - 1] if i else 0.0
    above = POSITIVE[i]
    r = above if a - below >= above - a else below
    return math.copysign(r, x) if r else 0.0


def en_dtypes_bits(v: torch.Tensor) -> torch.Tensor:
    with np.errstate(invalid="ignore"):  # NaN has a code of its own
        return torch.from_numpy(v.numpy().astype(en_dtypes.hifloat8).view(np.uint8).copy())


def boundary_values() -> torch.Tensor:
    """Every value, every midpoint between neighbours (0 included), and the float32 values
    next to each midpoint, both signs."""
    grid = [0.0, *POSITIVE]
    mids = [(lo + hi) / 2 for lo, hi in zip(grid, grid[1:], strict=False)]
    pts = torch.tensor(grid + mids, dtype=torch.float32)
    m = torch.tensor(mids, dtype=torch.float32)
    pts = torch.cat([pts, torch.nextafter(m, torch.zeros_like(m)), torch.nextafter(m, torch.full_like(m, 1e9))])
    return torch.cat([pts, -pts])


def random_values(n=200_000, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    log_uniform = torch.exp2(torch.rand(n, generator=g, dtype=torch.float64) * 41 - 26).float()
    log_uniform = torch.where(torch.rand(n, generator=g) < 0.5, -log_uniform, log_uniform)
    bit_patterns = torch.randint(-2**31, 2**31 - 1, (n,), generator=g, dtype=torch.int64).to(torch.int32)
    return torch.cat([log_uniform, bit_patterns.view(torch.float32)])


def test_decode_matches_en_dtypes_for_all_256_codes():
    codes = np.arange(256, dtype=np.uint8)
    theirs = torch.from_numpy(codes.view(en_dtypes.hifloat8).astype(np.float32))
    ours = decode(torch.from_numpy(codes))
    assert torch.equal(ours.isnan(), theirs.isnan())
    assert torch.equal(ours[~ours.isnan()], theirs[~theirs.isnan()])
    assert sorted(v for v in ours.tolist() if v > 0 and math.isfinite(v)) == POSITIVE


def test_special_codes():
    v = torch.tensor([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 32768.0, -32768.0, 1.0, 2.0**-22])
    assert hifloat8_bits(v).tolist() == [0x00, 0x00, 0x80, 0x6F, 0xEF, 0x6E, 0xEE, 0x08, 0x01]


@pytest.mark.parametrize("values", [boundary_values(), random_values()], ids=["boundaries", "random"])
def test_bits_equal_en_dtypes_below_its_overflow(values):
    # en-dtypes rounds to inf from 40960 up; below that both convert alike (NaN included)
    values = values[~(values.abs() >= 40960)]
    assert torch.equal(hifloat8_bits(values), en_dtypes_bits(values))


@pytest.mark.parametrize("values", [boundary_values(), random_values(20_000, seed=1)], ids=["boundaries", "random"])
def test_values_equal_the_python_reference(values):
    expected = torch.tensor([python_reference(x) for x in values.tolist()], dtype=torch.float32)
    ours = decode(hifloat8_bits(values))
    assert torch.equal(ours.isnan(), expected.isnan())
    assert torch.equal(ours[~ours.isnan()], expected[~expected.isnan()])


def test_ties_go_away_from_zero():
    # 1.0625 lies halfway between 1 and 1.125; 2^-23 halfway between 0 and 2^-22
    v = torch.tensor([1.0625, -1.0625, 2.0**-23, 3 * 2.0**-17, 9.5, 7.75])
    assert decode(hifloat8_bits(v)).tolist() == [1.125, -1.125, 2.0**-22, 2.0**-15, 10.0, 8.0]
    assert decode(hifloat8_bits(torch.tensor([0.99 * 2.0**-23]))).tolist() == [0.0]


def test_finite_values_past_32768_saturate_where_en_dtypes_overflows():
    v = torch.tensor([32769.0, 40959.0, 40960.0, 1e30, torch.finfo(torch.float32).max])
    assert hifloat8_bits(v).tolist() == [0x6E] * 5 and hifloat8_bits(-v).tolist() == [0xEE] * 5
    # the documented difference: the reference gives inf from 40960
    assert en_dtypes_bits(v).tolist() == [0x6E, 0x6E, 0x6F, 0x6F, 0x6F]


def test_any_shape_and_float_dtype():
    v = torch.tensor([[1.0, -2.5], [0.1, 300.0]])
    assert hifloat8_bits(v.half()).shape == (2, 2) and hifloat8_bits(v.half()).dtype == torch.uint8
    assert torch.equal(hifloat8_bits(v.bfloat16()), hifloat8_bits(v.bfloat16().float()))
