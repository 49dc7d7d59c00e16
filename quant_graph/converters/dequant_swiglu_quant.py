"""npu_dequant_swiglu_quant -> GE DequantSwigluQuant, with the attrs TorchAir's own converter
sets (its ``ge_converter/custom/npu_dequant_swiglu_quant.py``)."""

from __future__ import annotations

from torchair._ge_concrete_graph import ge_apis as ge
from torchair.ge import DataType

from .._dtypes import INT8
from ..ops.dequant_swiglu_quant import ROUND_MODES
from ._ge import converter, ge_dtype, set_output_dtype

QUANT_MODE_ATTR = {0: "static", 1: "dynamic"}


def _as_float32(t):
    """DequantSwigluQuant's REG_OP takes its quant parameters in float32 only. TorchAir's
    converter passes float16/bfloat16 ones uncast, a node GE would refuse; we cast."""
    return t if t is None or t.dtype == DataType.DT_FLOAT else ge.Cast(t, dst_type=DataType.DT_FLOAT)


@converter("npu_dequant_swiglu_quant")
def convert_npu_dequant_swiglu_quant(x, weight_scale=None, activation_scale=None, bias=None, quant_scale=None,
                                     quant_offset=None, group_index=None, activate_left=False, quant_mode=0,
                                     dst_type=None, round_mode=None, activate_dim=None, swiglu_mode=0,
                                     clamp_limit=7.0, glu_alpha=1.702, glu_bias=1.0, meta_outputs=None):
    # The op accepts int8 output and rint rounding only (checked before tracing reaches here).
    y, scale = ge.DequantSwigluQuant(
        x, weight_scale, activation_scale, bias, _as_float32(quant_scale), _as_float32(quant_offset), group_index,
        activate_left=activate_left, quant_mode=QUANT_MODE_ATTR[quant_mode], dst_type=ge_dtype(INT8),
        round_mode=ROUND_MODES[round_mode or 0], activate_dim=-1 if activate_dim is None else activate_dim,
        swiglu_mode=swiglu_mode, clamp_limit=clamp_limit, glu_alpha=glu_alpha, glu_bias=glu_bias)
    return set_output_dtype(y, INT8), scale
