"""float32 -> HiFloat8 (HiF8) encoding, vectorized in torch.

API (what the ops use)::

    hifloat8_bits(v: torch.Tensor) -> torch.Tensor

``v``: a floating tensor of any shape and device (computed in float32). Returns a
``torch.uint8`` tensor of v's shape holding the HiF8 bit patterns, as torch_npu stores
``torch_npu.hifloat8`` (dtype code 290). ``decode(bits)`` gives the float32 values of bit
patterns back.

The format (Huawei, "Ascend HiFloat8 Format for Deep Learning", arXiv 2409.16626; SPEC.md):
bit 7 is the sign; then a prefix-coded "dot" field gives the exponent width; then the
exponent in sign-magnitude with an implicit leading 1 in its magnitude; then the mantissa.

=========  ==============  ============  =============
dot        exponent        exp. bits     mantissa bits
=========  ==============  ============  =============
``11``     +-8 .. +-15     4             1
``10``     +-4 .. +-7      3             2
``01``     +-2 .. +-3      2             3
``001``    +-1             1             3
``0001``   0               0             3
``0000``   subnormal       -             3: 2^(M-23), M = 1..7
=========  ==============  ============  =============

0x00 is the only zero, 0x80 NaN, 0x6F / 0xEF +-inf; the largest finite value is 0x6E,
2^15 = 32768, and the smallest 2^-22.

Rounding (the Ascend conversion): to the nearest representable value, ties away from
zero, -0 and every value that rounds to 0 giving 0x00. Saturating: a finite value past
32768 gives +-32768 (0x6E / 0xEE); +-inf stays +-inf and NaN gives 0x80. The reference
implementation CANN's goldens use (PyPI ``en-dtypes``) instead rounds as though 49152
existed and maps that to inf, so it gives 32768 only up to 40960 and inf from there. How
the hardware's saturation treats that range is not public; saturation is what SPEC.md
and the Ascend documents call the conversion, and a saturating cast never turns a
finite input into inf, so this module saturates. The dynamic quant ops clamp to +-32768
(or dst_type_max) before encoding, where both choices agree.
"""

from __future__ import annotations

import torch

MAX_FINITE = 32768.0
NAN_BITS, POS_INF_BITS, MAX_BITS = 0x80, 0x6F, 0x6E
_MIN_NORMAL_EXP, _MIN_SUBNORMAL_EXP = -15, -22


def _mantissa_bits(abs_exp: torch.Tensor) -> torch.Tensor:
    return torch.where(abs_exp <= 3, 3, torch.where(abs_exp <= 7, 2, 1))


def hifloat8_bits(v: torch.Tensor) -> torch.Tensor:
    """HiF8 bit patterns (uint8) of ``v``, rounded half away from zero, saturating."""
    v = v.float()
    a = v.abs()
    _, frexp_exp = torch.frexp(a)
    binade = frexp_exp.to(torch.int32) - 1  # a in [2^binade, 2^(binade+1))
    # normal range: within a's binade the representable values are evenly spaced and both
    # ends are representable, so rounding there is rounding to that spacing
    w = _mantissa_bits(binade.abs())
    q = torch.floor(torch.ldexp(a, (w - binade).float()) + 0.5).to(torch.int32)  # in [2^w, 2^(w+1)]
    carried = q == (1 << (w + 1))
    e = binade + carried.to(torch.int32)
    m = torch.where(carried, 0, q - (1 << w))
    over = (e > 15) | ((e == 15) & (m > 0))
    bits = torch.where(over, MAX_BITS, _normal_bits(e, m))
    # below 2^-15 the values are 0 and the powers of two 2^-22 .. 2^-16: the nearest one,
    # the tie 1.5 * 2^k going up, and 2^-23 (the tie between 0 and 2^-22) to 2^-22
    up = a >= 1.5 * torch.ldexp(torch.ones_like(a), binade.float())
    k = torch.where(binade == _MIN_SUBNORMAL_EXP - 1, _MIN_SUBNORMAL_EXP, binade + up.to(torch.int32))
    sub_bits = torch.where(k == _MIN_NORMAL_EXP, _normal_bits(k, torch.zeros_like(k)), k - (_MIN_SUBNORMAL_EXP - 1))
    sub_bits = torch.where(a < 2.0 ** (_MIN_SUBNORMAL_EXP - 1), 0, sub_bits)
    bits = torch.where(a < 2.0**_MIN_NORMAL_EXP, sub_bits, bits)
    bits = torch.where(a == torch.inf, POS_INF_BITS, bits)
    bits = torch.where(bits == 0, 0, bits | (torch.signbit(v).to(torch.int32) << 7))
    return torch.where(torch.isnan(v), NAN_BITS, bits).to(torch.uint8)


def _normal_bits(e: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Dot, exponent and mantissa fields of 2^e * (1 + m / 2^w) (sign bit clear)."""
    ae, es = e.abs(), (e < 0).to(torch.int32)
    return torch.where(
        ae == 0, (0b0001 << 3) | m,
        torch.where(ae == 1, (0b001 << 4) | (es << 3) | m,
                    torch.where(ae <= 3, (0b01 << 5) | (es << 4) | ((ae - 2) << 3) | m,
                                torch.where(ae <= 7, (0b10 << 5) | (es << 4) | ((ae - 4) << 2) | m,
                                            (0b11 << 5) | (es << 4) | ((ae - 8) << 1) | m))))


def decode(bits: torch.Tensor) -> torch.Tensor:
    """float32 values of HiF8 bit patterns (uint8)."""
    table = torch.tensor([_decode_one(b) for b in range(256)], dtype=torch.float32, device=bits.device)
    return table[bits.long()]


def _decode_one(b: int) -> float:
    sign = -1.0 if b & 0x80 else 1.0
    if b == NAN_BITS:
        return float("nan")
    if b & 0x7F == POS_INF_BITS:
        return sign * float("inf")
    low = b & 0x7F
    if low >> 5 == 0b11:
        width, mbits = 4, 1
    elif low >> 5 == 0b10:
        width, mbits = 3, 2
    elif low >> 5 == 0b01:
        width, mbits = 2, 3
    elif low >> 4 == 0b001:
        width, mbits = 1, 3
    elif low >> 3 == 0b0001:
        width, mbits = 0, 3
    else:
        return sign * 2.0 ** ((low & 0x7) - 23) if low & 0x7 else 0.0
    m = low & ((1 << mbits) - 1)
    field = (low >> mbits) & ((1 << width) - 1)
    if width == 0:
        e = 0
    else:
        magnitude = (1 << (width - 1)) | (field & ((1 << (width - 1)) - 1))
        e = -magnitude if field >> (width - 1) else magnitude
    return sign * 2.0**e * (1 + m / (1 << mbits))
