"""The sample registry (OpInfo style): for every op in ``torch.ops.quant_graph``, valid
samples across its modes and invalid samples, each breaking one rule.

A valid ``Sample`` holds the call's args and kwargs and, for hand-computed cases, the
exact expected output. Every valid sample is also held bit for bit against
``reference.py`` on both kernel paths, run through opcheck, and through the fake kernel
against the output formula in ``OpInfo.output_meta``.

An ``Invalid`` sample names the exception type and the words its message must hold
(besides the op's name, which every message holds); ``eager_only`` marks the rules that
read tensor values (group_index contents), which no fake kernel can check.

The existing per-rule validation lists (test_dynamic_quant_validation.py,
test_validation_static_ops.py) are taken in here as they stand, so this module is the one
place that knows every bad input the suite declares (test_validation_coverage.py needs that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import test_dynamic_quant_validation as dq_validation
import test_parity_dequant_swiglu_quant as dsq_parity
import test_parity_dynamic_quant_validation as dq_parity
import test_parity_quantize as quantize_parity
import test_validation_static_ops as static_validation
import torch
from reference import (
    dequant_swiglu_quant_reference,
    dynamic_quant_reference,
    group_quant_reference,
    quantize_mul_reference,
    quantize_per_channel_oracle,
)

import quant_graph as qg
from quant_graph import _numerics


@dataclass
class Sample:
    name: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    expected: object = None  # the exact output, where computed by hand


@dataclass
class Invalid:
    name: str
    args: tuple
    kwargs: dict
    error: type
    words: tuple  # the message holds each (and the op's name)
    eager_only: bool = False  # a rule on tensor values: eager only
    # a rule of the public function, on a value torch's dispatcher would refuse or convert
    # before any kernel ran (None for a required int, a dtype without a code)
    public_only: bool = False


@dataclass
class OpInfo:
    name: str
    reference: object  # (args, kwargs, exp) -> the exact outputs
    output_meta: object  # (args, kwargs) -> [(shape, dtype)] of the outputs, from the formula
    samples: list
    invalid: list

    @property
    def op(self):
        return getattr(torch.ops.quant_graph, self.name)

    @property
    def public(self):
        return getattr(qg, self.name)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def int4_words(*rows):
    """Rows of int4 values as the int32 words they pack to (element 8k+j in bits [4j, 4j+4)),
    written out here with Python ints."""
    out = []
    for row in rows:
        words = []
        for k in range(len(row) // 8):
            word = sum((v & 0xF) << (4 * j) for j, v in enumerate(row[8 * k:8 * k + 8]))
            words.append(word - (1 << 32) if word >= 1 << 31 else word)
        out.append(words)
    return torch.tensor(out, dtype=torch.int32)


TIES = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5]
TIES_ROUNDED = [0, 2, 2, 0, -2, -2]  # half to even
# x must exceed one chunk of the portable path (and span both threads' rows in C)
BIG_ROWS = _numerics.CHUNK_ELEMENTS // 1024 + 16


def big_pertensor_x(seed, dtype=torch.float16):
    """More than CHUNK_ELEMENTS elements, the tensor's max and min in the last rows only."""
    x = (torch.rand(BIG_ROWS, 1024, generator=gen(seed)) * 2 - 1).to(dtype)
    x[-1, 5], x[-3, 700] = 100.0, -60.0
    return x


# --- npu_dynamic_quant(_asymmetric) ------------------------------------------------------

def _dq_moe(shape, experts, dtype, g):
    rows = math.prod(shape[:-1])
    cuts = torch.randint(0, rows + 1, (experts - 1,), generator=g).sort().values
    ends = torch.cat([cuts, torch.tensor([rows])]).to(torch.int32)
    return {"smooth_scales": (torch.rand(experts, shape[-1], generator=g) + 0.5).to(dtype), "group_index": ends}


