"""DynamicQuantV2: dynamic per-token (or per-tensor) quantization, asymmetric and symmetric.

Two torch_npu ops lower to the one GE operator ``DynamicQuantV2``:

* ``npu_dynamic_quant_asymmetric`` (is_symmetrical=False) -> (y, scale, offset)
* ``npu_dynamic_quant`` (is_symmetrical=True) -> (y, scale)

Formulas (SPEC.md), per row of the last dim, after ``x = x * smooth_scales`` if given:
asymmetric ``scale = (max - min) / (DST_MAX - DST_MIN)``, ``offset = DST_MAX - max / scale``,
``y = round(x / scale + offset)``; symmetric ``scale = max|x| / DST_MAX``, ``y = round(x / scale)``.
"""

from __future__ import annotations

import math

import torch
from torch.fx.experimental.symbolic_shapes import sym_and

from .. import native
from .._checks import check_devices
from .._dtypes import INT4, QuantDtype, quant_dtype, resolve_code
from .._group_index import check_ends, row_groups
from .._numerics import dynamic_params, dynamically_scaled, quantized, row_chunks, row_max_min
from .._registry import define

ASYMMETRIC_DST_TYPES = (torch.int8, torch.quint4x2)
SYMMETRIC_DST_TYPES = (torch.int8, torch.quint4x2, torch.float8_e4m3fn, torch.float8_e5m2)
QUANT_MODES = ("pertoken", "pertensor")
MAX_EXPERTS = 1024

# torch_npu 2.13/2.14's registered schema, verbatim: dst_type is a dtype code (a torch.dtype
# passed by the caller arrives as its ScalarType number).
_ARGS = (
    "(Tensor input, *, Tensor? smooth_scales=None, Tensor? group_index=None, int? dst_type=None, "
    'str quant_mode="pertoken", float dst_type_max=0.0)'
)
ASYMMETRIC = define("npu_dynamic_quant_asymmetric", f"{_ARGS} -> (Tensor, Tensor, Tensor)",
                    ge_types=("DynamicQuantV2",), module=__name__)
SYMMETRIC = define("npu_dynamic_quant", f"{_ARGS} -> (Tensor, Tensor)", ge_types=("DynamicQuantV2",),
                   module=__name__)


def _the_input(op: str, input, x) -> torch.Tensor:
    """torch_npu names the tensor ``input``; its older documents call it ``x``: take either,
    exactly one."""
    if (input is None) == (x is None):
        raise TypeError(f"{op}: pass the tensor to quantize exactly once, as the first positional argument, "
                        f"input= or x=; got {'both' if input is not None else 'neither'}")
    return x if input is None else input


def _dtype_code(op: str, dst_type):
    """dst_type as the op takes it: None, a torch.dtype (the dispatcher passes its code on) or an int code."""
    if dst_type is not None and (isinstance(dst_type, bool) or not isinstance(dst_type, (int, torch.dtype))):
        raise TypeError(f"{op}: dst_type must be None, a torch.dtype or an int dtype code, got {dst_type!r}")
    return dst_type


@ASYMMETRIC.public_function
def npu_dynamic_quant_asymmetric(input=None, *, x=None, smooth_scales=None, group_index=None, dst_type=None,
                                 quant_mode="pertoken", dst_type_max=None):
    """Dynamic asymmetric quantization (torch_npu.npu_dynamic_quant_asymmetric).

    Args:
        input: float16/bfloat16 tensor of rank >= 2; each slice along the last dim is a token.
            Also accepted as ``x=`` (the name in torch_npu's older documents).
        smooth_scales: optional smooth-quant factors, same dtype as input: ``[H]``, or ``[E, H]``
            (one row per expert) together with ``group_index``.
        group_index: optional int32 ``[E]`` cumulative row ends over the flattened rows
            (MoE): rows ``[group_index[i-1], group_index[i])`` use ``smooth_scales[i]``.
        dst_type: None or torch.int8, or torch.quint4x2 (int4 packed 8 per int32); a
            torch.dtype or torch_npu's int code for it.
        quant_mode: "pertoken" (scale per row) or "pertensor" (one scale, shape ``(1,)``).
        dst_type_max: 0.0 (torch_npu's default); None means the same. The default is None
            because torch.compile traces a float default as a symbolic input and then
            restarts its analysis, compiling the frame twice.

    Returns:
        ``(y, scale, offset)``: y int8 shaped like input (int32 ``[..., H // 8]`` for int4);
        scale and offset float32 of shape ``input.shape[:-1]`` (``(1,)`` per tensor).
    """
    op = "npu_dynamic_quant_asymmetric"
    return torch.ops.quant_graph.npu_dynamic_quant_asymmetric(
        _the_input(op, input, x), smooth_scales=smooth_scales, group_index=group_index,
        dst_type=_dtype_code(op, dst_type), quant_mode=quant_mode,
        dst_type_max=0.0 if dst_type_max is None else dst_type_max)


