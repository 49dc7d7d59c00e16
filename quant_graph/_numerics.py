"""Numerics every op shares (SPEC.md "Numerics"), in the portable torch form.

The C kernels in ``csrc/kernels.c`` implement the same steps; the two are held to
bit-identical results by the tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from . import native

# Integer target ranges (lo, hi) by the torch dtype a user names.
INT_RANGE = {
    torch.int8: (-128, 127),
    torch.qint8: (-128, 127),
    torch.quint8: (0, 255),
    torch.quint4x2: (-8, 7),
    torch.qint32: (-(2**31), 2**31 - 1),
}
FLOAT8_MAX = {torch.float8_e4m3fn: 448.0, torch.float8_e5m2: 57344.0}

# Rows per chunk in the portable path: bounds the float32 temporaries to a few MiB
# whatever the input size, so peak extra memory stays well under the input's.
CHUNK_ELEMENTS = 1 << 20


def row_chunks(rows: int, cols: int) -> Iterator[slice]:
    step = max(1, CHUNK_ELEMENTS // max(cols, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def saturate(v: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """NaN -> 0, clamp to [lo, hi], round half to even (in place on a float32 temporary)."""
    return v.nan_to_num_(nan=0.0).clamp_(lo, hi).round_()


def to_int(v: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Saturate float32 ``v`` into ``dtype``'s range and narrow it to its storage dtype
    (int4 values come out as int8, still to be packed)."""
    lo, hi = INT_RANGE[dtype]
    if dtype == torch.qint32:
        # int32 ends are not float32 values: saturate in float64 where they are.
        return saturate(v.double(), lo, hi).to(torch.int32)
    storage = torch.uint8 if dtype == torch.quint8 else torch.int8
    return saturate(v, lo, hi).to(storage)


def to_float8(v: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    fmax = FLOAT8_MAX[dtype]
    return v.nan_to_num_(nan=0.0).clamp_(-fmax, fmax).to(dtype)


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Pack int4 values (int8 tensor in [-8, 7], last dim divisible by 8) 8 per int32:
    element 8k+j in bits [4j, 4j+4) of word k, as two's-complement nibbles."""
    nibbles = (q.to(torch.int32) & 0xF).unflatten(-1, (-1, 8))
    word = nibbles[..., 0]
    for j in range(1, 8):
        word = word | (nibbles[..., j] << (4 * j))
    return word


def row_groups(ends: torch.Tensor, rows: int) -> torch.Tensor:
    """Each row's group for cumulative row ends (rows past the last end: the last group),
    as ``group_of_row`` in csrc/kernels.c."""
    groups = torch.searchsorted(ends, torch.arange(rows, device=ends.device), right=True)
    return groups.clamp_(max=ends.numel() - 1)


def row_max_min(xf: torch.Tensor):
    """Per-row max and min, NaN propagating; an empty row counts as zeros."""
    if xf.shape[-1] == 0:
        zeros = xf.new_zeros(xf.shape[:-1])
        return zeros, zeros
    row_min, row_max = torch.aminmax(xf, dim=-1)
    return row_max, row_min


def dynamic_params(row_max, row_min, *, symmetric: bool, dst_max: float, dst_span: float):
    """(scale, offset) of dynamic quantization: symmetric ``max|x| / DST_MAX`` (offset 0),
    asymmetric ``(max - min) / (DST_MAX - DST_MIN)`` and ``DST_MAX - max / scale``."""
    if symmetric:
        scale = torch.maximum(row_max.abs(), row_min.abs()) / dst_max
        return scale, torch.zeros_like(scale)
    scale = (row_max - row_min) / dst_span
    return scale, dst_max - row_max / scale


def dynamically_scaled(xf: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
    """``x / scale (+ offset)`` per row, before rounding; rows whose scale is 0 give 0."""
    v = xf / scale.unsqueeze(-1)
    if offset is not None:
        v = v + offset.unsqueeze(-1)
    return v.masked_fill_((scale == 0).unsqueeze(-1), 0.0)


def storage_dtype(dst: torch.dtype) -> torch.dtype:
    """The dtype of the tensor that holds ``dst`` values (int4 packed into int32)."""
    return {torch.quint8: torch.uint8, torch.qint32: torch.int32, torch.quint4x2: torch.int32}.get(dst, torch.int8)


def packed_shape(shape, dst: torch.dtype):
    """Output shape for ``dst``: int4 packs the last dim 8 to an int32."""
    return (*shape[:-1], shape[-1] // 8) if dst == torch.quint4x2 else tuple(shape)


def affine_quant(x2d, scale, zero, *, per_row, period=1, ends=None, dst, out):
    """``out = saturate(x * scale + zero)``, row by row.

    The one kernel behind Quantize, AscendQuantV2 and GroupQuant; the portable twin of
    ``qg_affine_quant`` in csrc/kernels.c, whose comment gives the parameter layouts:
    per_row: ``scale``/``zero`` float32 ``[period]``, row r uses entry ``r % period``;
    otherwise ``scale`` float32 ``[groups, cols]`` (row group from cumulative ``ends``, or
    row 0) and ``zero`` float32 ``[cols]`` or None. ``out``: ``[rows, packed cols]``.
    """
    rows, cols = x2d.shape
    if native.serves(x2d):
        native.library().qg_affine_quant(
            native.ptr(x2d), native.IN_DTYPE[x2d.dtype], rows, cols, native.ptr(scale), native.ptr(zero),
            per_row, period, native.ptr(ends), 0 if ends is None else ends.numel(), native.OUT_KIND[dst],
            native.ptr(out), native.threads())
        return
    if ends is not None:
        row_group = row_groups(ends, rows)
    for chunk in row_chunks(rows, cols):
        xf = x2d[chunk].float()
        if per_row:
            channel = torch.arange(chunk.start, chunk.stop, device=xf.device) % period
            s, z = scale[channel].unsqueeze(-1), None if zero is None else zero[channel].unsqueeze(-1)
        else:
            s, z = scale[row_group[chunk]] if ends is not None else scale[0], zero
        v = xf * s
        if z is not None:
            v = v + z
        q = to_int(v, dst)
        out[chunk] = pack_int4(q) if dst == torch.quint4x2 else q
