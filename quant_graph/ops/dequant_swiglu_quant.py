"""npu_dequant_swiglu_quant: dequant + SwiGLU + quant in one pass (GE ``DequantSwigluQuant``).

Per group g (``group_index`` holds row COUNTS per group here, not ends):
dequant (int32 x) ``x = float(x + bias) * weight_scale[g] * activation_scale[row]``;
SwiGLU on the halves A = x[:, :H], B = x[:, H:]: ``silu(A) * B`` when activate_left, else
``silu(B) * A``; then quant_mode 1 (dynamic) ``out *= quant_scale[g]`` and symmetric int8 per
row, or quant_mode 0 (static) ``y = round(out / quant_scale + quant_offset)`` with scale 0.

Rows past ``sum(group_index)`` come out as y = 0 and scale = 0. The NPU leaves them as
uninitialised memory (the seed warns of inf/nan there); zeros are a deliberate
improvement, so padding rows never poison what reads them.

``silu(v) = v / (1 + exp(-v))``. exp is not correctly rounded in any library, so the C
kernel (libm's expf) and the portable path (torch's exp) may differ in the last bit of an
intermediate, and y by 1 where that flips a rounding; everything else is exact.
"""

from __future__ import annotations

import torch
from torch.fx.experimental.symbolic_shapes import sym_and

from .. import native
from .._checks import check_devices
from .._dtypes import INT8
from .._group_index import ends_from_counts, row_groups
from .._numerics import dynamic_params, dynamically_scaled, quantized, row_chunks, row_max_min
from .._registry import define

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
GROUPED_MAX_H = 10496
GROUPED_H_ALIGN = 64

OP = define(
    "npu_dequant_swiglu_quant",
    "(Tensor x, *, Tensor? weight_scale=None, Tensor? activation_scale=None, "
    "Tensor? bias=None, Tensor? quant_scale=None, Tensor? quant_offset=None, Tensor? group_index=None, "
    "bool activate_left=False, int quant_mode=0) -> (Tensor, Tensor)",
    ge_types=("DequantSwigluQuant",), module=__name__)


@OP.public_function
def npu_dequant_swiglu_quant(x, *, weight_scale=None, activation_scale=None, bias=None, quant_scale=None,
                             quant_offset=None, group_index=None, activate_left=False, quant_mode=0):
    """Dequant + SwiGLU + quant (torch_npu.npu_dequant_swiglu_quant).

    Args:
        x: ``[T, 2H]`` int32 (dequantized first) or bfloat16.
        weight_scale: float32 ``[G, 2H]`` (``[2H]`` or ``[1, 2H]`` without group_index);
            required for int32 x.
        activation_scale: float32 ``[T]`` or ``[T, 1]``; required for int32 x.
        bias: int32 ``[2H]`` or ``[1, 2H]``, added to int32 x; not with group_index.
        quant_scale: float32/float16/bfloat16 ``[G, H]`` (``[H]`` or ``[1, H]`` ungrouped):
            multiplied in (dynamic) or divided by (static; required there).
        quant_offset: like quant_scale; static mode without group_index only.
        group_index: int64 ``[G]`` rows per group (counts), summing to at most T;
            dynamic mode only, H <= 10496 and divisible by 64.
        activate_left: SiLU on the left half (True) or the right half (False).
        quant_mode: 0 static, 1 dynamic.

    Returns:
        ``(y, scale)``: y int8 ``[T, H]``, scale float32 ``[T]`` (0 in static mode).
    """
    return torch.ops.quant_graph.npu_dequant_swiglu_quant(
        x, weight_scale=weight_scale, activation_scale=activation_scale, bias=bias, quant_scale=quant_scale,
        quant_offset=quant_offset, group_index=group_index, activate_left=activate_left, quant_mode=quant_mode)


def _check_rows_of(name, t, width, groups, lead_optional):
    """t is [groups, width], or [width] when lead_optional (ungrouped, one shared row)."""
    op = "npu_dequant_swiglu_quant"
    if lead_optional and t.dim() == 1:
        torch._check_value(t.shape[0] == width, lambda: f"{op}: {name} [{width}] must have {width} entries, "
                                                        f"got {t.shape[0]}")
        return
    shape = f"[{'G' if groups is None else groups}, {width}]"
    torch._check_value(t.dim() == 2, lambda: f"{op}: {name} must be {shape}, got shape {tuple(t.shape)}")
    torch._check_value(t.shape[1] == width, lambda: f"{op}: {name} must be {shape}, got shape {tuple(t.shape)}")
    if groups is not None:
        torch._check_value(t.shape[0] == groups, lambda: (
            f"{op}: {name} must have one row per group ({groups}), got shape {tuple(t.shape)}"))


