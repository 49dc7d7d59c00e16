import ctypes
import math

import pytest
import torch
from helpers import assert_identical, assert_same_metadata, call_on_fakes, compile_once_across_tokens, portable_path
from hypothesis import given
from hypothesis import strategies as st
from reference import EXP_OF_PATH, dequant_swiglu_quant_reference, kernel_expf

import quant_graph as qg
from quant_graph import native


def make_case(tokens, hidden, *, groups=None, dtype=torch.int32, bias=False, quant_offset=False, static=False,
              seed=0, counts=None):
    g = torch.Generator().manual_seed(seed)
    kwargs = {"quant_mode": 0 if static else 1}
    if dtype == torch.int32:
        x = torch.randint(-300, 300, (tokens, 2 * hidden), generator=g, dtype=torch.int32)
        rows = groups or 1
        kwargs["weight_scale"] = torch.rand(rows, 2 * hidden, generator=g) * 0.02
        kwargs["activation_scale"] = torch.rand(tokens, generator=g) * 0.05 + 0.01
    else:
        x = (torch.randn(tokens, 2 * hidden, generator=g) * 2).to(torch.bfloat16)
    if bias:
        kwargs["bias"] = torch.randint(-50, 50, (2 * hidden,), generator=g, dtype=torch.int32)
    kwargs["quant_scale"] = torch.rand(groups or 1, hidden, generator=g) + (0.5 if not static else 0.02)
    if quant_offset:
        kwargs["quant_offset"] = torch.randn(1, hidden, generator=g)
    if groups is not None:
        if counts is None:
            used = tokens - tokens // 5  # leave some rows past the groups
            cuts = torch.randint(0, used + 1, (groups - 1,), generator=g).sort().values
            ends = torch.cat([cuts, torch.tensor([used])])
            counts = torch.diff(ends, prepend=torch.tensor([0]))
        kwargs["group_index"] = torch.as_tensor(counts, dtype=torch.int64)
    return x, kwargs


# exp as each kernel path computes it: libm's expf in C, torch.exp on the portable path.
# With that one primitive matched, y and scale are bit-exact (test_exact_numerics.py bounds
# how far the two exps move results apart).
def assert_matches_reference(out, kernel_path, x, **kwargs):
    assert_identical(out, dequant_swiglu_quant_reference(x, exp=EXP_OF_PATH[kernel_path], **kwargs))


def test_hand_computed_bfloat16_dynamic(kernel_path):
    # A = [2, -1], B = [1, 4]; activate_left=False: silu(B) * A
    x = torch.tensor([[2.0, -1.0, 1.0, 4.0]], dtype=torch.bfloat16)
    y, scale = qg.npu_dequant_swiglu_quant(x, quant_mode=1)
    silu = torch.tensor([1.0, 4.0]) / (1 + torch.exp(-torch.tensor([1.0, 4.0])))
    out = silu * torch.tensor([2.0, -1.0])
    s = out.abs().max() / 127
    assert scale.tolist() == [s.item()]
    assert y.tolist() == [torch.round(out / s).int().tolist()]


def test_hand_computed_int32_static(kernel_path):
    # dequant: [10, 20, 30, 40] * 0.1 * 0.5 = [0.5, 1, 1.5, 2]; left: silu([0.5, 1]) * [1.5, 2]
    x = torch.tensor([[10, 20, 30, 40]], dtype=torch.int32)
    y, scale = qg.npu_dequant_swiglu_quant(
        x, weight_scale=torch.full((4,), 0.1), activation_scale=torch.tensor([0.5]),
        quant_scale=torch.tensor([[0.01, 0.02]]), quant_offset=torch.tensor([[1.0, -2.0]]), activate_left=True)
    a = torch.tensor([10.0, 20.0]) * 0.1 * 0.5
    out = a / (1 + torch.exp(-a)) * (torch.tensor([30.0, 40.0]) * 0.1 * 0.5)
    assert y.tolist() == [torch.round(out / torch.tensor([0.01, 0.02]) + torch.tensor([1.0, -2.0])).int().tolist()]
    assert scale.tolist() == [0.0]


@pytest.mark.parametrize("activate_left", [False, True])
@pytest.mark.parametrize("case", [
    {"dtype": torch.int32}, {"dtype": torch.int32, "bias": True}, {"dtype": torch.bfloat16},
    {"dtype": torch.int32, "static": True}, {"dtype": torch.int32, "static": True, "quant_offset": True,
                                             "bias": True},
    {"dtype": torch.bfloat16, "static": True}, {"dtype": torch.int32, "groups": 4},
    {"dtype": torch.bfloat16, "groups": 3}], ids=str)
def test_matches_reference(kernel_path, activate_left, case):
    x, kwargs = make_case(53, 128, **case)
    out = qg.npu_dequant_swiglu_quant(x, activate_left=activate_left, **kwargs)
    assert_matches_reference(out, kernel_path, x, activate_left=activate_left, **kwargs)


def test_seed_example_layout(kernel_path):
    # seeds: weight_scale [2H] 1-D, activation_scale [T, 1], quant_scale [1, H], dynamic
    g = torch.Generator().manual_seed(3)
    x = torch.randint(-10, 10, (64, 256), generator=g, dtype=torch.int32)
    kwargs = {"weight_scale": torch.randn(256, generator=g), "activation_scale": torch.randn(64, 1, generator=g),
              "quant_scale": torch.randn(1, 128, generator=g), "quant_mode": 1}
    out = qg.npu_dequant_swiglu_quant(x, **kwargs)
    assert_matches_reference(out, kernel_path, x, **kwargs)


