"""torch_npu 2.13/2.14 parity of npu_quantize and npu_group_quant: the registered schemas,
int dtype codes, and the output formats and modes beyond the seeds (SPEC.md, "torch_npu
2.13/2.14 schemas")."""

import pytest
import torch
from helpers import assert_identical, assert_same_metadata, call_on_fakes, compile_once_across_tokens, portable_path
from hypothesis import given
from hypothesis import strategies as st
from reference import quantize_per_channel_oracle
from reference_quantize import (
    FLOAT8_MAX,
    float8_midpoints,
    float8_nearest,
    quantize_div_float_reference,
    quantize_mul_float_reference,
)

import quant_graph as qg
from quant_graph._dtypes import torch_npu_code

FLOAT8 = (torch.float8_e4m3fn, torch.float8_e5m2)

# SPEC.md, verbatim (torch_npu's npu_native_functions_by_codegen.yaml in 2.13.0 and 2.14.0)
SCHEMAS = {
    "npu_quantize": "npu_quantize(Tensor self, Tensor scales, Tensor? zero_points, int dtype, int axis=1, "
                    "bool div_mode=True) -> Tensor",
    "npu_group_quant": "npu_group_quant(Tensor x, Tensor scale, Tensor group_index, *, Tensor? offset=None, "
                       "ScalarType? dst_dtype=None) -> Tensor",
}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_registered_schema_is_torch_npus(name):
    assert str(getattr(torch.ops.quant_graph, name).default._schema) == "quant_graph::" + SCHEMAS[name]


def test_code_written_for_torch_npu_runs_unchanged():
    x = torch.tensor([[0.5, 1.5, -2.5, 3.0]])
    s = torch.tensor([1.0, 1.0, 1.0, 1.0])
    positional = qg.npu_quantize(x, s, None, torch.qint8, -1, False)  # the common form
    assert positional.tolist() == [[0, 2, -2, 3]]
    # torch_npu's Python name of the first argument is `input`; its docs' graph example uses keywords
    assert_identical(qg.npu_quantize(input=x, scales=s, zero_points=None, dtype=torch.qint8, div_mode=False),
                     positional)
    # the op itself takes torch_npu's int codes and, through the dispatcher, torch dtypes
    assert_identical(torch.ops.quant_graph.npu_quantize(x, s, None, 12, -1, False), positional)
    assert_identical(torch.ops.quant_graph.npu_quantize(x, s, None, torch.qint8, -1, False), positional)


@pytest.mark.parametrize("code,dtype,div_mode", [(12, torch.qint8, True), (13, torch.quint8, True),
                                                 (14, torch.qint32, True), (12, torch.qint8, False),
                                                 (16, torch.quint4x2, False)])
def test_int_codes_are_the_dtypes_they_name(code, dtype, div_mode):
    g = torch.Generator().manual_seed(code)
    x = torch.randn(3, 16, generator=g) * 30
    s = torch.rand(16, generator=g) + 0.1
    assert_identical(qg.npu_quantize(x, s, None, code, -1, div_mode), qg.npu_quantize(x, s, None, dtype, -1, div_mode))


@pytest.mark.parametrize("code,dtype", [(1, torch.int8), (12, torch.qint8), (16, torch.quint4x2)])
def test_group_quant_takes_int_codes(code, dtype):
    x = torch.randn(4, 16) * 5
    scale, group_index = torch.rand(2, 16) + 0.5, torch.tensor([1, 4])
    assert_identical(qg.npu_group_quant(x, scale, group_index, dst_dtype=code),
                     qg.npu_group_quant(x, scale, group_index, dst_dtype=dtype))


