"""Numerics every op shares (SPEC.md "Numerics"), in the portable torch form.

The C kernels in ``csrc/kernels.c`` implement the same steps in the same float32 order;
the tests hold the two paths to the same results.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ._dtypes import INT4, INT32, QuantDtype
from ._group_index import row_groups
from ._hifloat8 import hifloat8_bits

# Rows per chunk in the portable path: bounds the float32 temporaries to a few MiB
# whatever the input size, so peak extra memory stays well under the input's.
CHUNK_ELEMENTS = 1 << 20


def row_chunks(rows: int, cols: int) -> Iterator[slice]:
    step = max(1, CHUNK_ELEMENTS // max(cols, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def saturate(v: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """NaN -> 0, clamp to [lo, hi] (+-inf to the ends), round half to even (in place on a
    float32 temporary). ``v != v`` is the NaN test because inductor vectorizes it, where it
    runs ``isnan`` (and ``nan_to_num``'s inf tests) element by element in scalar code, and
    this function is also the formula the compiled path fuses (backend.py)."""
    return v.masked_fill_(v != v, 0.0).clamp_(lo, hi).round_()


def quantized(v: torch.Tensor, qd: QuantDtype) -> torch.Tensor:
    """Float32 ``v`` as stored values of format ``qd``: integers saturated, rounded and
    narrowed (int4 packed 8 per int32), floats clamped to the format's range and cast (HiF8
    encoded as its uint8 bit patterns)."""
    if qd.encoding == "hifloat8":
        # nan_to_num_ takes +-inf to +-float32 max, which the encoder saturates: no clamp
        return hifloat8_bits(v.nan_to_num_(nan=0.0))
    if qd.is_float:
        return v.nan_to_num_(nan=0.0).clamp_(qd.lo, qd.hi).to(qd.storage)
    if qd is INT32:
        # int32 ends are not float32 values: saturate in float64 where they are.
        return saturate(v.double(), qd.lo, qd.hi).to(torch.int32)
    q = saturate(v, qd.lo, qd.hi)
    return pack_int4(q.to(torch.int8)) if qd is INT4 else q.to(qd.storage)


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Pack int4 values (int8 tensor in [-8, 7], last dim divisible by 8) 8 per int32:
    element 8k+j in bits [4j, 4j+4) of word k, as two's-complement nibbles."""
    nibbles = (q.to(torch.int32) & 0xF).unflatten(-1, (-1, 8))
    word = nibbles[..., 0]
    for j in range(1, 8):
        word = word | (nibbles[..., j] << (4 * j))
    return word


def row_max_min(xf: torch.Tensor, dim: int = -1):
    """Max and min along ``dim`` (per row; per column with dim=-2), NaN propagating; an
    empty row counts as zeros."""
    if xf.shape[dim] == 0:
        zeros = xf.new_zeros(xf.shape[:dim % xf.dim()] + xf.shape[dim % xf.dim() + 1:])
        return zeros, zeros
    row_min, row_max = torch.aminmax(xf, dim=dim)
    return row_max, row_min


def dynamic_params(row_max, row_min, *, symmetric: bool, qd: QuantDtype):
    """(scale, offset) of dynamic quantization into ``qd``: symmetric ``max|x| / DST_MAX``
    (offset 0), asymmetric ``(max - min) / (DST_MAX - DST_MIN)`` and ``DST_MAX - max / scale``."""
    if symmetric:
        scale = torch.maximum(row_max.abs(), row_min.abs()) / qd.hi
        return scale, torch.zeros_like(scale)
    scale = (row_max - row_min) / qd.span
    return scale, qd.hi - row_max / scale


def dynamically_scaled(xf: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor | None = None,
                       dim: int = -1) -> torch.Tensor:
    """``x / scale (+ offset)`` before rounding, one scale per slice along ``dim`` (per row;
    per column with dim=-2); slices whose scale is 0 give 0."""
    v = xf / scale.unsqueeze(dim)
    if offset is not None:
        v = v + offset.unsqueeze(dim)
    return v.masked_fill_((scale == 0).unsqueeze(dim), 0.0)


def affine_quant(x2d, scale, zero, *, per_row, period=1, ends=None, qd, out):
    """``out = saturate(x * scale + zero)``, row by row.

    The one portable kernel behind Quantize, AscendQuantV2 and GroupQuant; the twin of
    ``qg_affine_quant`` in csrc/kernels.c, whose comment gives the parameter layouts:
    per_row: ``scale``/``zero`` float32 ``[period]``, row r uses entry ``r % period``;
    otherwise ``scale`` float32 ``[groups, cols]`` (row group from cumulative ``ends``, or
    row 0) and ``zero`` float32 ``[cols]``, ``[1]`` (one value for every column) or None.
    ``out``: ``[rows, packed cols]``.
    """
    rows, cols = x2d.shape
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
        out[chunk] = quantized(v, qd)
