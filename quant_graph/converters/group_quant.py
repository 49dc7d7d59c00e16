"""npu_group_quant -> GE GroupQuant."""

from __future__ import annotations

import torch
from torchair import register_fx_node_ge_converter
from torchair._ge_concrete_graph import ge_apis as ge

from ._ge import GE_OUTPUT_DTYPE, as_packed_int32, set_output_dtype


@register_fx_node_ge_converter(torch.ops.quant_graph.npu_group_quant.default)
def convert_npu_group_quant(x, scale, group_index, offset=None, dst_dtype=None, meta_outputs=None):
    dst = torch.int8 if dst_dtype is None else dst_dtype
    y = ge.GroupQuant(x, scale, group_index, offset, dst_type=GE_OUTPUT_DTYPE[dst])
    set_output_dtype(y, GE_OUTPUT_DTYPE[dst])
    return as_packed_int32(y, x.rank) if dst == torch.quint4x2 else y
