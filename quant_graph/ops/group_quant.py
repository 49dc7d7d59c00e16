"""npu_group_quant: static quantization with a scale row per group of rows (GE ``GroupQuant``).

``y = round(x * scale[g] + offset)`` where row r is in group g when
``group_index[g-1] <= r < group_index[g]`` (cumulative row ends).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .. import _numerics, native
from .._checks import check_devices
from .._dtypes import INT4, DtypeArg, QuantDtype, quant_dtype, resolve_code
from .._group_index import check_ends
from .._registry import define, given_arguments

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
DST_DTYPES = (torch.int8, torch.qint8, torch.quint4x2)

OP = define("npu_group_quant", "(Tensor x, Tensor scale, Tensor group_index, *, Tensor? offset=None, "
            "ScalarType? dst_dtype=None) -> Tensor", ge_types=("GroupQuant",), module=__name__)


@OP.public_function
def npu_group_quant(x: Tensor, scale: Tensor, group_index: Tensor, *, offset: Tensor | None = None,
                    dst_dtype: DtypeArg = None) -> Tensor:
    """Group quantization (torch_npu.npu_group_quant).

    Args:
        x: float32/float16/bfloat16 ``[S, H]``.
        scale: float32/float16/bfloat16 ``[G, H]``, G >= 1.
        group_index: int32/int64 ``[G]`` cumulative row ends: non-decreasing, >= 0, last == S.
        offset: optional one-element tensor of scale's dtype, added before rounding.
        dst_dtype: None, torch.int8 or torch.qint8 (int8 out), or torch.quint4x2 (int32 out,
            8 values per element; H divisible by 8); or torch_npu's int code of one (1, 12, 16).

    Returns:
        y: int8 ``[S, H]``, or int32 ``[S, H // 8]`` for int4.
    """
    # Decoded here: torch's dispatcher would turn an int into some ScalarType unchecked (or crash).
    dst = resolve_code("npu_group_quant", "dst_dtype", dst_dtype)
    if isinstance(dst, str):
        raise ValueError(_dst_dtype_error(f"{dst_dtype} ({dst})"))
    return torch.ops.quant_graph.npu_group_quant(x, scale, group_index,
                                                 **given_arguments(offset=offset, dst_dtype=dst))


def _dst_dtype_error(seen) -> str:
    # torch_npu's meta also maps torch.quint8 to a uint8 output, but op-plugin's
    # npu_group_quant_dst_type and GroupQuant's REG_OP (y: DT_INT8, DT_INT4) refuse it.
    return (f"npu_group_quant: dst_dtype must be None or one of {DST_DTYPES} (GroupQuant writes int8 or int4 "
            f"only), got {seen}")


def check_args(x, scale, group_index, offset, dst_dtype) -> QuantDtype:
    check_devices("npu_group_quant", "x", x, scale=scale, group_index=group_index, offset=offset)
    torch._check_type(x.dtype in FLOAT_DTYPES, lambda: f"npu_group_quant: x must be float32, float16 or "
                                                       f"bfloat16, got {x.dtype}")
    torch._check_value(x.dim() == 2, lambda: f"npu_group_quant: x must be 2-D [S, H], got shape {tuple(x.shape)}")
    torch._check_value(dst_dtype is None or dst_dtype in DST_DTYPES, lambda: _dst_dtype_error(dst_dtype))
    qd = quant_dtype(dst_dtype)
    if qd is INT4:
        torch._check_value(x.shape[-1] % 8 == 0, lambda: (
            f"npu_group_quant: with dst_dtype=torch.quint4x2 the last dim of x must be divisible by 8, "
            f"got {x.shape[-1]}"))
    torch._check_type(scale.dtype in FLOAT_DTYPES, lambda: (
        f"npu_group_quant: scale must be float32, float16 or bfloat16, got {scale.dtype}"))
    torch._check_value(scale.dim() == 2, lambda: (
        f"npu_group_quant: scale must be 2-D [G, H], got shape {tuple(scale.shape)}"))
    torch._check_value(scale.shape[0] != 0, lambda: "npu_group_quant: scale's first dim G must not be 0")
    torch._check_value(scale.shape[1] == x.shape[1], lambda: (
        f"npu_group_quant: scale [G, H] must have x's H={x.shape[1]}, got {scale.shape[1]}"))
    torch._check_type(group_index.dtype in (torch.int32, torch.int64), lambda: (
        f"npu_group_quant: group_index must be int32 or int64, got {group_index.dtype}"))
    torch._check_value(group_index.dim() == 1, lambda: (
        f"npu_group_quant: group_index must be 1-D [G], got shape {tuple(group_index.shape)}"))
    torch._check_value(group_index.shape[0] == scale.shape[0], lambda: (
        f"npu_group_quant: group_index must have G={scale.shape[0]} entries (scale's first dim), "
        f"got {group_index.shape[0]}"))
    if offset is not None:
        torch._check_type(offset.dtype == scale.dtype, lambda: (
            f"npu_group_quant: offset must have scale's dtype {scale.dtype}, got {offset.dtype}"))
        torch._check_value(offset.numel() == 1, lambda: (
            f"npu_group_quant: offset must hold one element, got shape {tuple(offset.shape)}"))
    return qd


@OP.fake
def _(x, scale, group_index, *, offset=None, dst_dtype=None):
    qd = check_args(x, scale, group_index, offset, dst_dtype)
    return x.new_empty(qd.stored_shape(x.shape), dtype=qd.storage)


def _eager(affine_quant, x, scale, group_index, *, offset=None, dst_dtype=None):
    """The eager kernel on either path: ``affine_quant`` is the portable or the C one."""
    qd = check_args(x, scale, group_index, offset, dst_dtype)
    check_ends("npu_group_quant", group_index, x.shape[0])
    y = x.new_empty(qd.stored_shape(x.shape), dtype=qd.storage)
    if y.numel() == 0:  # nothing to write; an empty tensor's data pointer may be NULL, never for C
        return y
    zero = None if offset is None else offset.float().reshape(1)
    affine_quant(x.contiguous(), scale.float().contiguous(), zero, per_row=False,
                 ends=group_index.to(torch.int64).contiguous(), qd=qd, out=y)
    return y


OP.portable(functools.partial(_eager, _numerics.affine_quant))
OP.cpu(functools.partial(_eager, native.affine_quant))