@pytest.mark.parametrize("call,error,words", [
    (lambda: qg.npu_quantize(torch.randn(2, 4), torch.ones(4), None, 1000, -1, True), ValueError,
     ["npu_quantize", "dtype", "1000"]),
    (lambda: qg.npu_quantize(torch.randn(2, 4), torch.ones(4), None, torch.float16, -1, True), ValueError,
     ["npu_quantize", "dtype", "torch.float16", "no torch_npu dtype code"]),
    (lambda: qg.npu_quantize(torch.randn(2, 4), torch.ones(4), None, None, -1, True), TypeError,
     ["npu_quantize", "dtype", "required", "None"]),
    (lambda: qg.npu_group_quant(torch.randn(2, 4), torch.ones(1, 4), torch.tensor([2]), dst_dtype=1000), ValueError,
     ["npu_group_quant", "dst_dtype", "1000"]),
    (lambda: qg.npu_group_quant(torch.randn(2, 8), torch.ones(1, 8), torch.tensor([2]), dst_dtype=296), ValueError,
     ["npu_group_quant", "dst_dtype", "296 (float4_e2m1fn_x2)"]),
])
def test_bad_dtype_codes_are_refused_by_name(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert all(w in str(info.value) for w in words), str(info.value)


# torch_npu's plain dtypes and their codes next to the quantized dtype of the same format
PLAIN = [(torch.int8, 1, torch.qint8), (torch.uint8, 0, torch.quint8), (torch.int32, 3, torch.qint32)]


@pytest.mark.parametrize("plain,code,quantized", PLAIN)
@pytest.mark.parametrize("shape,axis", [((5, 12), 1), ((5, 12), 0), ((2, 3, 4), -2)])
def test_plain_int_dtypes_in_div_mode_are_quantize_per_channel(kernel_path, plain, code, quantized, shape, axis):
    g = torch.Generator().manual_seed(code)
    x = torch.randn(shape, generator=g) * 40
    channels = shape[axis]
    scales = torch.rand(channels, generator=g) * 0.5 + 0.05
    zero_points = torch.randint(0, 20, (channels,), generator=g).to(torch.int32)
    expected = quantize_per_channel_oracle(x, scales, zero_points, quantized, axis)
    assert expected.dtype == plain
    for dtype in (plain, code):
        assert_identical(qg.npu_quantize(x, scales, zero_points, dtype, axis, True), expected)


def test_plain_int8_in_mul_mode_is_qint8(kernel_path):
    x = torch.randn(4, 8) * 50
    s, z = torch.rand(8) + 0.5, torch.randn(8)
    expected = qg.npu_quantize(x, s, z, torch.qint8, -1, False)
    for dtype in (torch.int8, 1, 12):
        assert_identical(qg.npu_quantize(x, s, z, dtype, -1, False), expected)


@pytest.mark.parametrize("dtype", [torch.qint8, torch.quint8, torch.qint32, torch.float8_e4m3fn])
@pytest.mark.parametrize("shape,axis", [((6, 10), 1), ((6, 10), 0), ((2, 3, 4, 5), 2), ((7,), 0), ((3, 4), -1)])
@pytest.mark.parametrize("with_zero_points", [False, True])
def test_div_mode_one_element_scales_broadcast(kernel_path, dtype, shape, axis, with_zero_points):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(shape, generator=g) * 20
    scale = torch.tensor([0.37])
    zp = torch.tensor([3], dtype=torch.int32) if with_zero_points else None
    out = qg.npu_quantize(x, scale, zp, dtype, axis, True)
    channels = shape[axis]
    # the same call with the one scale (and zero point) repeated per channel
    assert_identical(out, qg.npu_quantize(x, scale.expand(channels), None if zp is None else zp.expand(channels),
                                          dtype, axis, True))
    if dtype.is_floating_point:
        assert_identical(out, quantize_div_float_reference(x, scale, zp, dtype, axis))
    else:
        assert_identical(out, quantize_per_channel_oracle(x, scale.expand(channels),
                                                          None if zp is None else zp.expand(channels), dtype, axis))


def test_cann_recipes_call_per_tensor_float8():
    """cann-recipes: npu_quantize(x, input_scale (1 element), None, torch.float8_e4m3fn, -1, True)."""
    x = torch.tensor([[0.3, 1000.0, -1000.0, float("nan"), float("inf"), -float("inf"), 1e-9, 2.0]]).bfloat16()
    y = qg.npu_quantize(x, torch.tensor([0.5]), None, torch.float8_e4m3fn, -1, True)
    assert y.dtype == torch.float8_e4m3fn and y.shape == x.shape
    # bf16 0.3 is 0.30078125; / 0.5 = 0.6015625, nearest e4m3fn (step 1/16 in [0.5, 1)) 0.625;
    # NaN -> 0, +-inf and out-of-range saturate to +-448, 2e-9 underflows to 0
    assert y.float().tolist() == [[0.625, 448.0, -448.0, 0.0, 448.0, -448.0, 0.0, 4.0]]


@pytest.mark.parametrize("dtype", FLOAT8)
def test_float8_ties_go_to_the_even_mantissa(kernel_path, dtype):
    mids = float8_midpoints(dtype)
    for div_mode in (True, False):
        y = qg.npu_quantize(mids, torch.tensor([1.0]), None, dtype, -1, div_mode)
        assert_identical(y, float8_nearest(mids, dtype))
    # hand-checked e4m3fn ties: 1.0625 between 1.0 and 1.125 -> 1.0; 1.1875 between 1.125 and 1.25 -> 1.25
    if dtype is torch.float8_e4m3fn:
        y = qg.npu_quantize(torch.tensor([1.0625, 1.1875, -1.0625]), torch.tensor([1.0]), None, dtype, 0, True)
        assert y.float().tolist() == [1.0, 1.25, -1.0]


@pytest.mark.parametrize("dtype,code", [(torch.float8_e5m2, 23), (torch.float8_e4m3fn, 24)])
@pytest.mark.parametrize("in_dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("zp_dtype", [None, torch.int8, torch.uint8, torch.int32, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("axis", [0, -1])
def test_div_mode_float8_matches_reference(kernel_path, dtype, code, in_dtype, zp_dtype, axis):
    if zp_dtype is torch.bfloat16:
        in_dtype = torch.bfloat16  # bfloat16 zero points go with bfloat16 input and scales only
    g = torch.Generator().manual_seed(code)
    x = (torch.randn(6, 5, 16, generator=g) * torch.logspace(-3, 4, 16)).to(in_dtype)
    channels = x.shape[axis]
    scales = torch.rand(channels, generator=g) * 2 + 0.01
    if in_dtype is torch.bfloat16 and zp_dtype in (None, torch.bfloat16):
        scales = scales.bfloat16()  # with integer zero points aclnnQuantize takes float32 scales only
    zp = None if zp_dtype is None else (torch.randn(channels, generator=g) * 10).to(zp_dtype)
    out = qg.npu_quantize(x, scales, zp, code, axis, True)
    assert_identical(out, quantize_div_float_reference(x, scales, zp, dtype, axis))
    assert_identical(out, qg.npu_quantize(x, scales, zp, dtype, axis, True))


@pytest.mark.parametrize("dtype,codes", [(torch.float8_e5m2, (23, 291)), (torch.float8_e4m3fn, (24, 292))])
@pytest.mark.parametrize("axis", [-2, 1])
@pytest.mark.parametrize("in_dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("param_form", ["full", "one", "multi_dim"])
def test_mul_mode_float8_matches_reference(kernel_path, dtype, codes, axis, in_dtype, param_form):
    g = torch.Generator().manual_seed(codes[0])
    x = (torch.randn(3, 5, 16, generator=g) * torch.logspace(-2, 5, 16)).to(in_dtype)
    dim = 1 if axis == -2 else 2
    size = 1 if param_form == "one" else x.shape[dim]
    scales = (torch.rand(size, generator=g) + 0.2).to(in_dtype)
    zero_points = torch.randn(size, generator=g).to(in_dtype)
    if param_form == "multi_dim":
        shape = [1, 1, 1]
        shape[dim] = size
        scales, zero_points = scales.reshape(shape), zero_points.reshape(shape)
    expected = quantize_mul_float_reference(x, scales, zero_points, dtype, axis)
    for dtype_arg in (dtype, *codes):
        assert_identical(qg.npu_quantize(x, scales, zero_points, dtype_arg, axis, False), expected)


@pytest.mark.parametrize("dtype", FLOAT8)
@pytest.mark.parametrize("div_mode", [True, False])
def test_float8_nan_inf_saturation_and_empty(kernel_path, dtype, div_mode):
    big = FLOAT8_MAX[dtype]
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 2 * big, -2 * big, big, -0.0, 1e-30])
    y = qg.npu_quantize(x, torch.tensor([1.0]), None, dtype, 0, div_mode)
    assert y.float().tolist() == [0.0, big, -big, big, -big, big, 0.0, 0.0]
    assert torch.signbit(y.float()).tolist() == [False, False, True, False, True, False, True, False]
    empty = qg.npu_quantize(torch.empty(0, 4), torch.ones(4), None, dtype, -1, div_mode)
    assert empty.shape == (0, 4) and empty.dtype == dtype


@given(rows=st.integers(0, 20), cols=st.integers(1, 40), div_mode=st.booleans(), one=st.booleans(),
       seed=st.integers(0, 999), code=st.sampled_from([0, 1, 3, 12, 13, 14, 23, 24, 291, 292]))
def test_native_and_portable_paths_agree_on_every_new_mode(rows, cols, div_mode, one, seed, code):
    if div_mode and code in (291, 292):
        code -= 268  # 23/24: div_mode=True takes torch's float8 codes only
    if not div_mode and code in (0, 3, 13, 14):
        code = 1
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=g) * 30
    size = 1 if one else cols
    scales = torch.rand(size, generator=g) + 0.05
    zp = torch.randint(0, 5, (size,), generator=g).to(torch.int32) if div_mode else torch.randn(size, generator=g)
    fast = qg.npu_quantize(x, scales, zp, code, -1, div_mode)
    with portable_path():
        assert_identical(fast, qg.npu_quantize(x, scales, zp, code, -1, div_mode))


