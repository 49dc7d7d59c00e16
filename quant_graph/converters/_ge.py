"""What the converters share: their registration, output formats as GE DataType, and int4
outputs as packed int32."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchair import register_fx_node_ge_converter
from torchair._ge_concrete_graph import ge_apis as ge
from torchair.ge import DataType
from torchair.ge._ge_graph import _ge_dtype_to_ge_proto_dtype

from .. import _host
from .._dtypes import QuantDtype
from .._registry import OPS


def converter(op_name: str, *, replaces_torchairs: bool = False) -> Callable:
    """Register the decorated function as the GE converter of ``op_name`` in every namespace
    quant_graph defines it in (``quant_graph``, and ``npu`` where torch_npu is absent). With
    ``replaces_torchairs``, also for torch_npu's own ``torch.ops.npu.<op>`` on an Ascend host,
    in place of TorchAir's converter (which the decorated module says is wrong)."""

    def register(fn: Callable) -> Callable:
        overloads = list(OPS[op_name].overloads().values())
        if replaces_torchairs and _host.TORCH_NPU == "loaded":
            overloads.append(getattr(torch.ops.npu, op_name).default)
        for overload in overloads:
            register_fx_node_ge_converter(overload)(fn)
        return fn

    return register


def ge_dtype(qd: QuantDtype) -> int:
    """The GE DataType of an output format (``_dtypes.QuantDtype.ge`` names it)."""
    return getattr(DataType, qd.ge)


def set_output_dtype(y, qd: QuantDtype):
    """Record a GE output's dtype on its descriptor (what dumps and later passes read)."""
    y.desc.dtype = _ge_dtype_to_ge_proto_dtype(ge_dtype(qd))
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
