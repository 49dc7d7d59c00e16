"""torch_npu 2.13/2.14 parity of npu_dynamic_quant(_asymmetric): the registered schema, its
argument names and dtype codes, and the modes it adds to the seeds."""

import math

import pytest
import torch
from helpers import assert_identical, assert_same_metadata, call_on_fakes, compile_once_across_tokens, portable_path
from hypothesis import given
from hypothesis import strategies as st
from reference import dynamic_quant_reference

import quant_graph as qg
from quant_graph import native

OPS = {False: qg.npu_dynamic_quant_asymmetric, True: qg.npu_dynamic_quant}
TORCH_NPU_ARGS = ("(Tensor input, *, Tensor? smooth_scales=None, Tensor? group_index=None, int? dst_type=None, "
                  'str quant_mode="pertoken", float dst_type_max=0.0)')


def _x(shape=(5, 32), dtype=torch.bfloat16, seed=0):
    return (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3).to(dtype)


# --- schema and arguments -------------------------------------------------------------

@pytest.mark.parametrize("name,outputs", [("npu_dynamic_quant", "(Tensor, Tensor)"),
                                          ("npu_dynamic_quant_asymmetric", "(Tensor, Tensor, Tensor)")])
def test_schema_is_torch_npus_verbatim(name, outputs):
    schema = getattr(torch.ops.quant_graph, name).default._schema
    # torch prints the float default 0.0 as "0."
    expected = torch._C.parse_schema(f"quant_graph::{name}{TORCH_NPU_ARGS} -> {outputs}")
    assert str(schema) == str(expected)
    assert [a.name for a in schema.arguments] == ["input", "smooth_scales", "group_index", "dst_type", "quant_mode",
                                                  "dst_type_max"]


@pytest.mark.parametrize("symmetric", [False, True])
def test_the_input_by_position_as_input_and_as_x(symmetric):
    x = _x()
    expected = dynamic_quant_reference(x, symmetric=symmetric)
    for out in (OPS[symmetric](x), OPS[symmetric](input=x), OPS[symmetric](x=x)):
        assert_identical(out, expected)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("call,word", [(lambda op, x: op(), "neither"), (lambda op, x: op(x, x=x), "both"),
                                       (lambda op, x: op(input=x, x=x), "both")])
def test_the_input_exactly_once(symmetric, call, word):
    name = "npu_dynamic_quant" if symmetric else "npu_dynamic_quant_asymmetric"
    with pytest.raises(TypeError, match=rf"^{name}: pass the tensor to quantize exactly once.*got {word}$"):
        call(OPS[symmetric], _x())


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("dtype,codes", [(torch.int8, (1,)), (torch.quint4x2, (16,))])
def test_dst_type_as_dtype_or_int_code(symmetric, dtype, codes):
    x = _x()
    expected = dynamic_quant_reference(x, dst_type=dtype, symmetric=symmetric)
    for dst in (dtype, *codes):
        assert_identical(OPS[symmetric](x, dst_type=dst), expected)
        assert_identical(getattr(torch.ops.quant_graph, OPS[symmetric].__name__)(x, dst_type=dst), expected)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("bad", [True, 1.0, "int8"])
def test_dst_type_of_another_type_is_a_type_error(symmetric, bad):
    with pytest.raises(TypeError, match=rf"dst_type must be None, a torch.dtype or an int dtype code, got {bad!r}"):
        OPS[symmetric](_x(), dst_type=bad)


# --- quant_mode="perchannel" -------------------------------------------------------------