def _dq_random(symmetric):
    samples = []
    dsts = [None, torch.int8, torch.quint4x2] + ([torch.float8_e4m3fn, torch.float8_e5m2] if symmetric else [])
    for i, dst in enumerate(dsts):
        for mode in ("pertoken", "pertensor"):
            for smooth in ("none", "vector", "moe") if mode == "pertoken" else ("none", "vector"):
                g = gen(100 + 10 * i + len(samples))
                dtype = torch.bfloat16 if len(samples) % 2 else torch.float16
                shape = (4, 6, 64) if smooth != "moe" else (37, 64)
                x = (torch.randn(shape, generator=g) * 3).to(dtype)
                kwargs = {"dst_type": dst, "quant_mode": mode}
                if smooth == "vector":
                    kwargs["smooth_scales"] = (torch.rand(64, generator=g) + 0.5).to(dtype)
                if smooth == "moe":
                    kwargs.update(_dq_moe(shape, 3, dtype, g))
                samples.append(Sample(f"random {dst} {mode} {smooth}", (x,), kwargs))
    return samples


def _dq_samples(symmetric):
    h = torch.float16
    if symmetric:
        int8_row, int8_y = [127.0, *TIES, -127.0], [127, *TIES_ROUNDED, -127]
        int4_row, int4_y = [7.0, -7.0, *TIES], [7, -7, *TIES_ROUNDED]
        pt_x, pt_y = [[-127.0, 0.5, 1.5, 2.5], [127.0, -0.5, -1.5, -2.5]], [[-127, 0, 2, 2], [127, 0, -2, -2]]
    else:  # min -> DST_MIN, max -> DST_MAX: scale 1, offset 0
        int8_row, int8_y = [-128.0, 127.0, *TIES], [-128, 127, *TIES_ROUNDED]
        int4_row, int4_y = [-8.0, 7.0, *TIES], [-8, 7, *TIES_ROUNDED]
        pt_x, pt_y = [[-128.0, 0.5, 1.5, 2.5], [127.0, -0.5, -1.5, -2.5]], [[-128, 0, 2, 2], [127, 0, -2, -2]]

    def outs(y, scale, offset):
        return (y, scale) if symmetric else (y, scale, offset)

    one, zero = torch.tensor([1.0]), torch.tensor([0.0])
    samples = [
        Sample("int8 ends and ties", (torch.tensor([int8_row], dtype=h),), {},
               outs(torch.tensor([int8_y], dtype=torch.int8), one, zero)),
        Sample("int4 ends and ties", (torch.tensor([int4_row], dtype=torch.bfloat16),), {"dst_type": torch.quint4x2},
               outs(int4_words(int4_y), one, zero)),
        Sample("pertensor ends and ties", (torch.tensor(pt_x, dtype=h),), {"quant_mode": "pertensor"},
               outs(torch.tensor(pt_y, dtype=torch.int8), one, zero)),
        Sample("pertensor int4 ends", (torch.tensor([int4_row[:2] + [0.0] * 6, [0.5] * 8], dtype=h),),
               {"quant_mode": "pertensor", "dst_type": torch.quint4x2},
               outs(int4_words(int4_y[:2] + [0] * 6, [0] * 8), one, zero)),
        Sample("pertensor past one chunk", (big_pertensor_x(1),), {"quant_mode": "pertensor"}),
        Sample("pertensor past one chunk, int4 smooth", (big_pertensor_x(2, torch.bfloat16),),
               {"quant_mode": "pertensor", "dst_type": torch.quint4x2,
                "smooth_scales": (torch.rand(1024, generator=gen(3)) + 0.5).bfloat16()}),
        Sample("nan and inf rows", (torch.tensor([[1.0, float("nan"), -1.0, 2.0], [float("inf"), 1.0, -3.0, 0.0],
                                                  [1.0, 2.0, -float("inf"), 0.5], [0.0] * 4], dtype=h),)),
        Sample("zero tokens", (torch.empty(0, 3, 16, dtype=h),), {"dst_type": torch.quint4x2}),
        Sample("zero tokens pertensor", (torch.empty(0, 16, dtype=h),), {"quant_mode": "pertensor"}),
        # empty rows count as zeros (docs/numerics.md); y's NULL data pointer never reaches C (fuzzing found it)
        Sample("zero width", (torch.empty(3, 0, dtype=h),), {},
               outs(torch.empty(3, 0, dtype=torch.int8), torch.zeros(3), torch.full((3,), math.nan))),
        Sample("zero width int4", (torch.empty(2, 3, 0, dtype=torch.bfloat16),), {"dst_type": torch.quint4x2},
               outs(torch.empty(2, 3, 0, dtype=torch.int32), torch.zeros(2, 3), torch.full((2, 3), math.nan))),
        Sample("moe with empty groups", (torch.randn(6, 16, generator=gen(4)).half(),),
               {"smooth_scales": torch.rand(4, 16, generator=gen(5)).half() + 0.5,
                "group_index": torch.tensor([0, 2, 2, 6], dtype=torch.int32)}),
    ]
    return samples + _dq_random(symmetric)


