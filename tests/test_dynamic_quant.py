import math

import pytest
import torch
from helpers import assert_identical, assert_same_metadata, call_on_fakes, compile_once_across_tokens, portable_path
from hypothesis import given
from hypothesis import strategies as st
from reference import dynamic_quant_reference, pack_int4_reference

import quant_graph as qg


def seeded(seed):
    """A generator of its own for each random tensor: the same values whatever runs first."""
    return torch.Generator().manual_seed(seed)

OPS = {False: qg.npu_dynamic_quant_asymmetric, True: qg.npu_dynamic_quant}


def moe_inputs(shape, experts, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = math.prod(shape[:-1])
    cuts = torch.randint(0, rows + 1, (experts - 1,), generator=g).sort().values
    group_index = torch.cat([cuts, torch.tensor([rows])]).to(torch.int32)
    smooth = (torch.rand(experts, shape[-1], generator=g) + 0.5).to(dtype)
    return smooth, group_index


def make_case(shape, dtype, smooth_kind, seed=0, experts=3):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 3).to(dtype)
    if smooth_kind == "none":
        return x, {}
    if smooth_kind == "vector":
        return x, {"smooth_scales": (torch.rand(shape[-1], generator=g) + 0.5).to(dtype)}
    smooth, group_index = moe_inputs(shape, experts, dtype, seed)
    return x, {"smooth_scales": smooth, "group_index": group_index}


# --- hand-computed cases -------------------------------------------------------------

def test_asymmetric_row_with_known_min_and_max_is_the_identity(kernel_path):
    # min -128, max 127: scale = 255 / 255 = 1, offset = 127 - 127 / 1 = 0, y = x.
    x = torch.arange(-128, 128, dtype=torch.float16).reshape(1, 256)
    y, scale, offset = qg.npu_dynamic_quant_asymmetric(x)
    assert scale.tolist() == [1.0] and offset.tolist() == [0.0]
    assert torch.equal(y, x.to(torch.int8))


def test_asymmetric_shifted_row():
    # min 0, max 2.55: scale 0.01, offset = 127 - 255 = -128; 1.0 -> round(100 - 128) = -28
    x = torch.tensor([[0.0, 1.0, 2.5]], dtype=torch.bfloat16)
    x[0, 2] = 2.5
    y, scale, offset = qg.npu_dynamic_quant_asymmetric(x)
    s = torch.tensor(2.5, dtype=torch.float32) / 255
    assert scale.item() == s.item()
    assert offset.item() == (127 - torch.tensor(2.5) / s).item()
    assert y.tolist() == [[-128, round(1.0 / s.item() - 128), 127]]


def test_symmetric_row_with_absmax_127():
    x = torch.tensor([[-127.0, 0.5, 1.5, 2.5, 100.0]], dtype=torch.float16)
    y, scale = qg.npu_dynamic_quant(x)
    assert scale.tolist() == [1.0]
    assert y.tolist() == [[-127, 0, 2, 2, 100]]  # half to even


def test_int4_nibble_order(kernel_path):
    # absmax 7 -> scale 1; values 1..7, -7 packed low nibble first.
    x = torch.tensor([[1, 2, 3, 4, 5, 6, 7, -7]], dtype=torch.float16)
    y, scale = qg.npu_dynamic_quant(x, dst_type=torch.quint4x2)
    assert scale.tolist() == [1.0]
    assert y.dtype == torch.int32 and y.shape == (1, 1)
    assert y.item() == 0x97654321 - (1 << 32)


def test_int4_asymmetric_range(kernel_path):
    # min -8, max 7 -> scale 1, offset 0: the row packs to itself.
    x = torch.tensor([[-8, -1, 0, 1, 2, 3, 4, 7]], dtype=torch.bfloat16)
    y, scale, offset = qg.npu_dynamic_quant_asymmetric(x, dst_type=torch.quint4x2)
    assert (scale.item(), offset.item()) == (1.0, 0.0)
    assert torch.equal(y, pack_int4_reference(x.to(torch.int8)))


# --- against the reference, every mode ------------------------------------------------

@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("dst_type", [None, torch.int8, torch.quint4x2])
@pytest.mark.parametrize("smooth_kind,quant_mode", [
    ("none", "pertoken"), ("vector", "pertoken"), ("moe", "pertoken"), ("none", "pertensor"),
    ("vector", "pertensor")])