NEW_MODE_CASES = [
    ((4, 8), (8,), torch.int8, 1, True), ((4, 8), (1,), torch.uint8, 0, True), ((2, 4, 8), (1,), 3, 1, True),
    ((4, 8), (8,), torch.float8_e4m3fn, -1, True), ((4, 8), (1,), 23, 0, True),
    ((4, 16), (16,), 292, -1, False), ((2, 4, 16), (1, 4, 1), torch.float8_e5m2, -2, False),
]


@pytest.mark.parametrize("args", NEW_MODE_CASES)
def test_opcheck_new_modes(args):
    shape, scale_shape, dtype, axis, div_mode = args
    x = torch.randn(shape) * 10
    scales = torch.rand(scale_shape) + 0.1
    zp = torch.ones(scale_shape, dtype=torch.int32) if div_mode else torch.ones(scale_shape)
    code = torch_npu_code("npu_quantize", "dtype", dtype)
    torch.library.opcheck(torch.ops.quant_graph.npu_quantize, (x, scales, zp, code, axis, div_mode))


@pytest.mark.parametrize("args", NEW_MODE_CASES)
def test_fake_matches_eager_new_modes(args):
    shape, scale_shape, dtype, axis, div_mode = args
    x, scales = torch.randn(shape), torch.rand(scale_shape) + 0.1
    assert_same_metadata(call_on_fakes(qg.npu_quantize, x, scales, None, dtype, axis, div_mode),
                         qg.npu_quantize(x, scales, None, dtype, axis, div_mode))