def test_perchannel_hand_computed(kernel_path):
    # columns over the 2 tokens: col 0 {-1, 3}, col 1 {0, 0}, col 2 {2, -4}
    x = torch.tensor([[-1.0, 0.0, 2.0], [3.0, 0.0, -4.0]], dtype=torch.float16)
    y, scale = qg.npu_dynamic_quant(x, quant_mode="perchannel")
    assert scale.tolist() == [(torch.tensor(3.0) / 127).item(), 0.0, (torch.tensor(4.0) / 127).item()]
    assert y.tolist() == [[-42, 0, 64], [127, 0, -127]]
    y, scale, offset = qg.npu_dynamic_quant_asymmetric(x, quant_mode="perchannel")
    s0 = torch.tensor(4.0) / 255
    assert scale[0].item() == s0.item() and offset[0].item() == (127 - torch.tensor(3.0) / s0).item()
    assert y[:, 0].tolist() == [-128, 127] and y[:, 1].tolist() == [0, 0]


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("shape", [(33, 48), (3, 17, 64), (2, 2, 5, 16)])
@pytest.mark.parametrize("dst_type", [None, torch.quint4x2])
@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_perchannel_matches_reference(kernel_path, symmetric, shape, dst_type, smooth, dtype):
    x = _x(shape, dtype)
    kwargs = {"smooth_scales": (torch.rand(shape[-2]) + 0.5).to(dtype)} if smooth else {}
    out = OPS[symmetric](x, dst_type=dst_type, quant_mode="perchannel", **kwargs)
    assert out[1].shape == (*shape[:-2], shape[-1])
    assert_identical(out, dynamic_quant_reference(x, dst_type=dst_type, quant_mode="perchannel", symmetric=symmetric,
                                                  **kwargs))


def test_perchannel_statistics_stay_within_each_leading_slice(kernel_path):
    # slice 1 is slice 0 times 100: its scales are 100 times slice 0's, its y the same
    base = _x((1, 9, 32), torch.float32)
    x = torch.cat([base, base * 100]).to(torch.bfloat16)
    y, scale = qg.npu_dynamic_quant(x, quant_mode="perchannel")
    ref_y, ref_scale = qg.npu_dynamic_quant(x[1:], quant_mode="perchannel")
    assert torch.equal(y[1:], ref_y) and torch.equal(scale[1:], ref_scale)
    assert not torch.equal(scale[0], scale[1])


def test_perchannel_large_slices_cross_chunks_and_threads(kernel_path):
    x = _x((2, 3000, 520), torch.float16)
    smooth = (torch.rand(3000) + 0.5).half()
    for symmetric in (False, True):
        assert_identical(OPS[symmetric](x, smooth_scales=smooth, quant_mode="perchannel"),
                         dynamic_quant_reference(x, smooth, quant_mode="perchannel", symmetric=symmetric))


def test_perchannel_non_finite_columns_stay_in_their_column(kernel_path):
    x = _x((6, 5), torch.bfloat16)
    x[2, 1], x[4, 3], x[0, 4] = float("nan"), float("inf"), -float("inf")
    for symmetric in (False, True):
        out = OPS[symmetric](x, quant_mode="perchannel")
        assert_identical(out, dynamic_quant_reference(x, quant_mode="perchannel", symmetric=symmetric))
        assert math.isnan(out[1][1]) and out[1][3].item() == math.inf
        assert torch.equal(out[0][:, 1], torch.zeros(6, dtype=torch.int8))  # the NaN column
        assert out[1][[0, 2]].isfinite().all()


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("shape", [(0, 16), (3, 0, 16), (0, 4, 16), (4, 0)])
def test_perchannel_empty(kernel_path, symmetric, shape):
    x = torch.empty(shape, dtype=torch.float16)
    y, scale, *offset = OPS[symmetric](x, quant_mode="perchannel")
    assert y.shape == shape and scale.shape == (*shape[:-2], shape[-1])
    # a slice of no tokens counts as zeros, as an empty row does
    assert torch.equal(scale, torch.zeros_like(scale))
    if offset:
        assert offset[0].isnan().all()


@given(batches=st.integers(0, 3), tokens=st.integers(1, 40), cols=st.integers(1, 70), symmetric=st.booleans(),
       int4=st.booleans(), smooth=st.booleans(), bf16=st.booleans(), seed=st.integers(0, 2**16),
       specials=st.lists(st.sampled_from([0.0, float("nan"), float("inf"), -float("inf"), 6e4, -1e-7]),
                         max_size=4))
