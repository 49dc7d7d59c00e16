"""References for npu_quantize's torch_npu 2.13/2.14 modes (float8 outputs, 1-element scales),
from SPEC.md's formulas and the float8 formats' definitions, independent of quant_graph's code."""

import torch

# Largest finite value of each format (OCP 8-bit floating point specification).
FLOAT8_MAX = {torch.float8_e4m3fn: 448.0, torch.float8_e5m2: 57344.0}


def float8_nearest(v, dtype):
    """float32 ``v`` as ``dtype`` by search, not by torch's cast: NaN -> +0, saturate to
    +-max, then the nearest representable value, ties to the even bit pattern (an even
    mantissa); the sign (of zero too) is ``v``'s."""
    patterns = torch.arange(128, dtype=torch.int32).to(torch.uint8)  # sign bit clear, ascending values
    values = patterns.view(dtype).float()
    finite = torch.isfinite(values)
    patterns, values = patterns[finite].to(torch.int32), values[finite]
    v = torch.where(torch.isnan(v), torch.zeros_like(v), v)
    a = v.abs().clamp(max=FLOAT8_MAX[dtype]).reshape(-1)
    hi = torch.searchsorted(values, a).clamp(max=len(values) - 1)
    lo = (hi - 1).clamp(min=0)
    d_lo, d_hi = a - values[lo], values[hi] - a
    take_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (patterns[hi] % 2 == 0))
    bits = torch.where(take_hi, patterns[hi], patterns[lo])
    bits = torch.where(torch.signbit(v).reshape(-1), bits | 0x80, bits)
    return bits.to(torch.uint8).view(dtype).reshape(v.shape)


def _along(p, ndim, dim):
    """A parameter broadcast against an ``ndim``-D input along ``dim`` (1-D, or already of input's rank)."""
    if p.dim() == ndim:
        return p.float()
    shape = [1] * ndim
    shape[dim] = -1
    return p.float().reshape(shape)


def quantize_div_float_reference(x, scales, zero_points, dtype, axis):
    """div_mode=True into a float8 format: ``x * (1 / scale) + zero_point`` in float32, as the
    integer outputs (torch.quantize_per_channel) compute it, then the float8 conversion."""
    dim = axis % x.dim()
    v = x.float() * _along(1.0 / scales.float(), x.dim(), dim)
    if zero_points is not None:
        v = v + _along(zero_points, x.dim(), dim)
    return float8_nearest(v, dtype)


def quantize_mul_float_reference(x, scales, zero_points, dtype, axis):
    """div_mode=False into a float8 format: ``x * scales + zero_points`` in float32 along the
    last dim (the second-to-last for axis == -2), then the float8 conversion."""
    dim = x.dim() - 2 if axis == -2 else x.dim() - 1
    v = x.float() * _along(scales, x.dim(), dim)
    if zero_points is not None:
        v = v + _along(zero_points, x.dim(), dim)
    return float8_nearest(v, dtype)


def float8_midpoints(dtype):
    """Every value exactly half-way between two neighbouring finite values of ``dtype``, both
    signs: where the tie rule decides."""
    values = torch.arange(128, dtype=torch.int32).to(torch.uint8).view(dtype).float()
    values = values[torch.isfinite(values)]
    mids = (values[1:] + values[:-1]) / 2  # exact in float32: float8 values have few mantissa bits
    return torch.cat([mids, -mids])
