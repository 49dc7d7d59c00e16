"""npu_dynamic_quant(_asymmetric) -> GE DynamicQuantV2."""

from __future__ import annotations

import torch
from torchair import register_fx_node_ge_converter
from torchair._ge_concrete_graph import ge_apis as ge

from .._dtypes import INT4, quant_dtype, resolve_code
from ._ge import as_packed_int32, ge_dtype, set_output_dtype


def _dynamic_quant_v2(op, x, smooth_scales, group_index, dst_type, quant_mode, *, symmetrical):
    qd = quant_dtype(resolve_code(op, "dst_type", dst_type))
    y, scale, offset = ge.DynamicQuantV2(x, smooth_scales, group_index, dst_type=ge_dtype(qd),
                                         is_symmetrical=symmetrical, quant_mode=quant_mode)
    set_output_dtype(y, qd)
    return (as_packed_int32(y, x.rank) if qd is INT4 else y), scale, offset


@register_fx_node_ge_converter(torch.ops.quant_graph.npu_dynamic_quant_asymmetric.default)
def convert_npu_dynamic_quant_asymmetric(input, smooth_scales=None, group_index=None, dst_type=None,
                                         quant_mode="pertoken", dst_type_max=0.0, meta_outputs=None):
    return _dynamic_quant_v2("npu_dynamic_quant_asymmetric", input, smooth_scales, group_index, dst_type,
                             quant_mode, symmetrical=False)


@register_fx_node_ge_converter(torch.ops.quant_graph.npu_dynamic_quant.default)
def convert_npu_dynamic_quant(input, smooth_scales=None, group_index=None, dst_type=None, quant_mode="pertoken",
                              dst_type_max=0.0, meta_outputs=None):
    y, scale, _ = _dynamic_quant_v2("npu_dynamic_quant", input, smooth_scales, group_index, dst_type, quant_mode,
                                    symmetrical=True)
    return y, scale
