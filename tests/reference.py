"""Independent references written from SPEC.md's formulas: whole tensors, no chunking,
no code shared with quant_graph. Arithmetic in float32 as the SPEC says."""

import torch

INT_LIMITS = {torch.int8: (-128, 127), torch.quint4x2: (-8, 7)}


def saturate_round(v, lo, hi):
    v = torch.where(torch.isnan(v), torch.zeros_like(v), v)
    return torch.round(torch.clamp(v, lo, hi))


def pack_int4_reference(q):
    """Element 8k+j of a row in bits [4j, 4j+4) of int32 k, built with Python ints."""
    rows = q.reshape(-1, q.shape[-1]).tolist()
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


def smoothed(x, smooth_scales, group_index):
    xf = x.float().reshape(-1, x.shape[-1])
    if smooth_scales is None:
        return xf
    if group_index is None:
        return xf * smooth_scales.float()
    out = xf.clone()
    start = 0
    for g, end in enumerate(group_index.tolist()):
        out[start:end] = xf[start:end] * smooth_scales[g].float()
        start = end
    return out


def dynamic_quant_reference(x, smooth_scales=None, group_index=None, dst_type=None, quant_mode="pertoken",
                            symmetric=False):
    dst = dst_type or torch.int8
    xf = smoothed(x, smooth_scales, group_index)
    if quant_mode == "pertensor":
        row_max, row_min = xf.max().reshape(1, 1), xf.min().reshape(1, 1)
    else:
        row_max, row_min = xf.amax(-1, keepdim=True), xf.amin(-1, keepdim=True)
    if dst in (torch.float8_e4m3fn, torch.float8_e5m2):
        fmax = torch.finfo(dst).max
        scale = torch.maximum(row_max.abs(), row_min.abs()) / fmax
        v = xf / scale
        v = torch.where(torch.isnan(v), torch.zeros_like(v), v).clamp(-fmax, fmax)
        y = torch.where(scale == 0, torch.zeros_like(v), v).to(dst)
        offset = None
    else:
        lo, hi = INT_LIMITS[dst]
        if symmetric:
            scale = torch.maximum(row_max.abs(), row_min.abs()) / hi
            v = xf / scale
            offset = None
        else:
            scale = (row_max - row_min) / (hi - lo)
            offset = hi - row_max / scale
            v = xf / scale + offset
        q = saturate_round(v, lo, hi)
        q = torch.where(scale == 0, torch.zeros_like(q), q).to(torch.int8)
        y = pack_int4_reference(q) if dst == torch.quint4x2 else q
    lead = (1,) if quant_mode == "pertensor" else x.shape[:-1]
    y = y.reshape(*x.shape[:-1], y.shape[-1])
    outs = (y, scale.reshape(lead))
    return outs if symmetric else outs + (offset.reshape(lead),)