def check_args(x, weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index, quant_mode):
    op = "npu_dequant_swiglu_quant"
    check_devices(op, "x", x, weight_scale=weight_scale, activation_scale=activation_scale, bias=bias,
                  quant_scale=quant_scale, quant_offset=quant_offset, group_index=group_index)
    torch._check_type(x.dtype in (torch.int32, torch.bfloat16),
                      lambda: f"{op}: x must be int32 or bfloat16, got {x.dtype}")
    torch._check_value(x.dim() == 2, lambda: f"{op}: x must be 2-D [T, 2H], got shape {tuple(x.shape)}")
    tokens, width = x.shape
    torch._check_value(sym_and(width > 0, width % 2 == 0), lambda: (
        f"{op}: x's last dim 2H must be even and > 0, got {width}"))
    hidden = width // 2
    torch._check_value(quant_mode in (0, 1), lambda: f"{op}: quant_mode must be 0 (static) or 1 (dynamic), "
                                                     f"got {quant_mode}")
    grouped = group_index is not None
    groups = None
    if grouped:
        torch._check_type(group_index.dtype == torch.int64, lambda: (
            f"{op}: group_index must be int64 (row counts per group), got {group_index.dtype}"))
        torch._check_value(group_index.dim() == 1, lambda: (
            f"{op}: group_index must be 1-D [G], got shape {tuple(group_index.shape)}"))
        groups = group_index.shape[0]
        torch._check_value(groups > 0, lambda: f"{op}: group_index must have at least one group")
        torch._check_value(quant_mode == 1, lambda: f"{op}: group_index supports only quant_mode=1 (dynamic), "
                                                    f"got {quant_mode}")
        torch._check_value(bias is None, lambda: f"{op}: bias is not supported with group_index")
        torch._check_value(quant_offset is None, lambda: f"{op}: quant_offset is not supported with group_index")
        torch._check_value(hidden <= GROUPED_MAX_H, lambda: (
            f"{op}: with group_index H (half of x's last dim) must be <= {GROUPED_MAX_H}, got {hidden}"))
        torch._check_value(hidden % GROUPED_H_ALIGN == 0, lambda: (
            f"{op}: with group_index H (half of x's last dim) must be divisible by {GROUPED_H_ALIGN}, got {hidden}"))
    if x.dtype == torch.int32:
        torch._check_value(weight_scale is not None and activation_scale is not None, lambda: (
            f"{op}: int32 x needs weight_scale and activation_scale to dequantize"))
    else:
        for name, t in (("weight_scale", weight_scale), ("activation_scale", activation_scale), ("bias", bias)):
            torch._check_value(t is None, lambda: f"{op}: {name} applies only to int32 x (dequant), x is {x.dtype}")
    if weight_scale is not None:
        torch._check_type(weight_scale.dtype == torch.float32,
                          lambda: f"{op}: weight_scale must be float32, got {weight_scale.dtype}")
        _check_rows_of("weight_scale", weight_scale, width, groups if grouped else 1, not grouped)
    if activation_scale is not None:
        torch._check_type(activation_scale.dtype == torch.float32,
                          lambda: f"{op}: activation_scale must be float32, got {activation_scale.dtype}")
        def bad_activation_scale():
            return f"{op}: activation_scale must be [T] or [T, 1] with T={tokens}, got {tuple(activation_scale.shape)}"

        torch._check_value(activation_scale.dim() in (1, 2), bad_activation_scale)
        torch._check_value(activation_scale.shape[0] == tokens, bad_activation_scale)
        if activation_scale.dim() == 2:
            torch._check_value(activation_scale.shape[1] == 1, bad_activation_scale)
    if bias is not None:
        torch._check_type(bias.dtype == torch.int32, lambda: f"{op}: bias must be int32, got {bias.dtype}")
        _check_rows_of("bias", bias, width, 1, True)
    if quant_mode == 0:
        torch._check_value(quant_scale is not None, lambda: f"{op}: quant_mode=0 (static) needs quant_scale")
    for name, t in (("quant_scale", quant_scale), ("quant_offset", quant_offset)):
        if t is not None:
            torch._check_type(t.dtype in FLOAT_DTYPES, lambda: (
                f"{op}: {name} must be float32, float16 or bfloat16, got {t.dtype}"))
            _check_rows_of(name, t, hidden, groups if grouped else 1, not grouped)
    if quant_offset is not None:
        torch._check_value(quant_mode == 0, lambda: f"{op}: quant_offset applies only to quant_mode=0 (static)")