def test_rows_past_the_groups_are_zero(kernel_path):
    x, kwargs = make_case(20, 64, groups=3, counts=[4, 0, 6])
    y, scale = qg.npu_dequant_swiglu_quant(x, **kwargs)
    assert torch.equal(y[10:], torch.zeros(10, 64, dtype=torch.int8)) and torch.equal(scale[10:], torch.zeros(10))
    assert (scale[:10] > 0).all()
    assert_matches_reference((y, scale), kernel_path, x, **kwargs)


def test_zero_tokens_and_zero_rows(kernel_path):
    x, kwargs = make_case(0, 64, groups=2, counts=[0, 0])
    y, scale = qg.npu_dequant_swiglu_quant(x, **kwargs)
    assert y.shape == (0, 64) and scale.shape == (0,)
    y, scale = qg.npu_dequant_swiglu_quant(torch.zeros(3, 8, dtype=torch.bfloat16), quant_mode=1)
    assert torch.equal(y, torch.zeros(3, 4, dtype=torch.int8)) and scale.tolist() == [0.0] * 3


def test_nan_never_reaches_the_cast(kernel_path):
    x = torch.tensor([[float("nan"), 1.0, 1.0, 1.0], [1.0, 2.0, float("inf"), 1.0]], dtype=torch.bfloat16)
    y, scale = qg.npu_dequant_swiglu_quant(x, quant_mode=1)
    assert y[0].tolist() == [0, 0]


@given(tokens=st.integers(0, 40), hidden64=st.integers(1, 3), groups=st.integers(1, 4), seed=st.integers(0, 99),
       bf16=st.booleans(), left=st.booleans())
def test_native_and_portable_paths_agree(tokens, hidden64, groups, seed, bf16, left):
    x, kwargs = make_case(tokens, 64 * hidden64, groups=groups, dtype=torch.bfloat16 if bf16 else torch.int32,
                          seed=seed)
    fast = qg.npu_dequant_swiglu_quant(x, activate_left=left, **kwargs)
    with portable_path():
        portable = qg.npu_dequant_swiglu_quant(x, activate_left=left, **kwargs)
    assert_matches_reference(fast, "native", x, activate_left=left, **kwargs)
    assert_matches_reference(portable, "portable", x, activate_left=left, **kwargs)


@pytest.mark.parametrize("case", [{"dtype": torch.int32, "bias": True}, {"dtype": torch.int32, "groups": 2},
                                  {"dtype": torch.bfloat16, "static": True, "quant_offset": True}], ids=str)
def test_opcheck(case):
    x, kwargs = make_case(12, 64, **case)
    torch.library.opcheck(torch.ops.quant_graph.npu_dequant_swiglu_quant, (x,), kwargs)


@given(tokens=st.integers(0, 9), groups=st.sampled_from([None, 1, 3]), bf16=st.booleans())
def test_fake_matches_eager(tokens, groups, bf16):
    x, kwargs = make_case(tokens, 64, groups=groups, dtype=torch.bfloat16 if bf16 else torch.int32)
    assert_same_metadata(call_on_fakes(qg.npu_dequant_swiglu_quant, x, **kwargs),
                         qg.npu_dequant_swiglu_quant(x, **kwargs))


@pytest.mark.parametrize("case", [{"dtype": torch.int32, "groups": 4}, {"dtype": torch.int32, "static": True}],
                         ids=str)
def test_compiled_equals_eager_and_compiles_once(case):
    def fn(x, kwargs):
        return qg.npu_dequant_swiglu_quant(x, **kwargs)

    def make_args(tokens):
        x, kwargs = make_case(tokens, 64, seed=tokens, **case)
        if "group_index" in kwargs:
            kwargs["group_index"] = torch.tensor([tokens // 2, 0, tokens - tokens // 2 - tokens // 4, tokens // 4])
        return (x, kwargs), [(x, 0), (kwargs["activation_scale"], 0)]

    assert compile_once_across_tokens(fn, make_args) == 1


def test_the_kernels_exp_is_its_formula_and_within_one_ulp():
    """qg_expf, the exp inside every native SwiGLU row, against kernel_expf bit for bit over its
    edges (the clamps at -110 and 90, the infinities, NaN, -0.0, subnormal results) and a dense
    sweep; and against float64's exp within 1 ulp where the result is normal."""
    lib = native.library()
    assert lib is not None, native.status()
    lib.qg_expf_row.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    edges = [float("nan"), float("inf"), float("-inf"), -0.0, 0.0, -110.0, -109.99, -110.01, 90.0, 89.99, 90.01,
             88.72, 88.73, -87.33, -87.34, -103.97, -104.0, 1e-30, -1e-30, 3.4e38, -3.4e38, 0.5 * math.log(2)]
    x = torch.cat([torch.tensor(edges), torch.linspace(-120.0, 100.0, 200_001),
                   torch.randn(10_000, generator=torch.Generator().manual_seed(0)) * 30]).float()
    y = torch.empty_like(x)
    lib.qg_expf_row(y.data_ptr(), x.data_ptr(), x.numel())
    assert torch.equal(y.view(torch.int32), kernel_expf(x).view(torch.int32))
    normal = (x > -87.3) & (x < 88.7)
    exact = torch.exp(x[normal].double())
    ulp = (exact.float().nextafter(torch.tensor(float("inf"))) - exact.float()).double()
    assert ((y[normal].double() - exact).abs() <= ulp).all()