def test_perchannel_native_and_portable_paths_agree(batches, tokens, cols, symmetric, int4, smooth, bf16, seed,
                                                    specials):
    g = torch.Generator().manual_seed(seed)
    int4 = int4 and cols % 8 == 0
    dtype = torch.bfloat16 if bf16 else torch.float16
    x = torch.randn(batches, tokens, cols, generator=g).to(dtype)
    if batches:
        x[0, :, 0] = 0.0  # a constant column
        for i, v in enumerate(specials):
            x[(seed + i) % batches, (seed * 3 + i) % tokens, (seed * 7 + i) % cols] = v
    kwargs = {"dst_type": torch.quint4x2 if int4 else None, "quant_mode": "perchannel"}
    if smooth:
        kwargs["smooth_scales"] = (torch.rand(tokens, generator=g) + 0.5).to(dtype)
    fast = OPS[symmetric](x, **kwargs)
    with portable_path():
        portable = OPS[symmetric](x, **kwargs)
    assert_identical(fast, portable)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("dst_type", [None, torch.quint4x2])
@pytest.mark.parametrize("tokens", [5, 37])
def test_perchannel_bits_do_not_depend_on_the_thread_count(symmetric, dst_type, tokens, monkeypatch):
    # the C kernel splits each slice's rows among the threads and merges their column
    # statistics: NaN, inf and ties of zeros meet in different threads' rows, and with 8
    # threads some have no rows of a 5-token slice (every thread asked for, however small)
    monkeypatch.setattr(native, "_BYTES_PER_THREAD", 1)
    x = _x((2, tokens, 72), torch.float16)
    x[0, 0, 3], x[0, -1, 3], x[1, -1, 4] = float("nan"), float("nan"), float("nan")
    x[0, 1, 5], x[0, -2, 5], x[1, 0, 6] = float("inf"), -float("inf"), float("inf")
    x[:, :, 7] = 0.0
    x[:, -2:, 7] = -0.0
    kwargs = {"dst_type": dst_type, "quant_mode": "perchannel", "smooth_scales": (torch.rand(tokens) + 0.5).half()}
    with portable_path():
        expected = OPS[symmetric](x, **kwargs)
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3, 8):
            torch.set_num_threads(n)
            assert_identical(OPS[symmetric](x, **kwargs), expected)
    finally:
        torch.set_num_threads(threads)


@given(shape=st.lists(st.integers(0, 6), min_size=2, max_size=4), symmetric=st.booleans(), smooth=st.booleans(),
       int4=st.booleans())
def test_perchannel_fake_matches_eager(shape, symmetric, smooth, int4):
    shape[-1] = 8 * shape[-1]
    x = torch.randn(shape).half()
    kwargs = {"quant_mode": "perchannel", "dst_type": torch.quint4x2 if int4 else None}
    if smooth:
        kwargs["smooth_scales"] = torch.rand(shape[-2]).half()
    assert_same_metadata(call_on_fakes(OPS[symmetric], x, **kwargs), OPS[symmetric](x, **kwargs))


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("extra", [{}, {"dst_type": torch.quint4x2}])
def test_perchannel_opcheck(symmetric, extra):
    x = _x((2, 7, 32), torch.float16)
    op = getattr(torch.ops.quant_graph, OPS[symmetric].__name__)
    torch.library.opcheck(op, (x,), {"quant_mode": "perchannel", "smooth_scales": torch.rand(7).half() + 0.5, **extra})


@pytest.mark.parametrize("symmetric", [False, True])
def test_perchannel_compiled_equals_eager_and_compiles_once(symmetric):
    op = OPS[symmetric]

    def fn(x):
        return op(x, quant_mode="perchannel")

    def make_args(tokens):
        x = _x((tokens, 64), torch.bfloat16, seed=tokens)
        return (x,), [(x, 0)]

    assert compile_once_across_tokens(fn, make_args) == 1


# --- float8 and hifloat8 outputs, dst_type_max --------------------------------------------

FLOAT_DSTS = [(torch.float8_e4m3fn, torch.float8_e4m3fn), (292, torch.float8_e4m3fn),
              (torch.float8_e5m2, torch.float8_e5m2), (291, torch.float8_e5m2), (290, "hifloat8")]


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("dst,ref_dst", FLOAT_DSTS, ids=["e4m3fn", "292", "e5m2", "291", "hifloat8"])
@pytest.mark.parametrize("quant_mode", ["pertoken", "pertensor", "perchannel"])
def test_float_formats_match_reference(kernel_path, symmetric, dst, ref_dst, quant_mode):
    x = _x((4, 9, 32), torch.float16)
    kwargs = {"smooth_scales": (torch.rand(9 if quant_mode == "perchannel" else 32) + 0.5).half()}
    out = OPS[symmetric](x, dst_type=dst, quant_mode=quant_mode, **kwargs)
    assert out[0].dtype == (torch.uint8 if ref_dst == "hifloat8" else ref_dst)
    assert_identical(out, dynamic_quant_reference(x, dst_type=ref_dst, quant_mode=quant_mode, symmetric=symmetric,
                                                  **kwargs))