def test_matches_reference(kernel_path, symmetric, dtype, dst_type, smooth_kind, quant_mode):
    x, kwargs = make_case((4, 6, 64), dtype, smooth_kind)
    out = OPS[symmetric](x, dst_type=dst_type, quant_mode=quant_mode, **kwargs)
    assert_identical(out, dynamic_quant_reference(x, dst_type=dst_type, quant_mode=quant_mode,
                                                  symmetric=symmetric, **kwargs))


@pytest.mark.parametrize("dst_type", [torch.float8_e4m3fn, torch.float8_e5m2])
@pytest.mark.parametrize("smooth_kind", ["none", "moe"])
def test_symmetric_float8_matches_reference(dst_type, smooth_kind):
    x, kwargs = make_case((33, 48), torch.bfloat16, smooth_kind)
    out = qg.npu_dynamic_quant(x, dst_type=dst_type, **kwargs)
    assert_identical(out, dynamic_quant_reference(x, dst_type=dst_type, symmetric=True, **kwargs))
    assert out[0].float().abs().max() <= torch.finfo(dst_type).max


@pytest.mark.parametrize("symmetric", [False, True])
def test_non_contiguous_input(kernel_path, symmetric):
    base, kwargs = make_case((64, 5, 32), torch.float16, "vector")
    x = base.transpose(0, 1)
    assert not x.is_contiguous()
    assert_identical(OPS[symmetric](x, **kwargs), OPS[symmetric](x.contiguous(), **kwargs))


def test_large_moe_crosses_chunks_and_threads(kernel_path):
    x, kwargs = make_case((3000, 512), torch.bfloat16, "moe", experts=17)
    assert_identical(qg.npu_dynamic_quant_asymmetric(x, **kwargs),
                     dynamic_quant_reference(x, **kwargs))


@given(rows=st.integers(0, 40), cols=st.integers(1, 100), symmetric=st.booleans(),
       int4=st.booleans(), pertensor=st.booleans(), bf16=st.booleans(), seed=st.integers(0, 2**16),
       specials=st.lists(st.sampled_from([0.0, float("nan"), float("inf"), -float("inf"), 6e4, -1e-7]),
                         max_size=4))
def test_native_and_portable_paths_agree(rows, cols, symmetric, int4, pertensor, bf16, seed, specials):
    g = torch.Generator().manual_seed(seed)
    int4 = int4 and cols % 8 == 0  # odd widths exercise the kernels' vector tails
    x = torch.randn(rows, cols, generator=g).to(torch.bfloat16 if bf16 else torch.float16)
    if rows:
        x[0, :] = 0.0  # a padding row
        for i, v in enumerate(specials):
            x[(seed + i) % rows, (seed * 7 + i) % x.shape[1]] = v
    kwargs = {"dst_type": torch.quint4x2 if int4 else None, "quant_mode": "pertensor" if pertensor else "pertoken"}
    fast = OPS[symmetric](x, **kwargs)
    with portable_path():
        portable = OPS[symmetric](x, **kwargs)
    assert_identical(fast, portable)


# --- degenerate rows --------------------------------------------------------------

def test_constant_and_zero_rows_give_zero(kernel_path):
    x = torch.tensor([[0.0] * 8, [3.0] * 8, [-2.0] * 8], dtype=torch.float16)
    y, scale, offset = qg.npu_dynamic_quant_asymmetric(x)
    assert torch.equal(y, torch.zeros_like(y)) and scale.tolist() == [0.0, 0.0, 0.0]
    # offset as the formula gives: 127 - max / 0
    assert math.isnan(offset[0]) and offset[1].item() == -math.inf and offset[2].item() == math.inf
    # symmetric: only the all-zero row is degenerate; +-3 -> +-7 in every nibble
    y, scale = qg.npu_dynamic_quant(x, dst_type=torch.quint4x2)
    assert y.flatten().tolist() == [0, 0x77777777, 0x99999999 - (1 << 32)]
    assert scale.tolist() == [0.0, (torch.tensor(3.0) / 7).item(), (torch.tensor(2.0) / 7).item()]


def test_nan_and_inf_never_reach_the_cast(kernel_path):
    x = torch.tensor([[1.0, float("nan"), -1.0, 2.0], [float("inf"), 1.0, -3.0, 0.0],
                      [1.0, 2.0, -float("inf"), 0.5]], dtype=torch.bfloat16)
    for symmetric in (False, True):
        out = OPS[symmetric](x)
        assert_identical(out, dynamic_quant_reference(x, symmetric=symmetric))
        assert torch.equal(out[0][0], torch.zeros(4, dtype=torch.int8))  # NaN row -> 0


