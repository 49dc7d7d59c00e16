"""Independent references for the torch_npu 2.13/2.14 modes of the dynamic quant ops,
written from SPEC.md and the CANN aclnnDynamicQuantV4 document: whole tensors, no
chunking, no code shared with quant_graph. Arithmetic in float32."""

import numpy as np
import torch
from reference import pack_int4_reference, saturate_round

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
        xf = x.float().reshape(-1, h)
        if group_index is not None:
            rows = torch.arange(xf.shape[0])
            group = torch.searchsorted(group_index.long(), rows, right=True)
            xf = xf * smooth_scales.float()[group]
        elif smooth_scales is not None:
            xf = xf * smooth_scales.float()
        if quant_mode == "pertensor":
            mx, mn = xf.max().reshape(1, 1), xf.min().reshape(1, 1)
            stats_shape = (1,)
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
