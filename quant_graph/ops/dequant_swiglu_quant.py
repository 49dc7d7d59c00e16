"""npu_dequant_swiglu_quant: dequant + SwiGLU + quant in one pass (GE ``DequantSwigluQuant``).

Rows are x's flattened leading dims (``x [..., 2H]``); per group g (``group_index`` holds row
COUNTS per group here, not ends):
dequant (int32 x) ``v = float(x + int bias) * weight_scale[g] (* activation_scale[row]) (+ float bias)``;
SwiGLU on gate/linear halves of v, chosen by ``swiglu_mode``:
0: A = v[:H], B = v[H:]; ``silu(A) * B`` when activate_left, else ``silu(B) * A``;
1 (GPT-OSS): gate = v[0::2], linear = v[1::2] (activate_left ignored);
2: mode 0's halves with mode 1's arithmetic;
modes 1 and 2: ``gate = min(gate, clamp_limit)``, ``linear = clamp(linear, +-clamp_limit)``,
``out = gate * sigmoid(glu_alpha * gate) * (linear + glu_bias)``;
then quant_mode 1 (dynamic) ``out *= quant_scale[g]`` and symmetric int8 per row, or
quant_mode 0 (static) ``y = round(out / quant_scale + quant_offset)`` with scale 0.

Rows past ``sum(group_index)`` come out as y = 0 and scale = 0. The NPU leaves them as
uninitialised memory (the seed warns of inf/nan there); zeros are a deliberate
improvement, so padding rows never poison what reads them.

The swish is computed as ``a / (1 + exp(-alpha * a))`` in float32 (alpha 1 in mode 0), the
NPU kernel's order of operations. exp is not correctly rounded in any library, so the C
kernel (libm's expf) and the portable path (torch's exp) may differ in the last bit of an
intermediate, and y by 1 where that flips a rounding; everything else is exact.

``activate_dim`` other than the last dim is Ascend950 behaviour (A2/A3 ignore it and split
the last dim, while torch_npu's meta computes the split shapes on every chip): it is
implemented as Ascend950 documents it (static quant with one-element quant_scale, no
group_index), on the portable torch path on every device, so shapes always match the meta.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections import namedtuple

import torch
from torch import Tensor
from torch.fx.experimental.symbolic_shapes import sym_and

from .. import native
from .._checks import check_devices
from .._dtypes import INT8, TORCH_NPU_CODES, DtypeArg, resolve_code
from .._group_index import ends_from_counts, row_groups
from .._numerics import dynamic_params, dynamically_scaled, quantized, row_chunks, row_max_min
from .._registry import define, given_arguments

NAME = "npu_dequant_swiglu_quant"
X_DTYPES = (torch.int32, torch.float16, torch.bfloat16)
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
BIAS_DTYPES = (torch.int32, *FLOAT_DTYPES)
MAX_RANK = 8
GROUPED_MAX_H = 10496
GROUPED_H_ALIGN = 64
# Ascend950's limit on y's last dim when activate_dim is not the last dim.
SPLIT_DIM_MAX_WIDTH = 5120
SWIGLU_MODES = {0: "halves, silu", 1: "interleaved, GPT-OSS clamp/alpha/bias", 2: "halves, GPT-OSS clamp/alpha/bias"}
# torch_npu's round_mode codes; int8 output takes rint only (A2/A3 ignore the argument and round rint)
ROUND_MODES = ("rint", "round", "floor", "ceil", "trunc")
ASCEND950_ONLY_FORMATS = ("float8_e5m2", "float8_e4m3fn", "hifloat8", "float4_e2m1fn_x2", "float4_e1m2fn_x2")
# torch_npu's dtype code of each torch dtype, to pass a torch.dtype where the schema takes an int
_CODE_OF = {v: k for k, v in sorted(TORCH_NPU_CODES.items(), reverse=True) if isinstance(v, torch.dtype)}

OP = define(
    NAME,
    "(Tensor x, *, Tensor? weight_scale=None, Tensor? activation_scale=None, Tensor? bias=None, "
    "Tensor? quant_scale=None, Tensor? quant_offset=None, Tensor? group_index=None, bool activate_left=False, "
    "int quant_mode=0, int? dst_type=None, int? round_mode=None, int? activate_dim=None, int swiglu_mode=0, "
    "float clamp_limit=7.0, float glu_alpha=1.702, float glu_bias=1.0) -> (Tensor, Tensor)",
    ge_types=("DequantSwigluQuant",), module=__name__)

OP.rule_values.update(GROUPED_MAX_H=GROUPED_MAX_H, GROUPED_H_ALIGN=GROUPED_H_ALIGN)

# The SwiGLU step's parameters, as the kernels take them.
Glu = namedtuple("Glu", "mode activate_left clamp_limit alpha bias")


@OP.public_function
def npu_dequant_swiglu_quant(x: Tensor, *, weight_scale: Tensor | None = None, activation_scale: Tensor | None = None,
                             bias: Tensor | None = None, quant_scale: Tensor | None = None,
                             quant_offset: Tensor | None = None, group_index: Tensor | None = None,
                             activate_left: bool = False, quant_mode: int = 0, dst_type: DtypeArg = None,
                             round_mode: int | None = None, activate_dim: int | None = None, swiglu_mode: int = 0,
                             clamp_limit: float | None = None, glu_alpha: float | None = None,
                             glu_bias: float | None = None) -> tuple[Tensor, Tensor]:
    """Dequant + SwiGLU + quant (torch_npu.npu_dequant_swiglu_quant).

    Args:
        x: ``[..., 2H]`` (rank 2 to 8) int32 (dequantized first), float16 or bfloat16.
        weight_scale: float32 ``[G, 2H]`` (``[2H]`` for one row shared by all rows, so with
            group_index only for G = 1);
            required for int32 x, not taken by float x.
        activation_scale: float32 ``x.shape[:-1]`` or ``x.shape[:-1] + (1,)``, per-token
            dequant scale; optional, int32 x only.
        bias: ``[2H]`` or ``[1, 2H]``, int32 x only: int32 is added to x before dequant,
            float32/float16/bfloat16 to the dequantized value; not with group_index.
        quant_scale: float32/float16/bfloat16 ``[G, H]`` (``[H]`` as weight_scale's ``[2H]``):
            multiplied in (dynamic) or divided by (static; required there).
        quant_offset: like quant_scale; static mode without group_index only.
        group_index: int64 or int32 ``[G]`` rows per group (counts), summing to at most the
            row count; dynamic mode only, H <= 10496 and divisible by 64.
        activate_left: swish on the left half (True) or the right half (False); modes 0 and 2.
        quant_mode: 0 static, 1 dynamic.
        dst_type: None or int8 (code 1 or ``torch.int8``); Ascend950's float8/hifloat8/fp4
            outputs are refused.
        round_mode: None or 0 (rint), the only rounding of int8 output.
        activate_dim: the dim split in two (default the last). Another dim is Ascend950
            behaviour: static quant, one-element quant_scale/quant_offset, no group_index.
        swiglu_mode: 0 standard, 1 interleaved GPT-OSS, 2 halves with GPT-OSS arithmetic.
        clamp_limit: modes 1 and 2: the gate's upper bound and the linear part's bound
            (finite, > 0; default 7.0).
        glu_alpha: modes 1 and 2: the swish coefficient, gate * sigmoid(glu_alpha * gate)
            (finite; default 1.702).
        glu_bias: modes 1 and 2: added to the linear part (finite; default 1.0).

    Returns:
        ``(y, scale)``: y int8, x's shape with the split dim halved; scale float32, y's shape
        without the last dim (0 in static mode).
    """
    if isinstance(dst_type, torch.dtype):
        dst_type = _CODE_OF.get(dst_type, dst_type)
    # Only the arguments given are passed on (given_arguments says why).
    # The float defaults are None, not keyword defaults, for the same reason and for Dynamo
    # (dynamic=True), which traces a float keyword default as a symbolic float; reaching a
    # custom op's float argument that makes it trace again with the value fixed, compiling
    # every graph holding the op twice. __signature__ below shows the real defaults.
    kwargs = given_arguments(weight_scale=weight_scale, activation_scale=activation_scale, bias=bias,
                             quant_scale=quant_scale, quant_offset=quant_offset, group_index=group_index,
                             dst_type=dst_type, round_mode=round_mode, activate_dim=activate_dim,
                             clamp_limit=clamp_limit, glu_alpha=glu_alpha, glu_bias=glu_bias)
    for name, value, default in (("activate_left", activate_left, False), ("quant_mode", quant_mode, 0),
                                 ("swiglu_mode", swiglu_mode, 0)):
        if type(value) is not type(default) or value != default:  # a wrong type still meets the parser
            kwargs[name] = value
    return torch.ops.quant_graph.npu_dequant_swiglu_quant(x, **kwargs)


_FLOAT_DEFAULTS = {"clamp_limit": 7.0, "glu_alpha": 1.702, "glu_bias": 1.0}
npu_dequant_swiglu_quant.__signature__ = inspect.signature(npu_dequant_swiglu_quant).replace(parameters=[
    p.replace(default=_FLOAT_DEFAULTS.get(p.name, p.default))
    for p in inspect.signature(npu_dequant_swiglu_quant).parameters.values()])


def _check_rows_of(name, t, width, groups, grouped):
    """t is [groups, width], or [width]: one row shared by all, so with group_index one group
    (op-plugin's own tests pass a 1-D weight_scale with group_index=[T])."""
    if t.dim() == 1:
        torch._check_value(t.shape[0] == width, lambda: f"{NAME}: {name} [{width}] must have {width} entries, "
                                                        f"got {t.shape[0]}")
        if grouped:
            torch._check_value(groups == 1, lambda: (
                f"{NAME}: a 1-D {name} is one row shared by all rows; with group_index it must be [{groups}, "
                f"{width}], got shape {tuple(t.shape)}"))
        return
    shape = f"[{'G' if groups is None else groups}, {width}]"
    torch._check_value(t.dim() == 2, lambda: f"{NAME}: {name} must be {shape}, got shape {tuple(t.shape)}")
    torch._check_value(t.shape[1] == width, lambda: f"{NAME}: {name} must be {shape}, got shape {tuple(t.shape)}")
    if groups is not None:
        torch._check_value(t.shape[0] == groups, lambda: (
            f"{NAME}: {name} must have one row per group ({groups}), got shape {tuple(t.shape)}"))


def _check_dst_type(dst_type):
    resolved = resolve_code(NAME, "dst_type", dst_type)
    if resolved is None or resolved == torch.int8:
        return
    name = resolved if isinstance(resolved, str) else str(resolved).removeprefix("torch.")
    if name in ASCEND950_ONLY_FORMATS:
        raise NotImplementedError(
            f"{NAME}: dst_type {dst_type} ({name}) is an Ascend950-only output; on Atlas A2/A3 the NPU ignores "
            f"dst_type and writes int8 while torch_npu's meta promises {name}, so quant_graph implements int8 only "
            f"(dst_type None or 1)")
    raise ValueError(f"{NAME}: dst_type must be int8 (None or 1), got {dst_type} ({name})")


def _check_round_mode(round_mode):
    if round_mode is None or round_mode == 0:
        return
    if round_mode not in range(len(ROUND_MODES)):
        raise ValueError(f"{NAME}: round_mode must be one of 0-4 ({', '.join(ROUND_MODES)}), got {round_mode}")
    raise ValueError(f"{NAME}: int8 output rounds with rint only (round_mode None or 0), got round_mode "
                     f"{round_mode} ({ROUND_MODES[round_mode]}), which Ascend950 takes for hifloat8 output")


def _check_glu(swiglu_mode, clamp_limit, glu_alpha, glu_bias):
    if swiglu_mode not in SWIGLU_MODES:
        modes = ", ".join(f"{m} ({what})" for m, what in SWIGLU_MODES.items())
        raise ValueError(f"{NAME}: swiglu_mode must be one of {modes}, got {swiglu_mode}")
    if not (math.isfinite(clamp_limit) and clamp_limit > 0):
        raise ValueError(f"{NAME}: clamp_limit must be finite and > 0, got {clamp_limit}")
    for name, value in (("glu_alpha", glu_alpha), ("glu_bias", glu_bias)):
        if not math.isfinite(value):
            raise ValueError(f"{NAME}: {name} must be finite, got {value}")


def split_dim(x, activate_dim):
    """The dim activate_dim names, as a non-negative index (checked)."""
    rank = x.dim()
    dim = -1 if activate_dim is None else activate_dim
    if not -rank <= dim < rank:
        raise ValueError(f"{NAME}: activate_dim must be in [{-rank}, {rank - 1}] for x of rank {rank}, "
                         f"got {activate_dim}")
    return dim % rank


def check_args(x, weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index, quant_mode,
               dst_type, round_mode, activate_dim, swiglu_mode, clamp_limit, glu_alpha, glu_bias):
    """Every rule; returns the split dim (non-negative)."""
    op = NAME
    check_devices(op, "x", x, weight_scale=weight_scale, activation_scale=activation_scale, bias=bias,
                  quant_scale=quant_scale, quant_offset=quant_offset, group_index=group_index)
    torch._check_type(x.dtype in X_DTYPES, lambda: f"{op}: x must be int32, float16 or bfloat16, got {x.dtype}")
    torch._check_value(2 <= x.dim() <= MAX_RANK, lambda: (
        f"{op}: x must have rank 2 to {MAX_RANK} ([..., 2H]), got shape {tuple(x.shape)}"))
    torch._check_value(quant_mode in (0, 1), lambda: f"{op}: quant_mode must be 0 (static) or 1 (dynamic), "
                                                     f"got {quant_mode}")
    _check_dst_type(dst_type)
    _check_round_mode(round_mode)
    _check_glu(swiglu_mode, clamp_limit, glu_alpha, glu_bias)
    dim = split_dim(x, activate_dim)
    last = dim == x.dim() - 1
    split = x.shape[dim]
    torch._check_value(sym_and(split > 0, split % 2 == 0), lambda: (
        f"{op}: x's split dim {dim} (2H, activate_dim) must be even and > 0, got {split}"))
    width = x.shape[-1]
    hidden = width // 2
    if not last:
        torch._check_value(group_index is None, lambda: (
            f"{op}: activate_dim {activate_dim} (not the last dim) takes no group_index"))
        torch._check_value(quant_mode == 0, lambda: (
            f"{op}: activate_dim {activate_dim} (not the last dim) supports only quant_mode=0 (static), "
            f"got {quant_mode}"))
        torch._check_value(width <= SPLIT_DIM_MAX_WIDTH, lambda: (
            f"{op}: with activate_dim {activate_dim} (not the last dim) x's last dim must be <= "
            f"{SPLIT_DIM_MAX_WIDTH}, got {width}"))
    grouped = group_index is not None
    groups = None
    if grouped:
        torch._check_type(group_index.dtype in (torch.int64, torch.int32), lambda: (
            f"{op}: group_index must be int64 or int32 (row counts per group), got {group_index.dtype}"))
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
        torch._check_value(weight_scale is not None, lambda: f"{op}: int32 x needs weight_scale to dequantize")
    else:
        for name, t in (("weight_scale", weight_scale), ("activation_scale", activation_scale), ("bias", bias)):
            torch._check_value(t is None, lambda: f"{op}: {name} applies only to int32 x (dequant), x is {x.dtype}")
    if weight_scale is not None:
        torch._check_type(weight_scale.dtype == torch.float32,
                          lambda: f"{op}: weight_scale must be float32, got {weight_scale.dtype}")
        _check_rows_of("weight_scale", weight_scale, width, groups if grouped else 1, grouped)
    if activation_scale is not None:
        torch._check_type(activation_scale.dtype == torch.float32,
                          lambda: f"{op}: activation_scale must be float32, got {activation_scale.dtype}")
        _check_activation_scale(x, activation_scale)
    if bias is not None:
        torch._check_type(bias.dtype in BIAS_DTYPES, lambda: (
            f"{op}: bias must be int32, float32, float16 or bfloat16, got {bias.dtype}"))
        _check_rows_of("bias", bias, width, 1, False)
    if quant_mode == 0:
        torch._check_value(quant_scale is not None, lambda: f"{op}: quant_mode=0 (static) needs quant_scale")
    for name, t in (("quant_scale", quant_scale), ("quant_offset", quant_offset)):
        if t is not None:
            torch._check_type(t.dtype in FLOAT_DTYPES, lambda: (
                f"{op}: {name} must be float32, float16 or bfloat16, got {t.dtype}"))
            if last:
                _check_rows_of(name, t, hidden, groups if grouped else 1, grouped)
            else:
                torch._check_value(t.dim() == 1 and t.shape[0] == 1, lambda: (
                    f"{op}: with activate_dim {activate_dim} (not the last dim) {name} must be [1], "
                    f"got shape {tuple(t.shape)}"))
    if quant_offset is not None:
        torch._check_value(quant_mode == 0, lambda: f"{op}: quant_offset applies only to quant_mode=0 (static)")
    return dim


def _check_activation_scale(x, activation_scale):
    rows = x.shape[:-1]

    def message():
        return (f"{NAME}: activation_scale must be x.shape[:-1] {tuple(rows)} (T={math.prod(rows)} tokens) or "
                f"that with a trailing 1, got {tuple(activation_scale.shape)}")

    shape = activation_scale.shape
    if activation_scale.dim() == len(rows) + 1:
        torch._check_value(shape[-1] == 1, message)
        shape = shape[:-1]
    torch._check_value(len(shape) == len(rows), message)
    for a, b in zip(shape, rows, strict=True):
        torch._check_value(a == b, message)


def _output_shapes(x, dim):
    """torch_npu's meta: y is x with the split dim halved; scale is y without its last dim."""
    y = [s // 2 if i == dim else s for i, s in enumerate(x.shape)]
    return y, y[:-1]


def _empty_outputs(x, dim):
    y_shape, scale_shape = _output_shapes(x, dim)
    return x.new_empty(y_shape, dtype=INT8.storage), x.new_empty(scale_shape, dtype=torch.float32)


@OP.fake
def _(x, *, weight_scale=None, activation_scale=None, bias=None, quant_scale=None, quant_offset=None,
      group_index=None, activate_left=False, quant_mode=0, dst_type=None, round_mode=None, activate_dim=None,
      swiglu_mode=0, clamp_limit=7.0, glu_alpha=1.702, glu_bias=1.0):
    dim = check_args(x, weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index, quant_mode,
                     dst_type, round_mode, activate_dim, swiglu_mode, clamp_limit, glu_alpha, glu_bias)
    return _empty_outputs(x, dim)


def _table(t, width):
    """A parameter as float32 rows of ``width`` and its row stride (0: one row shared)."""
    if t is None:
        return None, 0
    rows = t.float().reshape(-1, width).contiguous()
    return rows, 0 if rows.shape[0] == 1 else width


def _dequantized(x, int_bias, weights, act, float_bias):
    """float32 x: + int bias (exact, in int64), * weight_scale, * activation_scale, + float bias."""
    v = (x.long() + int_bias.long()).float() if int_bias is not None else x.float()
    if weights is not None:
        v = v * weights
    if act is not None:
        v = v * act
    if float_bias is not None:
        v = v + float_bias
    return v


def _swiglu(v, dim, glu):
    """SwiGLU of v along dim (halved), in the kernels' float32 operation order."""
    half = v.shape[dim] // 2
    if glu.mode == 1:
        pairs = v.unflatten(dim, (half, 2))
        gate, linear = pairs.select(dim + 1, 0), pairs.select(dim + 1, 1)
    else:
        a, b = v.narrow(dim, 0, half), v.narrow(dim, half, half)
        gate, linear = (a, b) if glu.activate_left else (b, a)
    if glu.mode == 0:
        return gate / (1 + torch.exp(-gate)) * linear
    gate = gate.clamp(max=glu.clamp_limit)
    linear = linear.clamp(-glu.clamp_limit, glu.clamp_limit)
    return gate / (1 + torch.exp(gate * -glu.alpha)) * (linear + glu.bias)


def _portable(*, x, int_bias, float_bias, weights, weight_stride, act, quants, quant_stride, offsets, ends, glu,
              dynamic, y, scale):
    tokens, hidden = y.shape
    valid = min(int(ends[-1]), tokens)
    row_group = row_groups(ends, valid)

    def row_of(table, stride, chunk):
        return table[0] if stride == 0 else table[row_group[chunk]]

    for chunk in row_chunks(valid, 2 * hidden):
        v = _dequantized(x[chunk], int_bias, None if weights is None else row_of(weights, weight_stride, chunk),
                         None if act is None else act[chunk].unsqueeze(-1), float_bias)
        out = _swiglu(v, 1, glu)
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


def _native(*, x, int_bias, float_bias, weights, weight_stride, act, quants, quant_stride, offsets, ends, glu,
            dynamic, y, scale):
    native.DEQUANT_SWIGLU_QUANT(
        x=x, x_dtype=native.IN_DTYPE[x.dtype], rows=x.shape[0], h=y.shape[1], bias=int_bias, weight_scale=weights,
        weight_stride=weight_stride, activation_scale=act, float_bias=float_bias, quant_scale=quants,
        quant_stride=quant_stride, quant_offset=offsets, group_ends=ends, groups=ends.numel(),
        activate_left=glu.activate_left, swiglu_mode=glu.mode, clamp_limit=glu.clamp_limit, glu_alpha=glu.alpha,
        glu_bias=glu.bias, dynamic=dynamic, **native.format_args(INT8), dst_max=INT8.hi, dst_span=INT8.span, y=y,
        scale=scale)


def _split_dim_static(x, dim, *, int_bias, float_bias, weights, act, quant_scale, quant_offset, glu, y):
    """Static quant with the split along a dim other than the last (Ascend950's activate_dim):
    x viewed as [P, n, R, W] (n the split dim, W the last), elementwise once dequantized."""
    shape = x.shape
    outer, n, width = math.prod(shape[:dim]), shape[dim], shape[-1]
    inner = math.prod(shape[dim + 1:-1])
    x4 = x.reshape(outer, n, inner, width)
    act4 = None if act is None else act.reshape(outer, n, inner, 1)
    y4 = y.view(outer, n // 2, inner, width)
    qs = quant_scale.float().reshape(())
    qo = None if quant_offset is None else quant_offset.float().reshape(())
    for chunk in row_chunks(outer, n * inner * width):
        v = _dequantized(x4[chunk], int_bias, weights, None if act4 is None else act4[chunk], float_bias)
        v = _swiglu(v, 1, glu) / qs
        if qo is not None:
            v = v + qo
        y4[chunk] = quantized(v, INT8)


def _eager(compute, x, *, weight_scale=None, activation_scale=None, bias=None, quant_scale=None, quant_offset=None,
           group_index=None, activate_left=False, quant_mode=0, dst_type=None, round_mode=None, activate_dim=None,
           swiglu_mode=0, clamp_limit=7.0, glu_alpha=1.702, glu_bias=1.0):
    """The eager kernel on either path: ``compute`` is ``_portable`` or ``_native``."""
    dim = check_args(x, weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index, quant_mode,
                     dst_type, round_mode, activate_dim, swiglu_mode, clamp_limit, glu_alpha, glu_bias)
    width = x.shape[-1]
    x2d = x.reshape(-1, width).contiguous()
    tokens = x2d.shape[0]
    glu = Glu(swiglu_mode, activate_left, clamp_limit, glu_alpha, glu_bias)
    int_bias = None if bias is None or bias.dtype != torch.int32 else bias.reshape(width).contiguous()
    float_bias = None if bias is None or bias.dtype == torch.int32 else bias.float().reshape(width).contiguous()
    act = None if activation_scale is None else activation_scale.reshape(tokens).contiguous()
    weights, weight_stride = _table(weight_scale, width)
    y, scale = _empty_outputs(x, dim)
    if dim != x.dim() - 1:
        # Ascend950-only and elementwise: the portable code serves every path.
        _split_dim_static(x.contiguous(), dim, int_bias=int_bias, float_bias=float_bias,
                          weights=None if weights is None else weights[0], act=act, quant_scale=quant_scale,
                          quant_offset=quant_offset, glu=glu, y=y)
        scale.zero_()
        return y, scale
    if group_index is None:
        ends = torch.tensor([tokens], dtype=torch.int64, device=x.device)
    else:
        ends = ends_from_counts(NAME, group_index, tokens)
    quants, quant_stride = _table(quant_scale, width // 2)
    offsets, _ = _table(quant_offset, width // 2)
    compute(x=x2d, int_bias=int_bias, float_bias=float_bias, weights=weights, weight_stride=weight_stride, act=act,
            quants=quants, quant_stride=quant_stride, offsets=offsets, ends=ends, glu=glu, dynamic=quant_mode == 1,
            y=y.view(tokens, width // 2), scale=scale.view(tokens))
    return y, scale


OP.portable(functools.partial(_eager, _portable))
OP.cpu(functools.partial(_eager, _native))
