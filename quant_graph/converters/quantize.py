"""npu_quantize -> GE Quantize (div_mode=True) or AscendQuantV2 (div_mode=False)."""

from __future__ import annotations

import torch
from torchair import register_fx_node_ge_converter
from torchair._ge_concrete_graph import ge_apis as ge

from ._ge import GE_OUTPUT_DTYPE, as_packed_int32, set_output_dtype

# Quantize names its output type as a string attr
QUANTIZE_DTYPE_ATTR = {torch.qint8: "torch.qint8", torch.quint8: "torch.quint8", torch.qint32: "torch.qint32"}


@register_fx_node_ge_converter(torch.ops.quant_graph.npu_quantize.default)
def convert_npu_quantize(input, scales, zero_points, dtype, axis=1, div_mode=True, meta_outputs=None):
    if not div_mode:
        y = ge.AscendQuantV2(input, scales, zero_points, sqrt_mode=False, round_mode="round",
                             dst_type=GE_OUTPUT_DTYPE[dtype], axis=-2 if axis == -2 else -1)
        set_output_dtype(y, GE_OUTPUT_DTYPE[dtype])
        return as_packed_int32(y, input.rank) if dtype == torch.quint4x2 else y
    # Quantize broadcasts scales/zero points of input's rank: size 1 in every dim but axis.
    axis = axis % input.rank
    others = [d for d in range(input.rank) if d != axis]
    scales = ge.Unsqueeze(scales, axes=others)
    if zero_points is not None:
        zero_points = ge.Unsqueeze(zero_points, axes=others)
    y = ge.Quantize(input, scales, zero_points, dtype=QUANTIZE_DTYPE_ATTR[dtype], axis=axis)
    return set_output_dtype(y, GE_OUTPUT_DTYPE[dtype])