@pytest.mark.parametrize("quant_mode", ["pertoken", "pertensor"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_zero_tokens(kernel_path, quant_mode, symmetric):
    x = torch.empty(0, 3, 16, dtype=torch.float16)
    y, scale, *rest = OPS[symmetric](x, dst_type=torch.quint4x2, quant_mode=quant_mode)
    assert y.shape == (0, 3, 2) and y.dtype == torch.int32
    assert scale.shape == ((1,) if quant_mode == "pertensor" else (0, 3))
    if quant_mode == "pertensor":
        assert scale.tolist() == [0.0]


def test_moe_with_empty_groups(kernel_path):
    x = torch.randn(6, 16, generator=seeded(172)).to(torch.float16)
    smooth = torch.rand(4, 16, generator=seeded(173)).to(torch.float16) + 0.5
    group_index = torch.tensor([0, 2, 2, 6], dtype=torch.int32)
    assert_identical(qg.npu_dynamic_quant(x, smooth_scales=smooth, group_index=group_index),
                     dynamic_quant_reference(x, smooth, group_index, symmetric=True))


# --- opcheck, fake kernels ---------------------------------------------------------

OPCHECK_CASES = [
    ((5, 32), torch.float16, "none", {}),
    ((2, 3, 32), torch.bfloat16, "vector", {"dst_type": torch.quint4x2}),
    ((9, 32), torch.float16, "moe", {}),
    ((9, 32), torch.bfloat16, "none", {"quant_mode": "pertensor"}),
]


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("shape,dtype,smooth_kind,extra", OPCHECK_CASES)
def test_opcheck(symmetric, shape, dtype, smooth_kind, extra):
    x, kwargs = make_case(shape, dtype, smooth_kind)
    op = torch.ops.quant_graph.npu_dynamic_quant if symmetric else torch.ops.quant_graph.npu_dynamic_quant_asymmetric
    torch.library.opcheck(op, (x,), {**kwargs, **extra})


def test_opcheck_float8():
    x, _ = make_case((4, 16), torch.float16, "none")
    torch.library.opcheck(torch.ops.quant_graph.npu_dynamic_quant, (x,), {"dst_type": torch.float8_e4m3fn})


@given(shape=st.lists(st.integers(0, 9), min_size=1, max_size=3), cols8=st.integers(1, 6),
       dtype=st.sampled_from([torch.float16, torch.bfloat16]), symmetric=st.booleans(),
       dst=st.sampled_from([None, torch.int8, torch.quint4x2]), pertensor=st.booleans(),
       smooth=st.booleans())
def test_fake_matches_eager(shape, cols8, dtype, symmetric, dst, pertensor, smooth):
    x = torch.randn(*shape, cols8 * 8, generator=seeded(207)).to(dtype)
    kwargs = {"dst_type": dst, "quant_mode": "pertensor" if pertensor else "pertoken"}
    if smooth:
        kwargs["smooth_scales"] = torch.rand(cols8 * 8, generator=seeded(210)).to(dtype)
    assert_same_metadata(call_on_fakes(OPS[symmetric], x, **kwargs), OPS[symmetric](x, **kwargs))


# --- torch.compile -----------------------------------------------------------------

@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("smooth_kind,dst_type", [("none", None), ("vector", torch.quint4x2), ("moe", None)])
def test_compiled_equals_eager_and_compiles_once(symmetric, smooth_kind, dst_type):
    op = OPS[symmetric]

    def fn(x, smooth_scales=None, group_index=None):
        return op(x, smooth_scales=smooth_scales, group_index=group_index, dst_type=dst_type)

    def make_args(tokens):
        x, kwargs = make_case((tokens, 64), torch.bfloat16, smooth_kind, seed=tokens, experts=1)
        return (x, kwargs.get("smooth_scales"), kwargs.get("group_index")), [(x, 0)]

    assert compile_once_across_tokens(fn, make_args) == 1


def test_compiled_pertensor_in_a_larger_function():
    def fn(x, w):
        y, scale, offset = qg.npu_dynamic_quant_asymmetric(torch.relu(x) + 1, quant_mode="pertensor")
        return (y.float() - offset) * scale @ w

    def make_args(tokens):
        x = torch.randn(tokens, 3, 32, generator=seeded(237)).to(torch.float16)
        return (x, torch.randn(32, 8, generator=seeded(238))), [(x, 0)]

    assert compile_once_across_tokens(fn, make_args) == 1
