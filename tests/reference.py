"""Independent references written from SPEC.md's formulas: whole tensors, no chunking,
no code shared with quant_graph. Arithmetic in float32 as the SPEC says."""

import math
import warnings

import numpy as np
import torch

INT_LIMITS = {torch.int8: (-128, 127), torch.quint4x2: (-8, 7)}


def saturate_round(v, lo, hi):
    v = torch.where(torch.isnan(v), torch.zeros_like(v), v)
    return torch.round(torch.clamp(v, lo, hi))


def pack_int4_reference(q):
    """Element 8k+j of a row in bits [4j, 4j+4) of int32 k, built with Python ints."""
    rows = q.reshape(math.prod(q.shape[:-1]), q.shape[-1]).tolist()
    words = []
    for row in rows:
        packed = []
        for k in range(len(row) // 8):
            word = 0
            for j in range(8):
                word |= (int(row[8 * k + j]) & 0xF) << (4 * j)
            packed.append(word - (1 << 32) if word >= 1 << 31 else word)
        words.append(packed)
    return torch.tensor(words, dtype=torch.int32).reshape(*q.shape[:-1], q.shape[-1] // 8)


# dst -> (DST_MIN, DST_MAX, kind) of the formulas; a float format's DST_MIN is -DST_MAX
FORMATS = {
    None: (-128, 127, "int"), torch.int8: (-128, 127, "int"), torch.quint4x2: (-8, 7, "int"),
    torch.float8_e4m3fn: (-448.0, 448.0, "float"), torch.float8_e5m2: (-57344.0, 57344.0, "float"),
    "hifloat8": (-32768.0, 32768.0, "hifloat8"),
}


def hifloat8_reference_bits(v):
    """HiF8 bits of float32 ``v`` from en_dtypes (CANN's goldens use it), saturated to
    +-32768 where en_dtypes gives inf for finite values from 40960 up."""
    import en_dtypes

    finite_over = torch.isfinite(v) & (v.abs() > 32768)
    v = torch.where(finite_over, v.sign() * 32768, v)
    bits = v.float().numpy().astype(en_dtypes.hifloat8).view(np.uint8)
    return torch.from_numpy(bits.copy()).reshape(v.shape)


def dynamic_quant_reference(x, smooth_scales=None, group_index=None, dst_type=None, quant_mode="pertoken",
                            symmetric=False, dst_type_max=0.0):
    lo, hi, kind = FORMATS[dst_type]
    if dst_type_max:
        lo, hi = -dst_type_max, dst_type_max
    lead, h = x.shape[:-1], x.shape[-1]
    if quant_mode == "perchannel":
        xf = x.float().reshape(-1, x.shape[-2], h)
        if smooth_scales is not None:
            xf = xf * smooth_scales.float().reshape(1, -1, 1)
        mx, mn = xf.amax(1, keepdim=True), xf.amin(1, keepdim=True)
        stats_shape = (*x.shape[:-2], h)
    else:
        xf = x.float().reshape(math.prod(lead), h)
        if group_index is not None:
            rows = torch.arange(xf.shape[0])
            group = torch.searchsorted(group_index.long(), rows, right=True)
            xf = xf * smooth_scales.float()[group]
        elif smooth_scales is not None:
            xf = xf * smooth_scales.float()
        if quant_mode == "pertensor":  # an empty tensor counts as all zeros
            mx, mn = (xf.max(), xf.min()) if xf.numel() else (torch.zeros(()), torch.zeros(()))
            mx, mn = mx.reshape(1, 1), mn.reshape(1, 1)
            stats_shape = (1,)
        elif h == 0:  # an empty row counts as all zeros
            mx = mn = torch.zeros(xf.shape[0], 1)
            stats_shape = lead
        else:
            mx, mn = xf.amax(-1, keepdim=True), xf.amin(-1, keepdim=True)
            stats_shape = lead
    if symmetric:
        scale = torch.maximum(mx.abs(), mn.abs()) / hi
        v = xf / scale
        offset = None
    else:
        scale = (mx - mn) / (hi - lo)
        offset = hi - mx / scale
        v = xf / scale + offset
    zero = (scale == 0).expand_as(v)
    if kind == "int":
        q = torch.where(zero, 0.0, saturate_round(v, *FORMATS[dst_type][:2])).to(torch.int8)
        y = pack_int4_reference(q.reshape(*lead, h)) if dst_type == torch.quint4x2 else q
    else:
        fmax = FORMATS[dst_type][1]
        v = torch.where(torch.isnan(v) | zero, 0.0, v).clamp(-fmax, fmax)
        y = hifloat8_reference_bits(v) if kind == "hifloat8" else v.to(dst_type)
    y = y.reshape(*lead, y.shape[-1])
    outs = (y, scale.reshape(stats_shape))
    return outs if symmetric else outs + (offset.reshape(stats_shape),)


def quantize_mul_reference(x, scales, zero_points, dtype, axis):
    """npu_quantize div_mode=False: round(x * scales + zero_points) along the last dim, or
    the second-to-last for axis == -2."""
    shape = [1] * x.dim()
    dim = x.dim() - 2 if axis == -2 else x.dim() - 1
    shape[dim] = -1
    v = x.float() * scales.float().reshape(shape)
    if zero_points is not None:
        v = v + zero_points.float().reshape(shape)
    lo, hi = INT_LIMITS[torch.int8 if dtype == torch.qint8 else dtype]
    q = saturate_round(v, lo, hi).to(torch.int8)
    return pack_int4_reference(q) if dtype == torch.quint4x2 else q


def quantize_per_channel_oracle(x, scales, zero_points, dtype, axis):
    """npu_quantize div_mode=True is defined as torch.quantize_per_channel(...).int_repr()."""
    zp = torch.zeros(scales.shape, dtype=torch.int64) if zero_points is None else zero_points.to(torch.int64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantize_per_channel.*deprecated")
        return torch.quantize_per_channel(x.float(), scales.double(), zp, axis % x.dim(), dtype).int_repr()


def group_quant_reference(x, scale, group_index, offset=None, dst_dtype=None):
    dst = torch.quint4x2 if dst_dtype == torch.quint4x2 else torch.int8
    out = torch.empty(x.shape)
    start = 0
    for g, end in enumerate(group_index.tolist()):
        out[start:end] = x[start:end].float() * scale[g].float()
        start = end
    if offset is not None:
        out = out + offset.float()
    lo, hi = INT_LIMITS[dst]
    q = saturate_round(out, lo, hi).to(torch.int8)
    return pack_int4_reference(q) if dst == torch.quint4x2 else q


_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)


def kernel_expf(t):
    """exp as the C kernel computes it (qg_expf in kernels.c, written from its description
    there), in torch's float32 operations: one rounding per operation, as the C code, so
    the bits agree. n = rint(x / ln2), r = x - n ln2 in two parts, a polynomial for e^r,
    times 2^n as two powers of two."""
    f32 = torch.float32
    c = torch.where(t.isnan(), 0.0, t.to(f32)).clamp(-110.0, 90.0)
    n = torch.round(c * torch.tensor(1.44269504088896341, dtype=f32))
    r = c - n * torch.tensor(0.693359375, dtype=f32)
    r = r - n * torch.tensor(-2.12194440e-4, dtype=f32)
    p = torch.full_like(r, _EXP_POLY[0])
    for coefficient in _EXP_POLY[1:]:
        p = p * r + torch.tensor(coefficient, dtype=f32)
    p = p * r * r + r + 1.0
    k = n.to(torch.int32)
    k1 = torch.div(k, 2, rounding_mode="floor")
    s1, s2 = (((e + 127) << 23).view(f32) for e in (k1, k - k1))
    return torch.where(t.isnan(), t, p * s1 * s2)


def _swiglu_reference(v, dim, swiglu_mode, activate_left, clamp_limit, glu_alpha, glu_bias, exp):
    """SwiGLU of v along dim: mode 0 halves with silu, 1 interleaved GPT-OSS, 2 halves GPT-OSS.
    swish(a) = a / (1 + exp(-alpha a)), alpha 1 in mode 0, as SPEC.md says the kernels compute it."""
    n = v.shape[dim]
    if swiglu_mode == 1:
        index = torch.arange(n)
        gate, linear = v.index_select(dim, index[0::2]), v.index_select(dim, index[1::2])
    else:
        a, b = torch.chunk(v, 2, dim)
        gate, linear = (a, b) if activate_left else (b, a)
    if swiglu_mode == 0:
        return gate / (1 + exp(-gate)) * linear
    limit = torch.tensor(clamp_limit, dtype=torch.float32)
    gate = torch.minimum(gate, limit)
    linear = torch.maximum(torch.minimum(linear, limit), -limit)
    return gate / (1 + exp(gate * -glu_alpha)) * (linear + glu_bias)


def _dequant_reference(x, weight_scale, activation_scale, bias, group, rows):
    """float32 of x's rows [rows, W]: an int bias before the scales, a float bias after."""
    width = x.shape[-1]
    v = x
    if bias is not None and bias.dtype == torch.int32:
        v = v.to(torch.int64) + bias.reshape(width).to(torch.int64)
    v = v.float()
    if weight_scale is not None:
        table = weight_scale.reshape(-1, width)
        v = v * table[group if table.shape[0] > 1 else 0]
    if activation_scale is not None:
        v = v * activation_scale.reshape(-1, 1)[rows]
    if bias is not None and bias.dtype != torch.int32:
        v = v + bias.float().reshape(width)
    return v


# exp as each kernel path computes it (only npu_dequant_swiglu_quant's swish uses exp)
EXP_OF_PATH = {"native": kernel_expf, "portable": torch.exp}


def dequant_swiglu_quant_reference(x, weight_scale=None, activation_scale=None, bias=None, quant_scale=None,
                                   quant_offset=None, group_index=None, activate_left=False, quant_mode=0,
                                   dst_type=None, round_mode=None, activate_dim=None, swiglu_mode=0,
                                   clamp_limit=7.0, glu_alpha=1.702, glu_bias=1.0, exp=torch.exp):
    """Group by group over x's flattened rows, in float32 as SPEC.md writes it; ``exp`` is the
    one primitive that is not correctly rounded (torch.exp on the portable path, kernel_expf in C)."""
    glu = (swiglu_mode, activate_left, clamp_limit, glu_alpha, glu_bias, exp)
    dim = (-1 if activate_dim is None else activate_dim) % x.dim()
    width = x.shape[-1]
    if dim != x.dim() - 1:
        # Ascend950: static quant with one quant_scale/quant_offset value, split along dim
        v = _dequant_reference(x.reshape(-1, width), weight_scale, activation_scale, bias, 0, slice(None))
        out = _swiglu_reference(v.reshape(x.shape), dim, *glu) / quant_scale.float().item()
        if quant_offset is not None:
            out = out + quant_offset.float().item()
        return saturate_round(out, -128, 127).to(torch.int8), torch.zeros(out.shape[:-1])
    rows = x.reshape(-1, width)
    tokens, hidden = rows.shape[0], width // 2
    counts = [tokens] if group_index is None else group_index.tolist()
    y = torch.zeros(tokens, hidden, dtype=torch.int8)
    scale = torch.zeros(tokens)
    start = 0
    for g, count in enumerate(counts):
        r = slice(start, start + count)
        start += count
        out = _swiglu_reference(_dequant_reference(rows[r], weight_scale, activation_scale, bias, g, r), 1, *glu)
        qs = None if quant_scale is None else quant_scale.float().reshape(-1, hidden)
        qs = None if qs is None else qs[g if qs.shape[0] > 1 else 0]
        if quant_mode == 1:
            if qs is not None:
                out = out * qs
            s = out.abs().amax(-1, keepdim=True) / 127
            q = saturate_round(out / s, -128, 127)
            y[r] = torch.where(s == 0, torch.zeros_like(q), q).to(torch.int8)
            scale[r] = s.squeeze(-1)
        else:
            v = out / qs
            if quant_offset is not None:
                v = v + quant_offset.float().reshape(-1)
            y[r] = saturate_round(v, -128, 127).to(torch.int8)
    return y.reshape(*x.shape[:-1], hidden), scale.reshape(x.shape[:-1])
