"""npu_quantize -> GE Quantize (div_mode=True) or AscendQuantV2 (div_mode=False)."""

from __future__ import annotations

import torch
from torchair import register_fx_node_ge_converter
from torchair._ge_concrete_graph import ge_apis as ge

from .._dtypes import INT4, quant_dtype
from ._ge import as_packed_int32, ge_dtype, set_output_dtype


@register_fx_node_ge_converter(torch.ops.quant_graph.npu_quantize.default)
def convert_npu_quantize(input, scales, zero_points, dtype, axis=1, div_mode=True, meta_outputs=None):
    qd = quant_dtype(dtype)
    if not div_mode:
        y = ge.AscendQuantV2(input, scales, zero_points, sqrt_mode=False, round_mode="round",
                             dst_type=ge_dtype(qd), axis=-2 if axis == -2 else -1)
        set_output_dtype(y, qd)
        return as_packed_int32(y, input.rank) if qd is INT4 else y
    # Quantize broadcasts scales/zero points of input's rank: size 1 in every dim but axis.
    axis = axis % input.rank
    others = [d for d in range(input.rank) if d != axis]
    scales = ge.Unsqueeze(scales, axes=others)
    if zero_points is not None:
        zero_points = ge.Unsqueeze(zero_points, axes=others)
    # Quantize names its output type by the torch dtype's name, e.g. "torch.qint8"
    y = ge.Quantize(input, scales, zero_points, dtype=str(dtype), axis=axis)
    return set_output_dtype(y, qd)
