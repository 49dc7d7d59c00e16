"""An independent reference for npu_dequant_swiglu_quant's torch_npu 2.13/2.14 schema, written
from SPEC.md and the Ascend docs' formulas (whole tensors, group by group, sigmoid rather
than the kernels' ``a / (1 + exp(-alpha a))``), sharing no code with quant_graph."""

import torch


def _sat_int8(v):
    v = torch.where(torch.isnan(v), torch.zeros_like(v), v)
    return torch.round(torch.clamp(v, -128, 127)).to(torch.int8)


def glu_reference(v, dim, swiglu_mode, activate_left, clamp_limit, glu_alpha, glu_bias):
    """SwiGLU of v along dim: mode 0 silu, 1 interleaved GPT-OSS, 2 halves GPT-OSS."""
    n = v.shape[dim]
    if swiglu_mode == 1:
        index = torch.arange(n)
        gate, linear = v.index_select(dim, index[0::2]), v.index_select(dim, index[1::2])
    else:
        a, b = torch.chunk(v, 2, dim)
        gate, linear = (a, b) if activate_left else (b, a)
    if swiglu_mode == 0:
        return torch.nn.functional.silu(gate) * linear
    limit = torch.tensor(clamp_limit, dtype=torch.float32)
    gate = torch.minimum(gate, limit)
    linear = torch.maximum(torch.minimum(linear, limit), -limit)
    return gate * torch.sigmoid(glu_alpha * gate) * (linear + glu_bias)


def _dequant(x, weight_scale, activation_scale, bias, group, rows):
    """float32 of x's rows [rows, W]: int bias before, float bias after the scales."""
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


def dequant_swiglu_quant_v2_reference(x, weight_scale=None, activation_scale=None, bias=None, quant_scale=None,
                                      quant_offset=None, group_index=None, activate_left=False, quant_mode=0,
                                      dst_type=None, round_mode=None, activate_dim=None, swiglu_mode=0,
                                      clamp_limit=7.0, glu_alpha=1.702, glu_bias=1.0):
    glu = (swiglu_mode, activate_left, clamp_limit, glu_alpha, glu_bias)
    dim = (-1 if activate_dim is None else activate_dim) % x.dim()
    width = x.shape[-1]
    if dim != x.dim() - 1:
        # Ascend950: static quant with one quant_scale/quant_offset value, split along dim
        v = _dequant(x.reshape(-1, width), weight_scale, activation_scale, bias, 0, slice(None)).reshape(x.shape)
        out = glu_reference(v, dim, *glu) / quant_scale.float().item()
        if quant_offset is not None:
            out = out + quant_offset.float().item()
        return _sat_int8(out), torch.zeros(out.shape[:-1])
    rows = x.reshape(-1, width)
    tokens, hidden = rows.shape[0], width // 2
    counts = [tokens] if group_index is None else group_index.tolist()
    y = torch.zeros(tokens, hidden, dtype=torch.int8)
    scale = torch.zeros(tokens)
    start = 0
    for g, count in enumerate(counts):
        r = slice(start, start + count)
        start += count
        out = glu_reference(_dequant(rows[r], weight_scale, activation_scale, bias, g, r), 1, *glu)
        qs = None if quant_scale is None else quant_scale.float().reshape(-1, hidden)
        qs = None if qs is None else qs[g if qs.shape[0] > 1 else 0]
        if quant_mode == 1:
            if qs is not None:
                out = out * qs
            s = out.abs().amax(-1, keepdim=True) / 127
            q = _sat_int8(out / s)
            y[r] = torch.where(s == 0, torch.zeros_like(q), q)
            scale[r] = s.squeeze(-1)
        else:
            v = out / qs
            if quant_offset is not None:
                v = v + quant_offset.float().reshape(hidden)
            y[r] = _sat_int8(v)
    return y.reshape(*x.shape[:-1], hidden), scale.reshape(x.shape[:-1])