def _empty_outputs(x):
    return (x.new_empty((x.shape[0], x.shape[1] // 2), dtype=INT8.storage),
            x.new_empty((x.shape[0],), dtype=torch.float32))


@OP.fake
def _(x, *, weight_scale=None, activation_scale=None, bias=None, quant_scale=None, quant_offset=None,
      group_index=None, activate_left=False, quant_mode=0):
    check_args(x, weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index, quant_mode)
    return _empty_outputs(x)


def _table(t, width):
    """A parameter as float32 rows of ``width`` and its row stride (0: one row shared)."""
    if t is None:
        return None, 0
    rows = t.float().reshape(-1, width).contiguous()
    return rows, 0 if rows.shape[0] == 1 else width


def _portable(x, bias, weights, weight_stride, act, quants, quant_stride, offsets, ends, activate_left, dynamic,
              y, scale):
    tokens, hidden = y.shape
    valid = min(int(ends[-1]), tokens)
    row_group = row_groups(ends, tokens)

    def row_of(table, stride, chunk):
        return table[0] if stride == 0 else table[row_group[chunk]]

    for chunk in row_chunks(valid, 2 * hidden):
        xf = (x[chunk].long() + bias.long()).float() if bias is not None else x[chunk].float()
        if weights is not None:
            xf = xf * row_of(weights, weight_stride, chunk) * act[chunk].unsqueeze(-1)
        gate, up = (xf[:, :hidden], xf[:, hidden:]) if activate_left else (xf[:, hidden:], xf[:, :hidden])
        out = gate / (1 + torch.exp(-gate)) * up
        if dynamic:
            if quants is not None:
                out = out * row_of(quants, quant_stride, chunk)
            s, _ = dynamic_params(*row_max_min(out), symmetric=True, qd=INT8)
            v = dynamically_scaled(out, s)
            scale[chunk] = s
        else:
            v = out / row_of(quants, quant_stride, chunk)
            if offsets is not None:
                v = v + row_of(offsets, quant_stride, chunk)
            scale[chunk] = 0.0
        y[chunk] = quantized(v, INT8)
    y[valid:] = 0
    scale[valid:] = 0.0


def _native(x, bias, weights, weight_stride, act, quants, quant_stride, offsets, ends, activate_left, dynamic,
            y, scale):
    native.DEQUANT_SWIGLU_QUANT(
        x=x, x_dtype=native.IN_DTYPE[x.dtype], rows=x.shape[0], h=y.shape[1], bias=bias, weight_scale=weights,
        weight_stride=weight_stride, activation_scale=act, quant_scale=quants, quant_stride=quant_stride,
        quant_offset=offsets, group_ends=ends, groups=ends.numel(), activate_left=activate_left, dynamic=dynamic,
        **native.format_args(INT8), dst_max=INT8.hi, dst_span=INT8.span, y=y, scale=scale)


def _eager(compute, x, weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index, activate_left,
           quant_mode):
    check_args(x, weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index, quant_mode)
    tokens, width = x.shape
    hidden = width // 2
    if group_index is None:
        ends = torch.tensor([tokens], dtype=torch.int64, device=x.device)
    else:
        ends = ends_from_counts("npu_dequant_swiglu_quant", group_index, tokens)
    y, scale = _empty_outputs(x)
    weights, weight_stride = _table(weight_scale, width)
    quants, quant_stride = _table(quant_scale, hidden)
    offsets, _ = _table(quant_offset, hidden)
    bias_row = None if bias is None else bias.reshape(width).contiguous()
    act = None if activation_scale is None else activation_scale.reshape(tokens).contiguous()
    compute(x.contiguous(), bias_row, weights, weight_stride, act, quants, quant_stride, offsets, ends, activate_left,
            quant_mode == 1, y, scale)
    return y, scale


@OP.portable
def _(x, *, weight_scale=None, activation_scale=None, bias=None, quant_scale=None, quant_offset=None,
      group_index=None, activate_left=False, quant_mode=0):
    return _eager(_portable, x, weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index,
                  activate_left, quant_mode)


@OP.cpu
def _(x, *, weight_scale=None, activation_scale=None, bias=None, quant_scale=None, quant_offset=None,
      group_index=None, activate_left=False, quant_mode=0):
    return _eager(_native, x, weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index,
                  activate_left, quant_mode)
