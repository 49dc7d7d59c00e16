"""npu_dequant_swiglu_quant -> GE DequantSwigluQuant."""

from __future__ import annotations

import torch
from torchair import register_fx_node_ge_converter
from torchair._ge_concrete_graph import ge_apis as ge
from torchair.ge import DataType

from .._dtypes import INT8
from ._ge import ge_dtype, set_output_dtype

QUANT_MODE_ATTR = {0: "static", 1: "dynamic"}


def _as_float32(t):
    """DequantSwigluQuant takes its quant parameters in float32 only."""
    return t if t is None or t.dtype == DataType.DT_FLOAT else ge.Cast(t, dst_type=DataType.DT_FLOAT)


@register_fx_node_ge_converter(torch.ops.quant_graph.npu_dequant_swiglu_quant.default)
def convert_npu_dequant_swiglu_quant(x, weight_scale=None, activation_scale=None, bias=None, quant_scale=None,
                                     quant_offset=None, group_index=None, activate_left=False, quant_mode=0,
                                     meta_outputs=None):
    y, scale = ge.DequantSwigluQuant(x, weight_scale, activation_scale, bias, _as_float32(quant_scale),
                                     _as_float32(quant_offset), group_index, activate_left=activate_left,
                                     quant_mode=QUANT_MODE_ATTR[quant_mode], dst_type=ge_dtype(INT8))
    return set_output_dtype(y, INT8), scale
