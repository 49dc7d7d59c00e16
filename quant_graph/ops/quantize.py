"""npu_quantize: static quantization with given scales and zero points.

Lowers to ``Quantize`` (div_mode=True) or ``AscendQuantV2`` (div_mode=False).

* div_mode=True: per channel along ``axis``, the same as
  ``torch.quantize_per_channel(input, scales, zero_points, axis, dtype).int_repr()``:
  ``y = round(x * (1 / scale) + zero_point)``, saturated (1/scale in float32, and the zero
  point added before rounding, as that function does: it decides ties).
* div_mode=False: ``y = round(x * scales + zero_points)``, element-wise along the last
  axis, or the second-to-last when ``axis == -2``; scales/zero_points broadcast along it.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor
from torch.fx.experimental.symbolic_shapes import sym_or

from .. import _numerics, native
from .._checks import check_devices, check_same_shape
from .._dtypes import INT4, TORCH_NPU_CODES, DtypeArg, QuantDtype, quant_dtype, resolve_code, torch_npu_code
from .._registry import define

# The output formats each mode takes, as torch_npu's int dtype codes, where op-plugin
# (QuantizeKernelNpuOpApi.cpp) sends them. div_mode=True: aclnnQuantize, whose QUANTIZE_SUPPORT_MAP
# holds torch's own codes of the int8/uint8/int32 and float8 dtypes (and 290), not torch_npu's
# float8 aliases 291/292. div_mode=False: aclnnAscendQuantV3, which writes int8 (1, 12), int4 packed
# in int32 (16) and the float8 formats by either code; it refuses uint8, and it reads int32 (3, 14)
# as packed int4 where torch_npu's meta returns unpacked int32, so those are refused here too.
# Both also take hifloat8 (290), stored as HiF8 bit patterns in uint8 (torch_npu's meta maps
# 290 to torch.uint8 before its bits8 branch; op-plugin's eager path returns uint8 too).
DIV_CODES = (0, 1, 3, 12, 13, 14, 23, 24, 290)
MUL_CODES = (1, 12, 16, 23, 24, 290, 291, 292)
INPUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
DIV_SCALE_DTYPES = (torch.float32, torch.bfloat16)
DIV_ZERO_POINT_DTYPES = (torch.int8, torch.uint8, torch.int32, torch.bfloat16)

OP = define("npu_quantize", "(Tensor self, Tensor scales, Tensor? zero_points, int dtype, int axis=1, "
            "bool div_mode=True) -> Tensor", ge_types=("Quantize", "AscendQuantV2"), module=__name__)
OP.rule_values.update(DIV_CODES=DIV_CODES, MUL_CODES=MUL_CODES)


@OP.public_function
def npu_quantize(input: Tensor, scales: Tensor, zero_points: Tensor | None, dtype: DtypeArg, axis: int = 1,
                 div_mode: bool = True) -> Tensor:
    """Quantize ``input`` with given scales and zero points (torch_npu.npu_quantize).

    The first argument is ``input``, as in torch_npu's Python API (its schema says ``self``,
    which torch's bindings expose as ``input``); positional calls are the common form.

    Args:
        input: float32/float16/bfloat16 tensor.
        scales: div_mode=True: float32/bfloat16 ``[input.shape[axis]]``, divided by.
            div_mode=False: float32/float16/bfloat16, multiplied by; 1-D of the element-wise
            dim's size or 1, or of input's rank with every dim 1 but that one.
        zero_points: optional. div_mode=True: int8/uint8/int32/bfloat16, scales' shape.
            div_mode=False: scales' shape and dtype.
        dtype: a torch.dtype or torch_npu's int code of one. div_mode=True: torch.qint8,
            torch.quint8 or torch.qint32 (int8, uint8 or int32 out). div_mode=False:
            torch.qint8 (int8 out) or torch.quint4x2 (int32 out, 8 values per element, last
            dim divisible by 8).
        axis: div_mode=True: the channel dim. div_mode=False: -2 makes the second-to-last dim
            element-wise, anything else in [-2, input.dim()) the last.
        div_mode: which of the two formulas.

    Returns:
        y shaped like input: int8, uint8 or int32 for the integer dtypes; the float8 dtype
        itself; uint8 holding HiF8 bit patterns for hifloat8 (290); int32
        ``[..., last // 8]`` for int4 (torch.quint4x2, 8 values per element).
    """
    code = torch_npu_code("npu_quantize", "dtype", dtype)
    return torch.ops.quant_graph.npu_quantize(input, scales, zero_points, code, axis, div_mode)


def _named(code: int) -> str:
    return f"{code} ({TORCH_NPU_CODES.get(code, 'no dtype')})"


def output_format(dtype: int, div_mode: bool) -> QuantDtype:
    """The format an int dtype code names, if ``div_mode``'s kernel writes it."""
    allowed = DIV_CODES if div_mode else MUL_CODES
    torch._check_value(dtype in allowed, lambda: (
        f"npu_quantize: with div_mode={div_mode} dtype must be one of {', '.join(map(_named, allowed))}; "
        f"got {_named(dtype)}"))
    return quant_dtype(resolve_code("npu_quantize", "dtype", dtype))


def _check_div_mode(input, scales, zero_points, qd, axis):
    torch._check_type(scales.dtype in DIV_SCALE_DTYPES, lambda: (
        f"npu_quantize: with div_mode=True scales must be float32 or bfloat16, got {scales.dtype}"))
    # aclnnQuantize ignores axis for 1-element parameters, but TorchAir's converter and
    # op-plugin's older Quantize path refuse one out of range: so it is always checked.
    torch._check_value(-input.dim() <= axis < input.dim(), lambda: (
        f"npu_quantize: axis must be in [{-input.dim()}, {input.dim()}) for a {input.dim()}-D input, got {axis}"))
    channels = input.shape[axis]
    torch._check_value(scales.dim() == 1, lambda: (
        f"npu_quantize: with div_mode=True scales must be 1-D [input.shape[axis]] or [1], "
        f"got shape {tuple(scales.shape)}"))
    torch._check_value(sym_or_one(scales.shape[0], channels), lambda: (
        f"npu_quantize: scales must have input.shape[axis]={channels} entries or 1, got {scales.shape[0]}"))
    if zero_points is not None:
        # float32 zero points: Ascend 950's aclnnQuantize only, the one chip with float8 outputs
        allowed = DIV_ZERO_POINT_DTYPES + ((torch.float32,) if qd.is_float else ())
        torch._check_type(zero_points.dtype in allowed, lambda: (
            f"npu_quantize: with div_mode=True and dtype {qd.name} zero_points must be one of {allowed}, "
            f"got {zero_points.dtype}"))
        check_same_shape("npu_quantize", "zero_points", zero_points, "scales", scales)
    params = (scales,) if zero_points is None else (scales, zero_points)
    if any(t.dtype == torch.bfloat16 for t in params):
        torch._check_type(all(t.dtype == torch.bfloat16 for t in (input, *params)), lambda: (
            "npu_quantize: with div_mode=True bfloat16 scales or zero_points need input, scales and zero_points "
            f"all bfloat16, got input {input.dtype}, scales {scales.dtype}, "
            f"zero_points {None if zero_points is None else zero_points.dtype}"))


def _check_mul_mode(input, scales, zero_points, qd, axis):
    torch._check_type(scales.dtype in INPUT_DTYPES, lambda: (
        f"npu_quantize: with div_mode=False scales must be float32, float16 or bfloat16, got {scales.dtype}"))
    torch._check_type(input.dtype in (torch.float32, scales.dtype), lambda: (
        f"npu_quantize: with div_mode=False scales must have input's dtype {input.dtype} (a float32 input "
        f"takes any), got {scales.dtype}"))
    torch._check_value(-2 <= axis < input.dim(), lambda: (
        f"npu_quantize: with div_mode=False axis must be in [-2, input.dim()={input.dim()}), got {axis}"))
    torch._check_value(input.dim() >= (2 if axis == -2 else 1), lambda: (
        f"npu_quantize: axis=-2 needs an input of at least 2 dims, got {input.dim()}"))
    if qd is INT4:
        torch._check_value(input.shape[-1] % 8 == 0, lambda: (
            f"npu_quantize: with dtype=torch.quint4x2 the last dim of input must be divisible by 8, "
            f"got {input.shape[-1]}"))
    dim = input.dim() - 2 if axis == -2 else input.dim() - 1
    size = input.shape[dim]
    if scales.dim() == 1:
        torch._check_value(sym_or_one(scales.shape[0], size), lambda: (
            f"npu_quantize: 1-D scales must have {size} entries (input's dim {dim}) or 1, got {scales.shape[0]}"))
    else:
        torch._check_value(scales.dim() == input.dim(), lambda: (
            f"npu_quantize: multi-dim scales must have input's rank {input.dim()}, got shape {tuple(scales.shape)}"))
        for d in range(scales.dim()):
            if d == dim:
                torch._check_value(sym_or_one(scales.shape[d], size), lambda: (
                    f"npu_quantize: scales' dim {d} must be {size} or 1, got {scales.shape[d]}"))
            else:
                torch._check_value(scales.shape[d] == 1, lambda: (
                    f"npu_quantize: scales' dim {d} must be 1 (only dim {dim} is element-wise), "
                    f"got shape {tuple(scales.shape)}"))
    if zero_points is not None:
        torch._check_type(zero_points.dtype == scales.dtype, lambda: (
            f"npu_quantize: with div_mode=False zero_points must have scales' dtype {scales.dtype}, "
            f"got {zero_points.dtype}"))
        check_same_shape("npu_quantize", "zero_points", zero_points, "scales", scales)


def sym_or_one(n, size):
    """n == size or n == 1, without guarding on symbolic sizes."""
    return sym_or(n == size, n == 1)


def check_args(input, scales, zero_points, dtype, axis, div_mode) -> QuantDtype:
    check_devices("npu_quantize", "input", input, scales=scales, zero_points=zero_points)
    qd = output_format(dtype, div_mode)
    torch._check_type(input.dtype in INPUT_DTYPES, lambda: (
        f"npu_quantize: input must be float32, float16 or bfloat16, got {input.dtype}"))
    torch._check_value(1 <= input.dim() <= 8, lambda: f"npu_quantize: input must have 1 to 8 dims, got {input.dim()}")
    (_check_div_mode if div_mode else _check_mul_mode)(input, scales, zero_points, qd, axis)
    return qd


@OP.fake
def _(input, scales, zero_points, dtype, axis=1, div_mode=True):
    qd = check_args(input, scales, zero_points, dtype, axis, div_mode)
    return input.new_empty(qd.stored_shape(input.shape), dtype=qd.storage)


def _eager(affine_quant, input, scales, zero_points, dtype, axis=1, div_mode=True):
    """The eager kernel on either path: ``affine_quant`` is the portable or the C one."""
    qd = check_args(input, scales, zero_points, dtype, axis, div_mode)
    y = input.new_empty(qd.stored_shape(input.shape), dtype=qd.storage)
    if y.numel() == 0:  # nothing to write; an empty tensor's data pointer may be NULL, never for C
        return y
    x = input.contiguous()
    zero = None if zero_points is None else zero_points.float().reshape(-1)
    if div_mode:
        # [outer, channels, inner]: channels are columns when inner is 1, else row blocks.
        axis = axis % input.dim()
        channels, inner = input.shape[axis], math.prod(input.shape[axis + 1:])
        # float32 1/scale, as torch.quantize_per_channel; 1-element parameters serve every channel
        inverse = (1.0 / scales.float()).expand(channels).contiguous()
        zero = None if zero is None else zero.expand(channels).contiguous()
        per_row = inner != 1
        rows = math.prod(input.shape[:axis + 1]) if per_row else math.prod(input.shape[:axis])
        cols = inner if per_row else channels
        affine_quant(x.view(rows, cols), inverse if per_row else inverse.view(1, cols), zero,
                     per_row=per_row, period=channels, qd=qd, out=y.view(rows, cols))
        return y
    # div_mode=False: element-wise along the last dim, or the second-to-last (axis=-2).
    per_row = axis == -2
    size = input.shape[-2] if per_row else input.shape[-1]
    scale = scales.float().reshape(-1).expand(size).contiguous()
    zero = None if zero is None else zero.expand(size).contiguous()
    rows, cols = math.prod(input.shape[:-1]), input.shape[-1]
    affine_quant(x.view(rows, cols), scale if per_row else scale.view(1, cols), zero, per_row=per_row,
                 period=size, qd=qd, out=y.view(rows, y.shape[-1]))
    return y


OP.portable(functools.partial(_eager, _numerics.affine_quant))
OP.cpu(functools.partial(_eager, native.affine_quant))


@OP.decompose
def _decomposition(input, scales, zero_points, dtype, axis=1, div_mode=True):
    """The eager kernel's formula over the whole input in torch ops, bit for bit (the same
    float32 steps as ``_numerics.affine_quant``, broadcast instead of row by row), for the
    compiled path to fuse; see ``_registry``. Every mode and format but hifloat8 (290), whose
    encoder is not written for inductor: NotImplemented, so the call stays the eager kernel."""
    qd = check_args(input, scales, zero_points, dtype, axis, div_mode)
    if qd.encoding == "hifloat8":
        return NotImplemented
    if div_mode:
        # the parameters run along axis: [channels] (or [1]) broadcast over the dims after it
        along = (-1,) + (1,) * (input.dim() - 1 - axis % input.dim())
        scale = (1.0 / scales.float()).view(along)
    else:
        along = (-1, 1) if axis == -2 else (-1,)
        scale = scales.float().reshape(along)
    v = input.contiguous().float() * scale
    if zero_points is not None:
        v = v + zero_points.float().reshape(along)
    return _numerics.quantized(v, qd)