@SYMMETRIC.public_function
def npu_dynamic_quant(input=None, *, x=None, smooth_scales=None, group_index=None, dst_type=None,
                      quant_mode="pertoken", dst_type_max=None):
    """Dynamic symmetric quantization (torch_npu.npu_dynamic_quant).

    Arguments as ``npu_dynamic_quant_asymmetric``; dst_type may also be torch.float8_e4m3fn
    or torch.float8_e5m2 (scale = max|x| / the format's largest finite value).

    Returns:
        ``(y, scale)``.
    """
    op = "npu_dynamic_quant"
    return torch.ops.quant_graph.npu_dynamic_quant(
        _the_input(op, input, x), smooth_scales=smooth_scales, group_index=group_index,
        dst_type=_dtype_code(op, dst_type), quant_mode=quant_mode,
        dst_type_max=0.0 if dst_type_max is None else dst_type_max)


def check_args(x, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, *, symmetric: bool) -> QuantDtype:
    """Shape, dtype and keyword rules of both seeds and of torch_npu's schema; returns the
    output format. ``dst_type`` is the int code (or None) the schema takes."""
    op = "npu_dynamic_quant" if symmetric else "npu_dynamic_quant_asymmetric"
    allowed = SYMMETRIC_DST_TYPES if symmetric else ASYMMETRIC_DST_TYPES
    check_devices(op, "input", x, smooth_scales=smooth_scales, group_index=group_index)
    torch._check_type(x.dtype in (torch.float16, torch.bfloat16),
                      lambda: f"{op}: input (x) must be float16 or bfloat16, got {x.dtype}")
    torch._check_value(x.dim() >= 2, lambda: f"{op}: input (x) must have at least 2 dims, got {x.dim()}")
    dst = resolve_code(op, "dst_type", dst_type)
    torch._check_value(dst is None or dst in allowed,
                       lambda: f"{op}: dst_type must be None or one of {allowed}, got {dst} (code {dst_type})")
    torch._check_value(dst_type_max == 0.0,
                       lambda: f"{op}: dst_type_max must be 0.0 for dst_type {dst}, got {dst_type_max}")
    qd = quant_dtype(dst)
    torch._check_value(quant_mode in QUANT_MODES,
                       lambda: f"{op}: quant_mode must be one of {QUANT_MODES}, got {quant_mode!r}")
    hidden = x.shape[-1]
    if qd is INT4:
        torch._check_value(hidden % 8 == 0, lambda: (
            f"{op}: with dst_type=torch.quint4x2 the last dim of x must be divisible by 8, got {hidden}"))
    if smooth_scales is not None:
        torch._check_type(smooth_scales.dtype == x.dtype, lambda: (
            f"{op}: smooth_scales must have x's dtype {x.dtype}, got {smooth_scales.dtype}"))
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


def _empty_outputs(x, qd, quant_mode):
    """y and scale as both the fake and the eager kernels allocate them."""
    y = x.new_empty(qd.stored_shape(x.shape), dtype=qd.storage)
    scale = x.new_empty((1,) if quant_mode == "pertensor" else x.shape[:-1], dtype=torch.float32)
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


