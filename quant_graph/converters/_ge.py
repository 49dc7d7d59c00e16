"""What the converters share: torch dtypes as GE DataType, and int4 outputs as packed int32."""

from __future__ import annotations

import torch
from torchair._ge_concrete_graph import ge_apis as ge
from torchair.ge import DataType
from torchair.ge._ge_graph import _ge_dtype_to_ge_proto_dtype

# The dtype a user names for an op's output -> the GE DataType the fused operator emits.
GE_OUTPUT_DTYPE = {
    torch.int8: DataType.DT_INT8,
    torch.qint8: DataType.DT_INT8,
    torch.quint8: DataType.DT_UINT8,
    torch.qint32: DataType.DT_INT32,
    torch.quint4x2: DataType.DT_INT4,
    torch.float8_e4m3fn: DataType.DT_FLOAT8_E4M3FN,
    torch.float8_e5m2: DataType.DT_FLOAT8_E5M2,
}


def set_output_dtype(y, ge_dtype: int):
    """Record a GE output's dtype on its descriptor (what dumps and later passes read)."""
    y.desc.dtype = _ge_dtype_to_ge_proto_dtype(ge_dtype)
    return y


def as_packed_int32(y, rank: int):
    """GE's int4 ``[..., H]`` (of the given rank, which GE leaves unset on a fresh output)
    as the int32 ``[..., H // 8]`` torch holds: reshape to
    ``[..., H // 8, 8]`` and bitcast each 8 nibbles to one int32 (element 8k+j in bits
    [4j, 4j+4), the order both sides use). Shapes are computed in the graph, so dynamic
    dims stay dynamic."""
    divisor = ge.Const([1] * (rank - 1) + [8], dtype=DataType.DT_INT32)
    words_shape = ge.Div(ge.Shape(y, dtype=DataType.DT_INT32), divisor)
    nibble_shape = ge.ConcatV2([words_shape, ge.Const([8], dtype=DataType.DT_INT32)], concat_dim=0, N=2)
    words = ge.Bitcast(ge.Reshape(y, nibble_shape), type=DataType.DT_INT32)
    return ge.Reshape(words, words_shape)
