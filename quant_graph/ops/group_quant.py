"""npu_group_quant: static quantization with a scale row per group of rows (GE ``GroupQuant``).

``y = round(x * scale[g] + offset)`` where row r is in group g when
``group_index[g-1] <= r < group_index[g]`` (cumulative row ends).
"""

from __future__ import annotations

import torch

from .._checks import check_group_ends
from .._numerics import affine_quant, packed_shape, storage_dtype
from .._registry import define

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
DST_DTYPES = (torch.int8, torch.qint8, torch.quint4x2)

OP = define("npu_group_quant", "(Tensor x, Tensor scale, Tensor group_index, *, Tensor? offset=None, "
            "ScalarType? dst_dtype=None) -> Tensor", ge_types=("GroupQuant",), module=__name__)


@OP.public_function
def npu_group_quant(x, scale, group_index, *, offset=None, dst_dtype=None):
    """Group quantization (torch_npu.npu_group_quant).

    Args:
        x: float32/float16/bfloat16 ``[S, H]``.
        scale: float32/float16/bfloat16 ``[G, H]``, G >= 1.
        group_index: int32/int64 ``[G]`` cumulative row ends: non-decreasing, >= 0, last == S.
        offset: optional one-element tensor of scale's dtype, added before rounding.
        dst_dtype: None, torch.int8 or torch.qint8 (int8 out), or torch.quint4x2 (int32 out,
            8 values per element; H divisible by 8).
    """
    return torch.ops.quant_graph.npu_group_quant(x, scale, group_index, offset=offset, dst_dtype=dst_dtype)


def check_args(x, scale, group_index, offset, dst_dtype) -> torch.dtype:
    dst = torch.int8 if dst_dtype is None else dst_dtype
    torch._check_type(x.dtype in FLOAT_DTYPES, lambda: f"npu_group_quant: x must be float32, float16 or "
                                                       f"bfloat16, got {x.dtype}")
    torch._check_value(x.dim() == 2, lambda: f"npu_group_quant: x must be 2-D [S, H], got shape {tuple(x.shape)}")
    torch._check_value(dst in DST_DTYPES, lambda: (
        f"npu_group_quant: dst_dtype must be None or one of {DST_DTYPES}, got {dst_dtype}"))
    if dst == torch.quint4x2:
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
    return dst


@OP.fake
def _(x, scale, group_index, *, offset=None, dst_dtype=None):
    dst = check_args(x, scale, group_index, offset, dst_dtype)
    return x.new_empty(packed_shape(x.shape, dst), dtype=storage_dtype(dst))


@OP.portable
def _(x, scale, group_index, *, offset=None, dst_dtype=None):
    dst = check_args(x, scale, group_index, offset, dst_dtype)
    check_group_ends("npu_group_quant", group_index, x.shape[0])
    y = x.new_empty(packed_shape(x.shape, dst), dtype=storage_dtype(dst))
    zero = None if offset is None else offset.float().reshape(1).expand(x.shape[1]).contiguous()
    affine_quant(x.contiguous(), scale.float().contiguous(), zero, per_row=False,
                 ends=group_index.to(torch.int64).contiguous(), dst=dst, out=y)
    return y