@pytest.mark.parametrize("div_mode,dtype,axis,one", [(True, torch.float8_e4m3fn, -1, True), (True, 0, 1, True),
                                                     (True, torch.int32, 0, False), (False, 291, -2, False),
                                                     (False, torch.int8, -1, True)])
def test_compiled_equals_eager_and_compiles_once_new_modes(div_mode, dtype, axis, one):
    def fn(x, scales, zero_points):
        return qg.npu_quantize(x, scales, zero_points, dtype, axis, div_mode)

    def make_args(tokens):
        x = torch.randn(tokens, 4, 32) * 10
        size = 1 if one else x.shape[axis]
        zp = torch.randint(0, 9, (size,), dtype=torch.int32) if div_mode else torch.randn(size)
        scales = torch.rand(size) + 0.1
        marks = [(x, 0)] + ([(scales, 0), (zp, 0)] if axis == 0 and not one else [])
        return (x, scales, zp), marks

    assert compile_once_across_tokens(fn, make_args) == 1


X = torch.randn(4, 16)
S16 = torch.ones(16)
I32 = torch.zeros(16, dtype=torch.int32)
GI = torch.tensor([2, 4])
BAD_QUANTIZE = [
    # op-plugin's per-mode dtype lists (QuantizeKernelNpuOpApi.cpp)
    ("div torch_npu float8 alias", (X, S16, None, 292, -1, True), ValueError, ["dtype", "div_mode=True", "292"]),
    ("div int4", (X, S16, None, 16, -1, True), ValueError, ["dtype", "div_mode=True", "16 (torch.quint4x2)"]),
    ("mul uint8", (X, S16, None, torch.uint8, -1, False), ValueError, ["dtype", "div_mode=False", "0 (torch.uint8)"]),
    ("mul int32", (X, S16, None, 3, -1, False), ValueError, ["dtype", "div_mode=False", "3 (torch.int32)"]),
    ("mul qint32", (X, S16, None, torch.qint32, -1, False), ValueError, ["dtype", "div_mode=False", "14"]),
    ("fp4 code", (X, S16, None, 296, -1, False), ValueError, ["dtype", "296 (float4_e2m1fn_x2)"]),
    # aclnnQuantize / aclnnAscendQuantV3: x of 1 to 8 dims
    ("0-d input", (torch.tensor(1.0), torch.ones(1), None, 12, 0, True), ValueError, ["input", "1 to 8 dims", "0"]),
    ("9-d input", (torch.ones([1] * 9), torch.ones(1), None, 12, -1, False), ValueError, ["input", "1 to 8", "9"]),
    # aclnnQuantize: scales of 1 element or input.shape[axis]
    ("div scales neither 1 nor C", (X, torch.ones(5), None, 24, -1, True), ValueError, ["scales", "16", "or 1", "5"]),
    ("div zero_points of C with 1 scale", (X, torch.ones(1), I32, 12, -1, True), ValueError,
     ["zero_points", "(1,)", "(16,)"]),
    # aclnnQuantize: float32 zero points on Ascend 950 only, where float8 outputs are
    ("div float32 zero_points int8", (X, S16, torch.zeros(16), 12, -1, True), TypeError,
     ["zero_points", "int8", "torch.float32"]),
    ("div float16 zero_points float8", (X, S16, torch.zeros(16).half(), 24, -1, True), TypeError,
     ["zero_points", "float8_e4m3fn", "torch.float16"]),
    # aclnnQuantize: bfloat16 scales or zero points only with input, scales and zero points all bfloat16
    ("div bf16 scales float32 input", (X, S16.bfloat16(), None, 12, -1, True), TypeError,
     ["bfloat16", "input torch.float32", "scales torch.bfloat16"]),
    ("div bf16 scales int32 zero_points", (X.bfloat16(), S16.bfloat16(), I32, 23, -1, True), TypeError,
     ["bfloat16", "zero_points torch.int32"]),
    ("div bf16 zero_points float32 scales", (X.bfloat16(), S16, I32.bfloat16(), 12, -1, True), TypeError,
     ["bfloat16", "scales torch.float32"]),
    # aclnnAscendQuantV3 CheckDtypeCompatible: float16/bfloat16 input needs scales of its dtype
    ("mul float16 input float32 scales", (X.half(), S16, None, 12, -1, False), TypeError,
     ["scales", "input's dtype torch.float16", "torch.float32"]),
    ("mul bf16 input float16 scales", (X.bfloat16(), S16.half(), None, 292, -1, False), TypeError,
     ["scales", "input's dtype torch.bfloat16", "torch.float16"]),
]


