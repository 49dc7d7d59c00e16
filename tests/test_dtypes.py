"""The one table of output formats and torch_npu's int dtype codes."""

import re
from pathlib import Path

import pytest
import torch

from quant_graph import native
from quant_graph._dtypes import (
    BY_NAME,
    BY_TORCH_DTYPE,
    INT4,
    INT8,
    TORCH_NPU_CODES,
    quant_dtype,
    resolve_code,
    torch_npu_code,
)


@pytest.mark.parametrize("code,expected", [(1, torch.int8), (12, torch.qint8), (13, torch.quint8), (14, torch.qint32),
                                           (16, torch.quint4x2), (23, torch.float8_e5m2), (24, torch.float8_e4m3fn),
                                           (291, torch.float8_e5m2), (292, torch.float8_e4m3fn), (290, "hifloat8")])
def test_codes_name_the_formats_torch_npu_gives_them(code, expected):
    assert resolve_code("op", "dst_type", code) == expected


def test_torch_dtypes_pass_through_and_none_stays_none():
    assert resolve_code("op", "dst_type", torch.quint4x2) is torch.quint4x2
    assert resolve_code("op", "dst_type", None) is None
    assert quant_dtype(None) is INT8 and quant_dtype(torch.qint8) is INT8 and quant_dtype(torch.quint4x2) is INT4


@pytest.mark.parametrize("bad", [1000, -1, 100, 2, True, 1.0])
def test_an_unknown_code_names_the_op_the_argument_and_the_value(bad):
    with pytest.raises(ValueError, match=rf"^npu_x: dst_type must be a torch.dtype or one of .*; got {bad!r}$"):
        resolve_code("npu_x", "dst_type", bad)


def test_an_unknown_code_lists_every_known_code():
    with pytest.raises(ValueError) as error:
        resolve_code("npu_x", "dst_type", 1000)
    listed = str(error.value).split("codes ", 1)[1].split("; got")[0]
    assert listed == ", ".join(f"{code} ({name})" for code, name in TORCH_NPU_CODES.items())
    assert "290 (hifloat8), " in listed and "1 (torch.int8), " in listed


def test_torch_npu_code_gives_torchs_own_number_and_lists_the_known_dtypes():
    assert torch_npu_code("npu_x", "dtype", torch.float8_e4m3fn) == 24  # not torch_npu's alias 292
    assert torch_npu_code("npu_x", "dtype", torch.qint8) == 12 and torch_npu_code("npu_x", "dtype", 290) == 290
    with pytest.raises(ValueError, match=r"^npu_x: dtype torch.float32 has no torch_npu dtype code; "
                                         r"known: torch.uint8, torch.int8, .*, torch.float8_e4m3fn$"):
        torch_npu_code("npu_x", "dtype", torch.float32)
    with pytest.raises(TypeError, match=r"^npu_x: dtype is required"):
        torch_npu_code("npu_x", "dtype", None)


def test_the_torch_codes_are_torchs_own():
    """c10::ScalarType numbers, read back through the dispatcher's int -> ScalarType conversion."""
    lib = torch.library.Library("quant_graph_test_codes", "DEF")
    lib.define("echo(Tensor x, ScalarType dtype) -> Tensor")
    seen = []
    lib.impl("echo", lambda x, dtype: (seen.append(dtype), x.clone())[1], "CompositeExplicitAutograd")
    torch_codes = {c: d for c, d in TORCH_NPU_CODES.items() if isinstance(d, torch.dtype) and c < 256}
    for code in torch_codes:
        torch.ops.quant_graph_test_codes.echo(torch.zeros(1), code)
    assert seen == list(torch_codes.values())


@pytest.mark.parametrize("dtype", list(BY_TORCH_DTYPE))
def test_each_format_row_is_consistent(dtype):
    qd = BY_TORCH_DTYPE[dtype]
    assert qd.lo < qd.hi and qd.span == qd.hi - qd.lo
    assert qd.stored_shape((3, 16)) == ((3, 2) if qd is INT4 else (3, 16))
    assert qd.c_kind is not None  # the C kernels write every format torch has a dtype for (HiF8 has none)


def test_c_kinds_are_the_enum_in_kernels_h():
    # the C side's names for the formats, enum qg_out_kind, and _dtypes' c_kind must be one mapping
    header = (Path(native.__file__).parent / "csrc" / "kernels.h").read_text()
    body = re.search(r"enum qg_out_kind \{([^}]*)\}", header).group(1)
    enum = {name: int(value) for name, value in re.findall(r"QG_OUT_(\w+) = (\d+)", body)}
    rows = {*BY_TORCH_DTYPE.values(), *BY_NAME.values()}
    formats = {qd.name.upper(): qd.c_kind for qd in rows if qd.c_kind is not None}
    assert formats == enum
