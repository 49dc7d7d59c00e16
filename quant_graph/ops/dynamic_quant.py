"""DynamicQuantV2: dynamic per-token (or per-tensor) quantization, asymmetric and symmetric.

Two torch_npu ops lower to the one GE operator ``DynamicQuantV2``:

* ``npu_dynamic_quant_asymmetric`` (is_symmetrical=False) -> (y, scale, offset)
* ``npu_dynamic_quant`` (is_symmetrical=True) -> (y, scale)

Formulas (SPEC.md), per row of the last dim, after ``x = x * smooth_scales`` if given:
asymmetric ``scale = (max - min) / (DST_MAX - DST_MIN)``, ``offset = DST_MAX - max / scale``,
``y = round(x / scale + offset)``; symmetric ``scale = max|x| / DST_MAX``, ``y = round(x / scale)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.fx.experimental.symbolic_shapes import sym_and

from .. import native
from .._checks import check_devices
from .._dtypes import HIFLOAT8, INT4, TORCH_NPU_CODES, DtypeArg, QuantDtype, quant_dtype, resolve_code
from .._group_index import check_ends, row_groups
from .._numerics import dynamic_params, dynamically_scaled, quantized, row_chunks, row_max_min
from .._registry import define, given_arguments

# Both ops: DynamicQuantV2 (and aclnnDynamicQuantV4) take int8, int4, both float8 formats and
# hifloat8 with is_symmetrical true or false; torch_npu's meta function gives each its storage.
DST_TYPES = (torch.int8, torch.quint4x2, torch.float8_e4m3fn, torch.float8_e5m2, "hifloat8")
# dst_type_max: "0 ~ 32768, effective only for hifloat8" (aclnnDynamicQuantV4); 0 keeps the format's maximum
DST_TYPE_MAX_RANGE = (0.0, 32768.0)
QUANT_MODES = ("pertoken", "pertensor", "perchannel")
MAX_EXPERTS = 1024

# torch_npu 2.13/2.14's registered schema, verbatim: dst_type is a dtype code (a torch.dtype
# passed by the caller arrives as its ScalarType number).
_ARGS = (
    "(Tensor input, *, Tensor? smooth_scales=None, Tensor? group_index=None, int? dst_type=None, "
    'str quant_mode="pertoken", float dst_type_max=0.0)'
)
ASYMMETRIC = define("npu_dynamic_quant_asymmetric", f"{_ARGS} -> (Tensor, Tensor, Tensor)",
                    ge_types=("DynamicQuantV2",), module=__name__)
SYMMETRIC = define("npu_dynamic_quant", f"{_ARGS} -> (Tensor, Tensor)", ge_types=("DynamicQuant", "DynamicQuantV2"),
                   module=__name__)
# the dst_type codes naming a format of DST_TYPES: the rule as csrc/dispatch.cpp's fast path takes it
DST_CODES = tuple(code for code, named in TORCH_NPU_CODES.items() if named in DST_TYPES)
ASYMMETRIC.rule_values.update(DST_CODES=DST_CODES)
SYMMETRIC.rule_values.update(DST_CODES=DST_CODES)


def _the_input(op: str, input, x) -> torch.Tensor:
    """torch_npu names the tensor ``input``; its older documents call it ``x``: take either,
    exactly one."""
    if (input is None) == (x is None):
        raise TypeError(f"{op}: pass the tensor to quantize exactly once, as the first positional argument, "
                        f"input= or x=; got {'both' if input is not None else 'neither'}")
    return x if input is None else input


def _dst_type_max(op: str, dst_type_max) -> float:
    if dst_type_max is None:
        return 0.0
    if isinstance(dst_type_max, bool) or not isinstance(dst_type_max, (int, float)):
        raise TypeError(f"{op}: dst_type_max must be a float, got {dst_type_max!r}")
    return dst_type_max


def _dtype_code(op: str, dst_type):
    """dst_type as the op takes it: None, a torch.dtype (the dispatcher passes its code on) or an int code."""
    if dst_type is not None and (isinstance(dst_type, bool) or not isinstance(dst_type, (int, torch.dtype))):
        raise TypeError(f"{op}: dst_type must be None, a torch.dtype or an int dtype code, got {dst_type!r}")
    return dst_type


# The arguments both public functions share, documented once.
_ARGS_DOC = """Args:
    input: float16/bfloat16 tensor of rank >= 2; each slice along the last dim is a token.
        Also accepted as ``x=`` (the name in torch_npu's older documents).
    x: the same tensor, by its older name; pass exactly one of input and x.
    smooth_scales: optional smooth-quant factors, same dtype as input: ``[H]``, or ``[E, H]``
        (one row per expert) together with ``group_index``; with quant_mode="perchannel"
        ``[M]``, one factor per token (M = dim -2).
    group_index: optional int32 ``[E]`` cumulative row ends over the flattened rows
        (MoE): rows ``[group_index[i-1], group_index[i])`` use ``smooth_scales[i]``;
        per-token quant only.
    dst_type: a torch.dtype or torch_npu's int code for it: None or torch.int8 (1),
        torch.quint4x2 (16; int4 packed 8 per int32), torch.float8_e4m3fn (24 or 292),
        torch.float8_e5m2 (23 or 291), torch_npu.hifloat8 (290; HiF8 bits in uint8).
    quant_mode: "pertoken" (scale per row), "pertensor" (one scale, shape ``(1,)``) or
        "perchannel" (per column over the tokens of each ``[M, H]`` slice, shape
        ``input.shape[:-2] + (H,)``).
    dst_type_max: hifloat8 only: a non-zero value in (0, 32768] replaces DST_MAX (and
        -DST_MAX DST_MIN) in the scale formula. None, the default, means torch_npu's 0.0:
        torch.compile traces a float default as a symbolic input and restarts its
        analysis, compiling the frame twice.
"""


def _call(op, input, x, smooth_scales, group_index, dst_type, quant_mode, dst_type_max):
    """Both public functions' call of ``op``, passing on only the arguments given."""
    name = op.__name__
    kwargs = given_arguments(smooth_scales=smooth_scales, group_index=group_index,
                             dst_type=_dtype_code(name, dst_type))
    if quant_mode != "pertoken":
        kwargs["quant_mode"] = quant_mode
    if dst_type_max is not None:
        kwargs["dst_type_max"] = _dst_type_max(name, dst_type_max)
    return op(_the_input(name, input, x), **kwargs)


@ASYMMETRIC.public_function
def npu_dynamic_quant_asymmetric(input: Tensor | None = None, *, x: Tensor | None = None,
                                 smooth_scales: Tensor | None = None, group_index: Tensor | None = None,
                                 dst_type: DtypeArg = None, quant_mode: str = "pertoken",
                                 dst_type_max: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    return _call(torch.ops.quant_graph.npu_dynamic_quant_asymmetric, input, x, smooth_scales, group_index, dst_type,
                 quant_mode, dst_type_max)


npu_dynamic_quant_asymmetric.__doc__ = f"""Dynamic asymmetric quantization (torch_npu.npu_dynamic_quant_asymmetric):
scale = (max - min) / (DST_MAX - DST_MIN), offset = DST_MAX - max / scale, y = round(x / scale + offset).

{_ARGS_DOC}
Returns:
    ``(y, scale, offset)``: y shaped like input in dst_type's storage (int32
    ``[..., H // 8]`` for int4); scale and offset float32.
"""


@SYMMETRIC.public_function
def npu_dynamic_quant(input: Tensor | None = None, *, x: Tensor | None = None,
                      smooth_scales: Tensor | None = None, group_index: Tensor | None = None,
                      dst_type: DtypeArg = None, quant_mode: str = "pertoken",
                      dst_type_max: float | None = None) -> tuple[Tensor, Tensor]:
    return _call(torch.ops.quant_graph.npu_dynamic_quant, input, x, smooth_scales, group_index, dst_type, quant_mode,
                 dst_type_max)


npu_dynamic_quant.__doc__ = f"""Dynamic symmetric quantization (torch_npu.npu_dynamic_quant):
scale = max|x| / DST_MAX (the format's largest finite value, or dst_type_max), y = round(x / scale).

{_ARGS_DOC}
Returns:
    ``(y, scale)``: y shaped like input in dst_type's storage (int32 ``[..., H // 8]`` for
    int4); scale float32.
"""


def check_args(x, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, *, symmetric: bool) -> QuantDtype:
    """Shape, dtype and keyword rules of both seeds and of torch_npu's schema; returns the
    output format. ``dst_type`` is the int code (or None) the schema takes."""
    op = "npu_dynamic_quant" if symmetric else "npu_dynamic_quant_asymmetric"
    check_devices(op, "input", x, smooth_scales=smooth_scales, group_index=group_index)
    torch._check_type(x.dtype in (torch.float16, torch.bfloat16),
                      lambda: f"{op}: input (x) must be float16 or bfloat16, got {x.dtype}")
    torch._check_value(x.dim() >= 2, lambda: f"{op}: input (x) must have at least 2 dims, got {x.dim()}")
    dst = resolve_code(op, "dst_type", dst_type)
    torch._check_value(dst is None or dst in DST_TYPES,
                       lambda: f"{op}: dst_type must be None or one of {DST_TYPES}, got {dst} (code {dst_type})")
    qd = quant_dtype(dst)
    lo, hi = DST_TYPE_MAX_RANGE
    torch._check_value(lo <= dst_type_max <= hi, lambda: (
        f"{op}: dst_type_max must be in [{lo:g}, {hi:g}] (0 keeps the format's maximum), got {dst_type_max}"))
    # CANN ignores dst_type_max for every other format, and torch_npu on A2/A3 refuses any
    # non-zero value: computing with it here would give numbers no NPU gives.
    torch._check_value(dst_type_max == 0.0 or qd is HIFLOAT8, lambda: (
        f"{op}: dst_type_max applies only to dst_type hifloat8 (code 290); got dst_type_max={dst_type_max} "
        f"with dst_type {qd.name}"))
    torch._check_value(quant_mode in QUANT_MODES,
                       lambda: f"{op}: quant_mode must be one of {QUANT_MODES}, got {quant_mode!r}")
    hidden = x.shape[-1]
    if qd is INT4:
        torch._check_value(hidden % 8 == 0, lambda: (
            f"{op}: with dst_type=torch.quint4x2 the last dim of x must be divisible by 8, got {hidden}"))
    if smooth_scales is not None:
        torch._check_type(smooth_scales.dtype == x.dtype, lambda: (
            f"{op}: smooth_scales must have x's dtype {x.dtype}, got {smooth_scales.dtype}"))
    if quant_mode == "perchannel":
        # aclnnDynamicQuantV4: per channel, smooth_scales scales the token dim (one factor per
        # row of each [M, H] slice), and there is no MoE form.
        torch._check_value(group_index is None, lambda: (
            f"{op}: group_index supports only quant_mode='pertoken', got quant_mode='perchannel'"))
        if smooth_scales is not None:
            tokens = x.shape[-2]
            torch._check_value(smooth_scales.dim() == 1 and smooth_scales.shape[0] == tokens, lambda: (
                f"{op}: with quant_mode='perchannel', smooth_scales must be 1-D [M] with M={tokens}, x's "
                f"second-to-last dim, got shape {tuple(smooth_scales.shape)}"))
        return qd
    if group_index is None:
        if smooth_scales is not None:
            torch._check_value(smooth_scales.dim() == 1, lambda: (
                f"{op}: without group_index, smooth_scales must be 1-D [H], got shape {tuple(smooth_scales.shape)}"))
            torch._check_value(smooth_scales.shape[0] == hidden, lambda: (
                f"{op}: smooth_scales must have x's last dim {hidden}, got {smooth_scales.shape[0]}"))
        return qd
    torch._check_value(smooth_scales is not None, lambda: f"{op}: group_index needs smooth_scales [E, H]")
    torch._check_type(group_index.dtype == torch.int32,
                      lambda: f"{op}: group_index must be int32, got {group_index.dtype}")
    torch._check_value(group_index.dim() == 1,
                       lambda: f"{op}: group_index must be 1-D [E], got shape {tuple(group_index.shape)}")
    torch._check_value(quant_mode == "pertoken",
                       lambda: f"{op}: group_index supports only quant_mode='pertoken', got {quant_mode!r}")
    torch._check_value(smooth_scales.dim() == 2, lambda: (
        f"{op}: with group_index, smooth_scales must be 2-D [E, H], got shape {tuple(smooth_scales.shape)}"))
    experts = smooth_scales.shape[0]
    torch._check_value(smooth_scales.shape[1] == hidden, lambda: (
        f"{op}: smooth_scales [E, H] must have x's last dim H={hidden}, got {smooth_scales.shape[1]}"))
    torch._check_value(group_index.shape[0] == experts, lambda: (
        f"{op}: group_index must have E={experts} entries (smooth_scales' first dim), got {group_index.shape[0]}"))
    torch._check_value(sym_and(experts >= 1, experts <= MAX_EXPERTS), lambda: (
        f"{op}: the number of experts E must be in [1, {MAX_EXPERTS}], got {experts}"))
    # DynamicQuantV2's doc also says E should not exceed the row count S; SPEC.md leaves
    # that out and MoE decode (fewer tokens than experts, most groups empty) needs it, so
    # it is not enforced: group_index's value rules (eager) still bound every group.
    return qd


def _stats_shape(shape, quant_mode):
    """Shape of scale and offset: one per row, one per tensor, or one per column of each
    ``[M, H]`` slice (perchannel: ``shape[:-2] + (H,)``, as torch_npu's meta function)."""
    if quant_mode == "pertensor":
        return (1,)
    if quant_mode == "perchannel":
        return (*shape[:-2], shape[-1])
    return tuple(shape[:-1])


def _empty_outputs(x, qd, quant_mode):
    """y and scale as both the fake and the eager kernels allocate them."""
    y = x.new_empty(qd.stored_shape(x.shape), dtype=qd.storage)
    scale = x.new_empty(_stats_shape(x.shape, quant_mode), dtype=torch.float32)
    return y, scale


def _fake(x, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, *, symmetric):
    qd = check_args(x, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, symmetric=symmetric)
    return _empty_outputs(x, qd, quant_mode)


@ASYMMETRIC.fake
def _(input, *, smooth_scales=None, group_index=None, dst_type=None, quant_mode="pertoken", dst_type_max=0.0):
    y, scale = _fake(input, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, symmetric=False)
    return y, scale, torch.empty_like(scale)


@SYMMETRIC.fake
def _(input, *, smooth_scales=None, group_index=None, dst_type=None, quant_mode="pertoken", dst_type_max=0.0):
    return _fake(input, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, symmetric=True)


@dataclass
class _Job:
    """One eager call, as both compute steps take it. ``x2d``: ``[rows, cols]`` contiguous;
    ``smooth``: float32 ``[groups, cols]`` (per token / per tensor) or ``[tokens]``
    (perchannel); ``ends``: int64 cumulative row ends or None; perchannel works on
    ``batches`` slices of ``tokens`` rows each."""

    x2d: torch.Tensor
    smooth: Tensor | None
    ends: Tensor | None
    qd: QuantDtype  # the format y is written in
    formula: QuantDtype  # whose DST_MAX and DST_MAX - DST_MIN the scale formula takes
    symmetric: bool
    mode: str
    batches: int
    tokens: int
    y2d: torch.Tensor
    scale: torch.Tensor
    offset: Tensor | None

    def params(self, row_max, row_min):
        return dynamic_params(row_max, row_min, symmetric=self.symmetric, qd=self.formula)


def _portable(job: _Job) -> None:
    """Any device: chunks of rows, float32 temporaries of one chunk at a time."""
    if job.mode == "perchannel":
        _portable_per_channel(job)
        return
    x2d, smooth, ends = job.x2d, job.smooth, job.ends
    rows, cols = x2d.shape
    per_tensor = job.mode == "pertensor"
    if ends is not None:
        row_group = row_groups(ends, rows)

    def widened(chunk):
        xf = x2d[chunk].float()
        if smooth is not None:
            xf = xf * (smooth[row_group[chunk]] if ends is not None else smooth[0])
        return xf

    scale, offset = job.scale.view(-1), None if job.offset is None else job.offset.view(-1)
    if per_tensor:
        # an empty tensor counts as all zeros (scale 0), as in the C kernel
        zero = x2d.new_zeros((), dtype=torch.float32)
        stats = [torch.aminmax(widened(chunk)) for chunk in row_chunks(rows, cols)] if cols else []
        mins, maxs = zip(*stats, strict=True) if stats else ((zero,), (zero,))
        tensor_min, tensor_max = torch.stack(mins).amin().reshape(1), torch.stack(maxs).amax().reshape(1)
        scale_t, offset_t = job.params(tensor_max, tensor_min)
        scale.copy_(scale_t)
        if offset is not None:
            offset.copy_(offset_t)

    for chunk in row_chunks(rows, cols):
        job.y2d[chunk], s, o = _quantized_rows(widened(chunk), job.qd, job.formula, job.symmetric,
                                               (scale_t, offset_t) if per_tensor else None)
        if not per_tensor:
            scale[chunk] = s
            if offset is not None:
                offset[chunk] = o


def _quantized_rows(xf, qd, formula, symmetric, params=None, dim=-1):
    """``(y, scale, offset)`` of the float32 rows ``xf`` (any leading dims): the quantization
    formula with the rows' own max and min (the columns' with dim=-2) or, per tensor, the
    given ``(scale, offset)``. The portable kernel's step per chunk of rows and, over the
    whole input, the decomposition."""
    scale, offset = params if params is not None else dynamic_params(*row_max_min(xf, dim), symmetric=symmetric,
                                                                     qd=formula)
    v = dynamically_scaled(xf, scale, None if symmetric else offset, dim)
    return quantized(v, qd), scale, offset


def _portable_per_channel(job: _Job) -> None:
    """Statistics of each column over the ``tokens`` rows of a slice (a pass over the slice
    in row chunks), then the slice quantized with them (a second pass)."""
    cols, tokens = job.x2d.shape[1], job.tokens
    scale = job.scale.view(job.batches, cols)
    offset = None if job.offset is None else job.offset.view(job.batches, cols)
    for b in range(job.batches):
        def widened(chunk):
            xf = job.x2d[b * tokens + chunk.start:b * tokens + chunk.stop].float()
            return xf if job.smooth is None else xf * job.smooth[chunk].unsqueeze(-1)

        # a slice of no tokens counts as zeros, as an empty row does
        col_max = col_min = job.x2d.new_zeros(cols, dtype=torch.float32)
        for i, chunk in enumerate(row_chunks(tokens, cols)):
            chunk_min, chunk_max = torch.aminmax(widened(chunk), dim=0)
            col_max, col_min = ((chunk_max, chunk_min) if i == 0 else
                                (torch.maximum(col_max, chunk_max), torch.minimum(col_min, chunk_min)))
        s, o = job.params(col_max, col_min)
        scale[b] = s
        if offset is not None:
            offset[b] = o
        for chunk in row_chunks(tokens, cols):
            v = dynamically_scaled(widened(chunk), s, None if job.symmetric else o, dim=-2)
            job.y2d[b * tokens + chunk.start:b * tokens + chunk.stop] = quantized(v, job.qd)


def _native(job: _Job) -> None:
    if job.qd.c_kind is None or job.x2d.numel() == 0:
        # no C writer for this format (HiF8); an empty x (no rows, no width, or perchannel
        # slices of no rows) has only its statistics to write, and an empty y's data pointer
        # may be NULL, which the C kernel's memset of a zero-scale row must never get
        _portable(job)
        return
    rows, cols = job.x2d.shape
    native.DYNAMIC_QUANT(
        x=job.x2d, x_dtype=native.IN_DTYPE[job.x2d.dtype], rows=rows, cols=cols, smooth=job.smooth,
        group_ends=job.ends, groups=0 if job.ends is None else job.ends.numel(), symmetric=job.symmetric,
        per_tensor=job.mode == "pertensor", per_channel=job.mode == "perchannel", channel_rows=job.tokens,
        **native.format_args(job.qd), dst_max=job.formula.hi, dst_span=job.formula.span, y=job.y2d, scale=job.scale,
        offset=job.offset)


def _eager(compute, input, *, smooth_scales=None, group_index=None, dst_type=None, quant_mode="pertoken",
           dst_type_max=0.0, symmetric):
    """Both ops' eager kernel on either path: ``compute`` is ``_portable`` or ``_native``."""
    op = "npu_dynamic_quant" if symmetric else "npu_dynamic_quant_asymmetric"
    x = input
    qd = check_args(x, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, symmetric=symmetric)
    cols = x.shape[-1]
    rows = math.prod(x.shape[:-1])
    if group_index is not None:
        check_ends(op, group_index, rows)
    y, scale = _empty_outputs(x, qd, quant_mode)
    offset = None if symmetric else torch.empty_like(scale)
    smooth = None
    if smooth_scales is not None:
        smooth = smooth_scales.float().reshape(-1 if quant_mode == "perchannel" else (-1, cols)).contiguous()
    ends = None if group_index is None else group_index.to(torch.int64).contiguous()
    # a non-zero dst_type_max (hifloat8 only) is DST_MAX, and -dst_type_max DST_MIN, in the formula
    formula = dataclasses.replace(qd, lo=-dst_type_max, hi=dst_type_max) if dst_type_max else qd
    compute(_Job(x.reshape(rows, cols).contiguous(), smooth, ends, qd, formula, symmetric, quant_mode,
                 batches=math.prod(x.shape[:-2]), tokens=x.shape[-2], y2d=y.view(rows, y.shape[-1]), scale=scale,
                 offset=offset))
    return (y, scale) if symmetric else (y, scale, offset)


ASYMMETRIC.portable(functools.partial(_eager, _portable, symmetric=False))
SYMMETRIC.portable(functools.partial(_eager, _portable, symmetric=True))
ASYMMETRIC.cpu(functools.partial(_eager, _native, symmetric=False))
SYMMETRIC.cpu(functools.partial(_eager, _native, symmetric=True))


def _decomposition(input, *, smooth_scales=None, group_index=None, dst_type=None, quant_mode="pertoken",
                   dst_type_max=0.0, symmetric):
    """Both ops' formula over the whole input in torch ops, bit for bit the eager kernel's (the
    same float32 steps, ``_quantized_rows``, without the portable kernel's row chunks, which
    only bound its temporaries), for the compiled path to fuse; see ``_registry``.

    Integer formats (int8, int4) per token, per tensor and per channel, with or without
    smooth_scales. NotImplemented, so the call stays the eager kernel, for: group_index (its
    row ends are tensor data, which the eager kernel validates and reads row by row), and the
    float formats (float8, hifloat8), whose casts inductor's code is not checked to round as
    the kernels do.
    """
    qd = check_args(input, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, symmetric=symmetric)
    if group_index is not None or qd.is_float:
        return NotImplemented
    xf = input.float()
    if smooth_scales is not None:
        # per channel, one factor per token: it scales the rows
        xf = xf * (smooth_scales.float().unsqueeze(-1) if quant_mode == "perchannel" else smooth_scales.float())
    # dst_type_max is 0 here (hifloat8 only): the scale formula takes qd's own range
    params = None
    if quant_mode == "pertensor":
        # an empty tensor counts as all zeros (scale 0), as in both kernels
        tensor_min, tensor_max = torch.aminmax(xf) if xf.numel() else (xf.new_zeros(()), xf.new_zeros(()))
        params = dynamic_params(tensor_max.reshape(1), tensor_min.reshape(1), symmetric=symmetric, qd=qd)
    y, scale, offset = _quantized_rows(xf, qd, qd, symmetric, params, dim=-2 if quant_mode == "perchannel" else -1)
    return (y, scale) if symmetric else (y, scale, offset)


ASYMMETRIC.decompose(functools.partial(_decomposition, symmetric=False))
SYMMETRIC.decompose(functools.partial(_decomposition, symmetric=True))