def _dq_reference(symmetric):
    def reference(args, kwargs, exp):
        return dynamic_quant_reference(*args, symmetric=symmetric, **kwargs)

    return reference


def _dq_meta(symmetric):
    def meta(args, kwargs):
        (x,) = args
        dst = kwargs.get("dst_type") or torch.int8
        if dst == torch.quint4x2:
            y = ((*x.shape[:-1], x.shape[-1] // 8), torch.int32)
        else:
            y = (tuple(x.shape), dst)
        scale = ((1,) if kwargs.get("quant_mode") == "pertensor" else tuple(x.shape[:-1]), torch.float32)
        return [y, scale] if symmetric else [y, scale, scale]

    return meta


# DynamicQuantV2's rules on group_index values; checked in eager mode only
DQ_EAGER_ONLY = {"group_index decreasing", "group_index decreasing later", "group_index negative", "group_index end",
                 "group_index one expert's end"}


def _dq_invalid(symmetric):
    cases = [Invalid(name, args, kwargs, error, tuple(words), name in DQ_EAGER_ONLY)
             for name, args, kwargs, error, words in dq_validation.CASES]
    # torch_npu 2.13/2.14's schema (int codes, dst_type_max, perchannel) and CANN's checks;
    # a TypeError there is the public function's (the dispatcher would refuse the value)
    cases += [Invalid(name, (dq_parity.X,), kwargs, error, (argument, value), public_only=error is TypeError)
              for name, kwargs, error, argument, value in dq_parity.CASES]
    x = dq_parity.X
    cases += [
        Invalid("input twice", (x,), {"x": x}, TypeError, ("exactly once", "got both"), public_only=True),
        Invalid("no input", (), {}, TypeError, ("exactly once", "got neither"), public_only=True),
        Invalid("dst_type a string", (x,), {"dst_type": "int8"}, TypeError, ("dst_type must be None, a torch.dtype",
                                                                              "'int8'"), public_only=True),
    ]
    return cases


# --- npu_quantize ------------------------------------------------------------------------

def _quantize_samples():
    f = torch.float32
    samples = [
        Sample("div qint8 ends and ties", (torch.tensor([[*TIES, 1e9, -1e9]]), torch.ones(8), None, torch.qint8, -1),
               {}, torch.tensor([[*TIES_ROUNDED, 127, -128]], dtype=torch.int8)),
        Sample("div quint8 ends and ties", (torch.tensor([[0.5, 1.5, 2.5, 254.5, 255.5, -3.0, 1e9, 3.5]]),
                                            torch.ones(8), None, torch.quint8, 1, True), {},
               torch.tensor([[0, 2, 2, 254, 255, 0, 255, 4]], dtype=torch.uint8)),
        Sample("div qint32 ends and ties", (torch.tensor([[*TIES, 1e10, -1e10]]), torch.ones(8), None,
                                            torch.qint32, -1, True), {},
               torch.tensor([[*TIES_ROUNDED, 2**31 - 1, -(2**31)]], dtype=torch.int32)),
        Sample("div zero point before rounding", (torch.tensor([[0.5, 0.5, 1.5, -0.5]]), torch.ones(4),
                                                  torch.tensor([1, -1, 0, 3], dtype=torch.int32), torch.qint8, -1),
               {}, torch.tensor([[2, 0, 2, 2]], dtype=torch.int8)),
        Sample("div per-row channels ends", (torch.tensor([[0.5, 300.0], [-300.0, 2.5]]), torch.tensor([1.0, 0.5]),
                                             None, torch.qint8, 0, True), {},
               torch.tensor([[0, 127], [-128, 5]], dtype=torch.int8)),
        Sample("mul qint8 ends and ties", (torch.tensor([[*TIES, 300.0, -300.0]]), torch.ones(1), None,
                                           torch.qint8, -1, False), {},
               torch.tensor([[*TIES_ROUNDED, 127, -128]], dtype=torch.int8)),
        Sample("mul int4 ends and ties", (torch.tensor([[*TIES, 30.0, -30.0]]), torch.ones(8), None,
                                          torch.quint4x2, -1, False), {}, int4_words([*TIES_ROUNDED, 7, -8])),
        Sample("mul zero points ties", (torch.tensor([[0.5, 2.5, 4.5, -1.5, -3.5]]), torch.full((5,), 0.5),
                                        torch.full((5,), 0.25), torch.qint8, -1, False), {},
               torch.tensor([[0, 2, 2, 0, -2]], dtype=torch.int8)),
        Sample("mul axis -2 ends", (torch.tensor([[0.5, 1.5], [100.0, -100.0]]), torch.tensor([1.0, 2.0]), None,
                                    torch.qint8, -2, False), {}, torch.tensor([[0, 2], [127, -128]], dtype=torch.int8)),
        Sample("div empty", (torch.empty(0, 4), torch.ones(4), None, torch.quint8, -1, True)),
        # an empty x never reaches C, whose row loads got its NULL data pointer (fuzzing found it)
        Sample("div per-row channels zero width", (torch.empty(2, 0), torch.ones(2), None, torch.qint8, 0, True), {},
               torch.empty(2, 0, dtype=torch.int8)),
        Sample("mul int4 empty", (torch.empty(0, 16), torch.ones(16), None, torch.quint4x2, -1, False)),
    ]
    g = gen(20)
    zp_dtype = {torch.qint8: torch.int8, torch.quint8: torch.uint8, torch.qint32: torch.int32}
    for dtype in (torch.qint8, torch.quint8, torch.qint32):
        for shape, axis in (((6, 10), 1), ((6, 10), 0), ((3, 4, 5), -1), ((2, 3, 4, 5), 2)):
            x = torch.randn(shape, generator=g) * 20
            c = shape[axis]
            scales = torch.rand(c, generator=g) * 0.5 + 0.01
            zp = (torch.randint(0, 20, (c,), generator=g)).to(zp_dtype[dtype]) if axis != 1 else None
            samples.append(Sample(f"random div {dtype} {shape} axis {axis}", (x, scales, zp, dtype, axis, True)))
    samples.append(Sample("random div bfloat16 params", ((torch.randn(5, 8, generator=g) * 10).bfloat16(),
                                                         (torch.rand(8, generator=g) + 0.1).bfloat16(),
                                                         torch.full((8,), 3, dtype=torch.bfloat16), torch.qint8, -1)))
    for dtype in (torch.qint8, torch.quint4x2):
        for axis in (-2, -1, 0):
            for in_dtype, form in ((f, "full"), (torch.float16, "one"), (torch.bfloat16, "multi_dim")):
                x = (torch.randn(3, 5, 16, generator=g) * 8).to(in_dtype)
                dim = 1 if axis == -2 else 2
                size = 1 if form == "one" else x.shape[dim]
                scales = (torch.rand(size, generator=g) + 0.2).to(in_dtype)
                zp = torch.randn(size, generator=g).to(in_dtype)
                if form == "multi_dim":
                    shape = [1, 1, 1]
                    shape[dim] = size
                    scales, zp = scales.reshape(shape), zp.reshape(shape)
                samples.append(Sample(f"random mul {dtype} axis {axis} {in_dtype} {form}",
                                      (x, scales, zp, dtype, axis, False)))
    return samples


def _quantize_reference(args, kwargs, exp):
    x, scales, zero_points, dtype, *rest = args
    axis, div_mode = (rest + [1, True][len(rest):])[:2]
    if div_mode:
        return quantize_per_channel_oracle(x, scales, zero_points, dtype, axis)
    return quantize_mul_reference(x, scales, zero_points, dtype, axis)


def _quantize_meta(args, kwargs):
    x, _, _, dtype = args[:4]
    if dtype == torch.quint4x2:
        return [((*x.shape[:-1], x.shape[-1] // 8), torch.int32)]
    return [(tuple(x.shape), {torch.qint8: torch.int8, torch.quint8: torch.uint8, torch.qint32: torch.int32}[dtype])]


X4 = torch.randn(4, 16, generator=gen(21))


def _quantize_invalid():
    cases = [Invalid(name, args, {}, error, tuple(words))
             for name, args, error, words in static_validation.QUANTIZE_CASES]
    # div_mode=False, multi-dim scales: the element-wise dim must be its size or 1
    cases += [
        Invalid("mul multi-dim scales element-wise dim", (X4, torch.ones(1, 5), None, torch.qint8, -1, False), {},
                ValueError, ("scales", "dim 1", "16 or 1", "got 5")),
        Invalid("mul multi-dim scales element-wise dim axis -2",
                (X4.reshape(2, 2, 16), torch.ones(1, 3, 1), None, torch.qint8, -2, False), {}, ValueError,
                ("scales", "dim 1", "2 or 1", "got 3")),
    ]
    # torch_npu 2.13/2.14's dtype codes, op-plugin's per-mode lists and CANN's aclnn checks
    cases += [Invalid(name, args, {}, error, tuple(words)) for name, args, error, words in quantize_parity.BAD_QUANTIZE]
    x, s = quantize_parity.X, quantize_parity.S16
    cases += [
        Invalid("dtype unknown code", (x, s, None, 1000, -1, True), {}, ValueError,
                ("dtype", "one of", "got 1000")),
        Invalid("dtype without a code", (x, s, None, torch.float64, -1, True), {}, ValueError,
                ("dtype torch.float64 has no torch_npu dtype code",), public_only=True),
        Invalid("dtype None", (x, s, None, None, -1, True), {}, TypeError, ("dtype is required",), public_only=True),
    ]
    return cases


# --- npu_group_quant ----------------------------------------------------------------------

def _group_quant_samples():
    gi = torch.tensor([1, 2], dtype=torch.int32)
    samples = [
        Sample("int8 ends and ties", (torch.tensor([[0.5, 1.5, 2.5, -0.5], [-1.5, -2.5, 1000.0, -1000.0]]),
                                      torch.ones(2, 4), gi), {},
               torch.tensor([[0, 2, 2, 0], [-2, -2, 127, -128]], dtype=torch.int8)),
        Sample("offset ties", (torch.tensor([[0.0, 1.0, 2.0, -1.0]]), torch.ones(1, 4), gi[:1]),
               {"offset": torch.tensor([0.5])}, torch.tensor([[0, 2, 2, 0]], dtype=torch.int8)),
        Sample("per-group scale ends", (torch.tensor([[1.0, 1.0], [1.0, 1.0]]),
                                        torch.tensor([[200.0, 0.5], [-200.0, 2.5]]),
                                        torch.tensor([1, 2])), {"dst_dtype": torch.qint8},
               torch.tensor([[127, 0], [-128, 2]], dtype=torch.int8)),
        Sample("int4 ends and ties", (torch.tensor([[*TIES, 100.0, -100.0]]), torch.ones(1, 8), gi[:1]),
               {"dst_dtype": torch.quint4x2}, int4_words([*TIES_ROUNDED, 7, -8])),
        Sample("empty int4", (torch.empty(0, 16), torch.ones(2, 16), torch.tensor([0, 0], dtype=torch.int32)),
               {"dst_dtype": torch.quint4x2}),
        Sample("zero width", (torch.empty(3, 0), torch.ones(1, 0), torch.tensor([3])), {},
               torch.empty(3, 0, dtype=torch.int8)),
    ]
    g = gen(30)
    for x_dtype, scale_dtype, index_dtype, dst, offset in [
        (torch.float32, torch.float32, torch.int32, None, True),
        (torch.float16, torch.bfloat16, torch.int64, torch.int8, False),
        (torch.bfloat16, torch.float16, torch.int32, torch.qint8, True),
        (torch.bfloat16, torch.float32, torch.int64, torch.quint4x2, True),
        (torch.float16, torch.float32, torch.int32, torch.quint4x2, False),
    ]:
        x = (torch.randn(37, 64, generator=g) * 4).to(x_dtype)
        scale = (torch.randn(5, 64, generator=g) * 3).to(scale_dtype)
        cuts = torch.randint(0, 38, (4,), generator=g).sort().values
        group_index = torch.cat([cuts, torch.tensor([37])]).to(index_dtype)
        kwargs = {"dst_dtype": dst, "offset": torch.randn(1, generator=g).to(scale_dtype) if offset else None}
        samples.append(Sample(f"random {x_dtype} {scale_dtype} {index_dtype} {dst} offset={offset}",
                              (x, scale, group_index), kwargs))
    return samples


def _group_quant_reference(args, kwargs, exp):
    return group_quant_reference(*args, kwargs.get("offset"), kwargs.get("dst_dtype"))


def _group_quant_meta(args, kwargs):
    x = args[0]
    if kwargs.get("dst_dtype") == torch.quint4x2:
        return [((x.shape[0], x.shape[1] // 8), torch.int32)]
    return [(tuple(x.shape), torch.int8)]


GROUP_EAGER_ONLY = {"group_index decreasing", "group_index decreasing later", "group_index negative",
                    "group_index end", "group_index one group's end"}


def _group_quant_invalid():
    cases = [Invalid(name, args, kwargs, error, tuple(words), name in GROUP_EAGER_ONLY)
             for name, args, kwargs, error, words in static_validation.GROUP_QUANT_CASES]
    # GroupQuant writes int8/int4 only (torch_npu's meta would give quint8 a uint8 output)
    gq = (quantize_parity.X, torch.ones(2, 16), quantize_parity.GI)
    cases += [Invalid(f"dst_dtype {seen}", gq, {"dst_dtype": dst}, ValueError, ("dst_dtype must be None or one of",
                                                                                  seen))
              for dst, seen in [(torch.quint8, "torch.quint8"), (13, "torch.quint8")]]
    # torch_npu's own code: the public function names it; the raw op's ScalarType argument
    # turns 290 into torch.uint5 first, which the op's checks refuse as well
    cases.append(Invalid("dst_dtype hifloat8 code", gq, {"dst_dtype": 290}, ValueError,
                         ("dst_dtype must be None or one of",)))
    return cases


# --- npu_dequant_swiglu_quant --------------------------------------------------------------

def _dsq_static_rows(activate_left, h=6):
    """Two rows whose SwiGLU output is exact whatever exp's last bit: silu(64) is 64 in
    float32 (exp(-64) vanishes beside 1) and anything times 0 is 0. With quant_scale 1
    and quant_offset TIES, row 0 is all ties and row 1 saturates at both ends."""
    up = [[0.0] * h, [100.0, -100.0, 100.0, -100.0, 0.0, 0.0]]
    gate = [[1.0] * h, [64.0] * h]
    rows = [g + u if activate_left else u + g for g, u in zip(gate, up, strict=True)]
    y = [TIES_ROUNDED, [127, -128, 127, -128, -2, -2]]  # row 1: 6400.5, -6398.5, 6402.5, -6401.5, -1.5, -2.5
    return rows, torch.tensor(y, dtype=torch.int8)


def _dsq_samples():
    samples = []
    for left in (False, True):
        rows, y = _dsq_static_rows(left)
        qs, qo = torch.ones(6), torch.tensor([TIES])
        samples.append(Sample(f"static bf16 ends and ties left={left}", (torch.tensor(rows).bfloat16(),),
                              {"quant_scale": qs, "quant_offset": qo, "activate_left": left}, (y, torch.zeros(2))))
        samples.append(Sample(f"static int32 ends and ties left={left}", (torch.tensor(rows).int(),),
                              {"weight_scale": torch.ones(12), "activation_scale": torch.ones(2, 1),
                               "quant_scale": qs.reshape(1, 6).half(), "quant_offset": qo, "activate_left": left},
                              (y, torch.zeros(2))))
    # bias moves the int32 row before dequant: x - bias gives the rows above
    rows, y = _dsq_static_rows(False)
    bias = torch.tensor([3, -3, 5, -5, 7, -7] * 2, dtype=torch.int32)
    samples.append(Sample("static int32 bias ends and ties", (torch.tensor(rows).int() - bias,),
                          {"weight_scale": torch.ones(1, 12), "activation_scale": torch.ones(2), "bias": bias,
                           "quant_scale": torch.ones(6), "quant_offset": torch.tensor(TIES)}, (y, torch.zeros(2))))
    # dynamic: gate 64 (silu exact), up 1, quant_scale v / 64: out = v exactly, absmax 127 -> scale 1
    v = [127.0, *TIES, -127.0]
    v_rounded = [127, *TIES_ROUNDED, -127]
    for left in (False, True):
        half = [[1.0] * 8, [64.0] * 8]
        row = half[1] + half[0] if left else half[0] + half[1]
        qs = torch.tensor(v) / 64
        samples.append(Sample(f"dynamic bf16 ends and ties left={left}", (torch.tensor([row]).bfloat16(),),
                              {"quant_scale": qs, "quant_mode": 1, "activate_left": left},
                              (torch.tensor([v_rounded], dtype=torch.int8), torch.tensor([1.0]))))
    # grouped (H divisible by 64): two groups of one row, a third row past the groups stays 0
    qs = torch.zeros(2, 64)
    qs[0, :8], qs[1, :8] = torch.tensor(v) / 64, -torch.tensor(v) / 64
    x = torch.tensor([[1] * 64 + [64] * 64] * 3, dtype=torch.int32)
    y = torch.zeros(3, 64, dtype=torch.int8)
    y[0, :8], y[1, :8] = torch.tensor(v_rounded), -torch.tensor(v_rounded)
    samples.append(Sample("dynamic grouped int32 ends and ties", (x,),
                          {"weight_scale": torch.ones(2, 128), "activation_scale": torch.ones(3), "quant_scale": qs,
                           "group_index": torch.tensor([1, 1]), "quant_mode": 1},
                          (y, torch.tensor([1.0, 1.0, 0.0]))))
    samples.append(Sample("zero tokens grouped", (torch.empty(0, 128, dtype=torch.int32),),
                          {"weight_scale": torch.ones(2, 128), "activation_scale": torch.ones(0),
                           "group_index": torch.tensor([0, 0]), "quant_mode": 1}))
    samples.append(Sample("zero rows bf16", (torch.zeros(3, 8).bfloat16(),), {"quant_mode": 1},
                          (torch.zeros(3, 4, dtype=torch.int8), torch.zeros(3))))
    for i, (dtype, static, groups, bias, offset, left) in enumerate([
        (torch.int32, False, None, False, False, False), (torch.int32, False, None, True, False, True),
        (torch.bfloat16, False, None, False, False, False), (torch.int32, True, None, False, False, True),
        (torch.int32, True, None, True, True, False), (torch.bfloat16, True, None, False, True, True),
        (torch.int32, False, 4, False, False, False), (torch.bfloat16, False, 3, False, False, True),
    ]):
        g = gen(40 + i)
        tokens, hidden = 29, 64
        kwargs = {"quant_mode": 0 if static else 1, "activate_left": left}
        if dtype == torch.int32:
            x = torch.randint(-300, 300, (tokens, 2 * hidden), generator=g, dtype=torch.int32)
            kwargs["weight_scale"] = torch.rand(groups or 1, 2 * hidden, generator=g) * 0.02
            kwargs["activation_scale"] = torch.rand(tokens, generator=g) * 0.05 + 0.01
        else:
            x = (torch.randn(tokens, 2 * hidden, generator=g) * 2).bfloat16()
        if bias:
            kwargs["bias"] = torch.randint(-50, 50, (2 * hidden,), generator=g, dtype=torch.int32)
        kwargs["quant_scale"] = torch.rand(groups or 1, hidden, generator=g) + (0.02 if static else 0.5)
        if offset:
            kwargs["quant_offset"] = torch.randn(1, hidden, generator=g)
        if groups:
            counts = torch.randint(0, tokens // groups + 1, (groups,), generator=g)
            kwargs["group_index"] = counts.to(torch.int64)
        samples.append(Sample(f"random {dtype} static={static} groups={groups} bias={bias} offset={offset} "
                              f"left={left}", (x,), kwargs))
    return samples


def _dsq_reference(args, kwargs, exp):
    return dequant_swiglu_quant_reference(*args, exp=exp, **kwargs)


def _dsq_meta(args, kwargs):
    x = args[0]
    return [((x.shape[0], x.shape[1] // 2), torch.int8), ((x.shape[0],), torch.float32)]


DSQ_EAGER_ONLY = {"counts negative", "counts over T"}
XI = static_validation.XI
DSQ_OK = static_validation.DSQ_OK


def _dsq_invalid():
    cases = [Invalid(name, (x,), kwargs, error, tuple(words), name in DSQ_EAGER_ONLY)
             for name, x, kwargs, error, words in static_validation.DSQ_CASES]
    cases += [
        Invalid("activation_scale 3-D", (XI,), {**DSQ_OK, "activation_scale": torch.ones(6, 1, 1)}, ValueError,
                ("activation_scale", "(6, 1, 1)")),
        Invalid("activation_scale [T, 1, 2]", (XI,), {**DSQ_OK, "activation_scale": torch.ones(6, 1, 2)}, ValueError,
                ("activation_scale", "(6, 1, 2)")),
        Invalid("x width 0", (torch.zeros(6, 0).bfloat16(),), {"quant_mode": 1}, ValueError,
                ("split dim", "> 0", "got 0")),
        Invalid("x width 0 int32", (torch.zeros(6, 0, dtype=torch.int32),),
                {"weight_scale": torch.ones(0), "activation_scale": torch.ones(6), "quant_mode": 1}, ValueError,
                ("split dim", "> 0", "got 0")),
    ]
    # torch_npu 2.13/2.14's arguments (swiglu_mode, activate_dim, dst_type ...) and op-plugin's checks
    cases += [Invalid(name, (x,), kwargs, error, tuple(words))
              for name, x, kwargs, error, words in dsq_parity.BAD_INPUT]
    cases.append(Invalid("weight_scale 3-D", (XI,), {**DSQ_OK, "weight_scale": torch.ones(1, 1, 128)}, ValueError,
                         ("weight_scale must be [1, 128]", "(1, 1, 128)")))
    return cases


def _on_meta(name, args, kwargs, arg, x_name="input"):
    """A parameter on another device than the input: refused, never read as memory."""
    return Invalid(f"{arg} on meta", args, kwargs, ValueError, (arg, f"must be on {x_name}'s device cpu", "got meta"))


META = {"device": "meta"}
DEVICE_INVALID = {
    "npu_dynamic_quant": [_on_meta("npu_dynamic_quant", (torch.ones(4, 16, dtype=torch.half),),
                                   {"smooth_scales": torch.ones(16, dtype=torch.half, **META)}, "smooth_scales")],
    "npu_dynamic_quant_asymmetric": [_on_meta(
        "npu_dynamic_quant_asymmetric", (torch.ones(4, 16, dtype=torch.half),),
        {"smooth_scales": torch.ones(1, 16, dtype=torch.half), "group_index": torch.tensor([4], dtype=torch.int32,
                                                                                            **META)}, "group_index")],
    "npu_quantize": [
        _on_meta("npu_quantize", (torch.ones(4, 16), torch.ones(16, **META), None, torch.qint8, -1, True), {},
                 "scales"),
        _on_meta("npu_quantize", (torch.ones(4, 16), torch.ones(16), torch.zeros(16, **META), torch.qint8, -1, False),
                 {}, "zero_points")],
    "npu_group_quant": [
        _on_meta("npu_group_quant", (torch.ones(4, 16), torch.ones(1, 16, **META), torch.tensor([4])), {}, "scale",
                 "x"),
        _on_meta("npu_group_quant", (torch.ones(4, 16), torch.ones(1, 16), torch.tensor([4], **META)), {},
                 "group_index", "x")],
    "npu_dequant_swiglu_quant": [_on_meta(
        "npu_dequant_swiglu_quant", (torch.ones(4, 16, dtype=torch.int32),),
        {"weight_scale": torch.ones(16), "activation_scale": torch.ones(4, **META), "quant_scale": torch.ones(8)},
        "activation_scale", "x")],
}


# --- the registry ---------------------------------------------------------------------------

OPS = {
    "npu_dynamic_quant": OpInfo("npu_dynamic_quant", _dq_reference(True), _dq_meta(True), _dq_samples(True),
                                _dq_invalid(True) + DEVICE_INVALID["npu_dynamic_quant"]),
    "npu_dynamic_quant_asymmetric": OpInfo("npu_dynamic_quant_asymmetric", _dq_reference(False), _dq_meta(False),
                                           _dq_samples(False),
                                           _dq_invalid(False) + DEVICE_INVALID["npu_dynamic_quant_asymmetric"]),
    "npu_quantize": OpInfo("npu_quantize", _quantize_reference, _quantize_meta, _quantize_samples(),
                           _quantize_invalid() + DEVICE_INVALID["npu_quantize"]),
    "npu_group_quant": OpInfo("npu_group_quant", _group_quant_reference, _group_quant_meta, _group_quant_samples(),
                              _group_quant_invalid() + DEVICE_INVALID["npu_group_quant"]),
    "npu_dequant_swiglu_quant": OpInfo("npu_dequant_swiglu_quant", _dsq_reference, _dsq_meta, _dsq_samples(),
                                       _dsq_invalid() + DEVICE_INVALID["npu_dequant_swiglu_quant"]),
}

def valid_samples():
    return [(info, s) for info in OPS.values() for s in info.samples]


def invalid_samples():
    return [(info, s) for info in OPS.values() for s in info.invalid]


def sample_id(pair):
    info, sample = pair
    return f"{info.name}:{sample.name}"