def test_float8_asymmetric_hand_computed():
    # row [-448, 0, 448]: scale = 896 / 896 = 1, offset = 448 - 448 = 0, y = x
    x = torch.tensor([[-448.0, 0.0, 448.0, 3.0]], dtype=torch.bfloat16)
    y, scale, offset = qg.npu_dynamic_quant_asymmetric(x, dst_type=torch.float8_e4m3fn)
    assert (scale.item(), offset.item()) == (1.0, 0.0)
    assert y.float().tolist() == [[-448.0, 0.0, 448.0, 3.0]]


def test_hifloat8_hand_computed():
    # max|x| = 32768 * 2 -> scale 2; 3 / 2 = 1.5 is HiF8 0x0C; -65536 / 2 -> -32768 = 0xEE
    x = torch.tensor([[3.0, -65536.0, 0.0, 1.0]], dtype=torch.bfloat16)
    y, scale = qg.npu_dynamic_quant(x, dst_type=290)
    assert scale.tolist() == [2.0] and y.dtype == torch.uint8
    assert y.tolist() == [[0x0C, 0xEE, 0x00, 0x18]]  # 1 / 2 = 0.5 is 0x18


@pytest.mark.parametrize("symmetric", [False, True])
def test_hifloat8_dst_type_max_replaces_dst_max(symmetric):
    # max|x| = 15: with dst_type_max=15 the scale is 1 (symmetric) and x itself is encoded
    x = torch.tensor([[-15.0, 1.5, 7.0, 15.0]], dtype=torch.float16)
    out = OPS[symmetric](x, dst_type=290, dst_type_max=15.0)
    if symmetric:
        assert out[1].tolist() == [1.0]
    else:  # (15 - -15) / (15 - -15) = 1 and offset 15 - 15 / 1 = 0
        assert (out[1].item(), out[2].item()) == (1.0, 0.0)
    assert qg._hifloat8.decode(out[0]).tolist() == [[-15.0, 1.5, 7.0, 15.0]]
    for m in (15.0, 56.0, 224.0, 32768.0, 1000.5):
        assert_identical(OPS[symmetric](x, dst_type=290, dst_type_max=m),
                         dynamic_quant_reference(x, dst_type="hifloat8", symmetric=symmetric, dst_type_max=m))
    # 32768 is the format's own maximum: the same as 0
    assert_identical(OPS[symmetric](x, dst_type=290, dst_type_max=32768.0), OPS[symmetric](x, dst_type=290))


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("dst", [torch.float8_e5m2, 290])
def test_float_formats_opcheck(symmetric, dst):
    op = getattr(torch.ops.quant_graph, OPS[symmetric].__name__)
    kwargs = {"dst_type": dst, "dst_type_max": 56.0 if dst == 290 else 0.0}
    torch.library.opcheck(op, (_x((5, 32), torch.bfloat16),), kwargs)


@given(shape=st.lists(st.integers(0, 6), min_size=2, max_size=3), symmetric=st.booleans(),
       dst=st.sampled_from([torch.float8_e4m3fn, 291, 290]),
       quant_mode=st.sampled_from(["pertoken", "pertensor", "perchannel"]))
def test_float_formats_fake_matches_eager(shape, symmetric, dst, quant_mode):
    x = torch.randn(shape).bfloat16()
    kwargs = {"dst_type": dst, "quant_mode": quant_mode}
    assert_same_metadata(call_on_fakes(OPS[symmetric], x, **kwargs), OPS[symmetric](x, **kwargs))


@pytest.mark.parametrize("symmetric", [False, True])
def test_hifloat8_compiled_equals_eager_and_compiles_once(symmetric):
    op = OPS[symmetric]

    def fn(x):
        return op(x, dst_type=290, dst_type_max=224.0)

    def make_args(tokens):
        x = _x((tokens, 64), torch.bfloat16, seed=tokens)
        return (x,), [(x, 0)]

    assert compile_once_across_tokens(fn, make_args) == 1
