"""The quantized output formats: one row each, read by every layer (kernels, fake kernels,
the C ABI, the GE converters).

A user names a format by a torch dtype (``torch.qint8`` and ``torch.int8`` are the same
int8 format) or, as torch_npu's schemas take it, by an int code (``resolve_code``);
``quant_dtype`` maps the name to its row, with None meaning int8 everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# What a dtype argument of a public function takes: a torch dtype, torch_npu's int code, or None.
DtypeArg = torch.dtype | int | None


@dataclass(frozen=True)
class QuantDtype:
    name: str
    lo: float  # the format's range: integers saturate to it, floats clamp to it
    hi: float
    storage: torch.dtype  # dtype of the tensor that holds the values
    per_element: int  # values packed into one storage element (int4: 8 per int32)
    ge: str  # GE DataType name of the fused operator's output
    c_kind: int | None  # enum qg_out_kind in csrc/kernels.h; None: only the portable path writes it (HiF8)
    # how a value becomes storage: "integer" (rounded half to even, saturated), "float" (a
    # torch cast), "hifloat8" (HiF8 bit patterns from _hifloat8, in uint8 as torch_npu keeps them)
    encoding: str = "integer"

    @property
    def is_float(self) -> bool:
        """A floating-point format: its DST_MIN is -DST_MAX and values are not rounded to integers."""
        return self.encoding != "integer"

    @property
    def span(self) -> float:
        """DST_MAX - DST_MIN of the dynamic-quant formulas."""
        return self.hi - self.lo

    def stored_shape(self, shape) -> tuple:
        """Shape of the tensor holding values of ``shape``: packing shortens the last dim."""
        if self.per_element == 1:
            return tuple(shape)
        return (*shape[:-1], shape[-1] // self.per_element)


INT8 = QuantDtype("int8", -128, 127, torch.int8, 1, "DT_INT8", 0)
INT4 = QuantDtype("int4", -8, 7, torch.int32, 8, "DT_INT4", 1)
UINT8 = QuantDtype("uint8", 0, 255, torch.uint8, 1, "DT_UINT8", 2)
INT32 = QuantDtype("int32", -(2**31), 2**31 - 1, torch.int32, 1, "DT_INT32", 3)
FLOAT8_E4M3FN = QuantDtype("float8_e4m3fn", -448.0, 448.0, torch.float8_e4m3fn, 1, "DT_FLOAT8_E4M3FN", 4, "float")
FLOAT8_E5M2 = QuantDtype("float8_e5m2", -57344.0, 57344.0, torch.float8_e5m2, 1, "DT_FLOAT8_E5M2", 5, "float")
# torch_npu.hifloat8 (code 290): no torch dtype; named by the string resolve_code gives
HIFLOAT8 = QuantDtype("hifloat8", -32768.0, 32768.0, torch.uint8, 1, "DT_HIFLOAT8", None, "hifloat8")

BY_TORCH_DTYPE: dict[torch.dtype, QuantDtype] = {
    torch.int8: INT8,
    torch.qint8: INT8,
    torch.uint8: UINT8,
    torch.quint8: UINT8,
    torch.int32: INT32,
    torch.qint32: INT32,
    torch.quint4x2: INT4,
    torch.float8_e4m3fn: FLOAT8_E4M3FN,
    torch.float8_e5m2: FLOAT8_E5M2,
}


# formats torch has no dtype for, by the name resolve_code gives them
BY_NAME: dict[str, QuantDtype] = {"hifloat8": HIFLOAT8}


def quant_dtype(dtype: torch.dtype | str | None) -> QuantDtype:
    """The format a dtype argument names (a torch dtype, or the name of a torch_npu-only
    format); None is int8, as in every op's documentation."""
    if dtype is None:
        return INT8
    return BY_NAME[dtype] if isinstance(dtype, str) else BY_TORCH_DTYPE[dtype]


# torch_npu's int dtype codes: c10::ScalarType's numbers for the dtypes torch has, and
# torch_npu's own (an ACL dtype number + 256) for formats torch lacks, named by string.
TORCH_NPU_CODES: dict[int, torch.dtype | str] = {
    0: torch.uint8, 1: torch.int8, 3: torch.int32, 12: torch.qint8, 13: torch.quint8, 14: torch.qint32,
    16: torch.quint4x2, 23: torch.float8_e5m2, 24: torch.float8_e4m3fn,
    290: "hifloat8", 291: torch.float8_e5m2, 292: torch.float8_e4m3fn,
    296: "float4_e2m1fn_x2", 297: "float4_e1m2fn_x2",
}


def resolve_code(op: str, arg: str, value: int | torch.dtype | None) -> torch.dtype | str | None:
    """A dtype argument as a torch dtype, or the name of a torch_npu-only format."""
    if value is None or isinstance(value, torch.dtype):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value not in TORCH_NPU_CODES:
        known = ", ".join(f"{code} ({name})" for code, name in TORCH_NPU_CODES.items())
        raise ValueError(f"{op}: {arg} must be a torch.dtype or one of torch_npu's dtype codes {known}; got {value!r}")
    return TORCH_NPU_CODES[value]


# each torch dtype's code: the first listed (reversed, so it is written last), torch's own
# ScalarType number rather than torch_npu's 291/292 aliases
_CODE_OF_DTYPE: dict[torch.dtype, int] = {
    named: code for code, named in reversed(TORCH_NPU_CODES.items()) if isinstance(named, torch.dtype)}


def torch_npu_code(op: str, arg: str, value: int | torch.dtype) -> int:
    """A dtype argument as the int code that torch_npu's ``int dtype`` schemas take: a torch
    dtype becomes torch's own ScalarType number (never torch_npu's 291/292 float8 aliases). An
    int passes through as it is: the op resolves it (resolve_code) and names a bad one."""
    if isinstance(value, torch.dtype):
        if value in _CODE_OF_DTYPE:
            return _CODE_OF_DTYPE[value]
        known = ", ".join(str(d) for d in sorted(_CODE_OF_DTYPE, key=_CODE_OF_DTYPE.get))
        raise ValueError(f"{op}: {arg} {value} has no torch_npu dtype code; known: {known}")
    if value is None:
        raise TypeError(f"{op}: {arg} is required: a torch.dtype or one of torch_npu's dtype codes; got None")
    return value
