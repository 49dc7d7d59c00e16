"""npu_quantize -> GE Quantize (div_mode=True) or AscendQuantV2 (div_mode=False)."""

from __future__ import annotations

from torchair._ge_concrete_graph import ge_apis as ge

from .._dtypes import FLOAT8_E4M3FN, FLOAT8_E5M2, HIFLOAT8, INT4, INT8, INT32, UINT8, quant_dtype, resolve_code
from ._ge import as_packed_int32, converter, ge_dtype, set_output_dtype

# Quantize's required string attr names the output format as TorchAir writes it
# (ge_type_to_torch_str in its quantized.py): the quantized dtype's name for integers, whichever
# code named the format (torch.int8 and torch.qint8 alike write "torch.qint8").
QUANTIZE_DTYPE_ATTR = {INT8: "torch.qint8", UINT8: "torch.quint8", INT32: "torch.qint32",
                       FLOAT8_E5M2: "torch.float8_e5m2", FLOAT8_E4M3FN: "torch.float8_e4m3fn",
                       HIFLOAT8: "torch.hifloat8"}


@converter("npu_quantize")
def convert_npu_quantize(input, scales, zero_points, dtype, axis=1, div_mode=True, meta_outputs=None):
    qd = quant_dtype(resolve_code("npu_quantize", "dtype", dtype))
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
    y = ge.Quantize(input, scales, zero_points, dtype=QUANTIZE_DTYPE_ATTR[qd], axis=axis)
    return set_output_dtype(y, qd)