# BAD_QUANTIZE runs in test_registry.py (eager and fake kernel) and in the validation-coverage guard.


def test_the_rules_above_each_break_one_rule_of_a_valid_call():
    qg.npu_quantize(X, torch.ones(1), torch.zeros(1, dtype=torch.int32), 24, 1, True)
    qg.npu_quantize(X, S16, torch.zeros(16), torch.float8_e5m2, -1, True)
    qg.npu_quantize(X.bfloat16(), S16.bfloat16(), I32.bfloat16(), 12, -1, True)
    qg.npu_quantize(X.bfloat16(), S16, I32, 12, -1, True)
    qg.npu_quantize(X, S16.half(), torch.zeros(16).half(), 291, -1, False)
    qg.npu_quantize(X.half(), S16.half(), None, 1, -1, False)
    qg.npu_quantize(torch.ones([1] * 8), torch.ones(1), None, 12, -1, False)


@pytest.mark.parametrize("dst_dtype,seen", [(torch.quint8, "torch.quint8"), (13, "torch.quint8"),
                                            (290, "290 (hifloat8)"), (torch.float8_e4m3fn, "float8_e4m3fn")])
def test_npu_group_quant_refuses_what_group_quant_cannot_write(dst_dtype, seen):
    # torch_npu's meta gives torch.quint8 a uint8 output; op-plugin and GroupQuant's REG_OP refuse it
    with pytest.raises(ValueError) as info:
        qg.npu_group_quant(X, torch.ones(2, 16), GI, dst_dtype=dst_dtype)
    message = str(info.value)
    assert message.startswith("npu_group_quant: dst_dtype must be None or one of") and seen in message, message


def test_int32_saturates_at_both_ends(kernel_path):
    """int32's ends are not float32 values: out-of-range inputs land exactly on them, NaN on 0."""
    inf = float("inf")
    x = torch.tensor([[3e9, -3e9, inf, -inf, float("nan"), 2147483520.0, -2147483648.0, 7.5]])
    out = qg.npu_quantize(x, torch.ones(8), None, torch.int32, -1, True)
    top, bottom = 2**31 - 1, -2**31
    assert out.tolist() == [[top, bottom, top, bottom, 0, 2147483520, bottom, 8]]


def test_per_row_scales_past_the_first_chunk(kernel_path):
    """axis=0 of a tall x: each row its own scale and zero point, on rows far past the
    portable kernel's first chunk (2^20 elements)."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(300_000, 8, generator=g) * 30
    scales = torch.rand(300_000, generator=g) * 0.5 + 0.05
    zero_points = torch.randint(-5, 5, (300_000,), generator=g, dtype=torch.int32)
    expected = quantize_per_channel_oracle(x, scales, zero_points, torch.qint8, 0)
    assert_identical(qg.npu_quantize(x, scales, zero_points, torch.qint8, 0, True), expected)