def _portable(x2d, smooth, ends, qd, symmetric, per_tensor, y2d, scale, offset):
    """Any device: chunks of rows, float32 temporaries of one chunk at a time."""
    rows, cols = x2d.shape
    if ends is not None:
        row_group = row_groups(ends, rows)

    def widened(chunk):
        xf = x2d[chunk].float()
        if smooth is not None:
            xf = xf * (smooth[row_group[chunk]] if ends is not None else smooth[0])
        return xf

    scale, offset = scale.view(-1), None if offset is None else offset.view(-1)
    if per_tensor:
        # an empty tensor counts as all zeros (scale 0), as in the C kernel
        zero = x2d.new_zeros((), dtype=torch.float32)
        stats = [torch.aminmax(widened(chunk)) for chunk in row_chunks(rows, cols)] if cols else []
        mins, maxs = zip(*stats, strict=True) if stats else ((zero,), (zero,))
        tensor_min, tensor_max = torch.stack(mins).amin().reshape(1), torch.stack(maxs).amax().reshape(1)
        scale_t, offset_t = dynamic_params(tensor_max, tensor_min, symmetric=symmetric, qd=qd)
        scale.copy_(scale_t)
        if offset is not None:
            offset.copy_(offset_t)

    for chunk in row_chunks(rows, cols):
        xf = widened(chunk)
        if per_tensor:
            s, o = scale_t, offset_t
        else:
            s, o = dynamic_params(*row_max_min(xf), symmetric=symmetric, qd=qd)
            scale[chunk] = s
            if offset is not None:
                offset[chunk] = o
        y2d[chunk] = quantized(dynamically_scaled(xf, s, None if symmetric else o), qd)


def _native(x2d, smooth, ends, qd, symmetric, per_tensor, y2d, scale, offset):
    if qd.c_kind is None:  # no C writer for this format (float8)
        _portable(x2d, smooth, ends, qd, symmetric, per_tensor, y2d, scale, offset)
        return
    rows, cols = x2d.shape
    native.DYNAMIC_QUANT(
        x=x2d, x_dtype=native.IN_DTYPE[x2d.dtype], rows=rows, cols=cols, smooth=smooth, group_ends=ends,
        groups=0 if ends is None else ends.numel(), symmetric=symmetric, per_tensor=per_tensor,
        **native.format_args(qd), dst_max=qd.hi, dst_span=qd.span, y=y2d, scale=scale, offset=offset)


def _eager(compute, x, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, *, symmetric):
    op = "npu_dynamic_quant" if symmetric else "npu_dynamic_quant_asymmetric"
    qd = check_args(x, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, symmetric=symmetric)
    cols = x.shape[-1]
    rows = math.prod(x.shape[:-1])
    if group_index is not None:
        check_ends(op, group_index, rows)
    y, scale = _empty_outputs(x, qd, quant_mode)
    offset = None if symmetric else torch.empty_like(scale)
    smooth = None if smooth_scales is None else smooth_scales.float().reshape(-1, cols).contiguous()
    ends = None if group_index is None else group_index.to(torch.int64).contiguous()
    compute(x.reshape(rows, cols).contiguous(), smooth, ends, qd, symmetric, quant_mode == "pertensor",
            y.view(rows, y.shape[-1]), scale, offset)
    return (y, scale) if symmetric else (y, scale, offset)


@ASYMMETRIC.portable
def _(input, *, smooth_scales=None, group_index=None, dst_type=None, quant_mode="pertoken", dst_type_max=0.0):
    return _eager(_portable, input, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, symmetric=False)


@SYMMETRIC.portable
def _(input, *, smooth_scales=None, group_index=None, dst_type=None, quant_mode="pertoken", dst_type_max=0.0):
    return _eager(_portable, input, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, symmetric=True)


@ASYMMETRIC.cpu
def _(input, *, smooth_scales=None, group_index=None, dst_type=None, quant_mode="pertoken", dst_type_max=0.0):
    return _eager(_native, input, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, symmetric=False)


@SYMMETRIC.cpu
def _(input, *, smooth_scales=None, group_index=None, dst_type=None, quant_mode="pertoken", dst_type_max=0.0):
    return _eager(_native, input, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, symmetric=True)
