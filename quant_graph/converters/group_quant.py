"""npu_group_quant -> GE GroupQuant."""

from __future__ import annotations

import torch
from torchair import register_fx_node_ge_converter
from torchair._ge_concrete_graph import ge_apis as ge

from .._dtypes import INT4, quant_dtype
from ._ge import as_packed_int32, ge_dtype, set_output_dtype


@register_fx_node_ge_converter(torch.ops.quant_graph.npu_group_quant.default)
def convert_npu_group_quant(x, scale, group_index, offset=None, dst_dtype=None, meta_outputs=None):
    qd = quant_dtype(dst_dtype)
    y = ge.GroupQuant(x, scale, group_index, offset, dst_type=ge_dtype(qd))
    set_output_dtype(y, qd)
    return as_packed_int32(y, x.rank) if qd is INT4 else y
