"""npu_dequant_swiglu_quant's torch_npu 2.13/2.14 additions: swiglu_mode 1 and 2, float16 x,
rank >= 2 and activate_dim, int32 group_index, activation_scale=None, float bias, dst_type
and round_mode; checked against hand-computed values, the independent reference, the other
kernel path, the fake kernel (torch_npu's meta shapes), opcheck and torch.compile."""

import math

import pytest
import torch
from helpers import assert_identical, assert_same_metadata, call_on_fakes, compile_once_across_tokens, portable_path
from hypothesis import given
from hypothesis import strategies as st
from reference import EXP_OF_PATH, dequant_swiglu_quant_reference

import quant_graph as qg

OP = torch.ops.quant_graph.npu_dequant_swiglu_quant


def make_case(shape, *, dtype=torch.int32, groups=None, static=False, bias=None, act=True, seed=0, counts=None):
    """x of ``shape`` (last dim split) and valid parameters for it."""
    g = torch.Generator().manual_seed(seed)
    *lead, width = shape
    tokens, hidden = math.prod(lead), width // 2
    kwargs = {"quant_mode": 0 if static else 1}
    if dtype == torch.int32:
        x = torch.randint(-300, 300, shape, generator=g, dtype=torch.int32)
        kwargs["weight_scale"] = torch.rand(groups or 1, width, generator=g) * 0.02
        if act:
            kwargs["activation_scale"] = torch.rand(*lead, generator=g) * 0.05 + 0.01
    else:
        x = (torch.randn(shape, generator=g) * 4).to(dtype)
    if bias is not None:
        kwargs["bias"] = (torch.randint(-50, 50, (width,), generator=g, dtype=torch.int32) if bias == torch.int32
                          else torch.randn(width, generator=g).to(bias))
    kwargs["quant_scale"] = torch.rand(groups or 1, hidden, generator=g) + (0.02 if static else 0.5)
    if static:
        kwargs["quant_offset"] = torch.randn(1, hidden, generator=g)
    if groups is not None:
        if counts is None:
            used = tokens - tokens // 5
            cuts = torch.randint(0, used + 1, (groups - 1,), generator=g).sort().values
            counts = torch.diff(torch.cat([cuts, torch.tensor([used])]), prepend=torch.tensor([0]))
        kwargs["group_index"] = torch.as_tensor(counts, dtype=torch.int64)
    return x, kwargs


def assert_close(out, expected):
    """Across the two kernel paths only (libm expf vs torch exp): y within 1 on under 1% of
    elements, scale to 1e-5. Against the reference each path is exact (assert_matches_reference)."""
    (y, scale), (y_ref, scale_ref) = out, expected
    assert y.dtype == torch.int8 and y.shape == y_ref.shape and scale.shape == scale_ref.shape
    if y.numel():
        diff = (y.int() - y_ref.int()).abs()
        assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01, (diff.max(), (diff > 0).float().mean())
    torch.testing.assert_close(scale, scale_ref, rtol=1e-5, atol=0)


def assert_matches_reference(kernel_path, out, x, **kwargs):
    """Bit for bit against the reference computed with the exp of the path under test."""
    assert_identical(out, dequant_swiglu_quant_reference(x, exp=EXP_OF_PATH[kernel_path], **kwargs))


def gpt_oss(gate, linear, limit=7.0, alpha=1.702, bias=1.0):
    gate = min(gate, limit)
    linear = max(-limit, min(linear, limit))
    return gate / (1 + math.exp(-alpha * gate)) * (linear + bias)


def test_hand_computed_mode_1_interleaved(kernel_path):
    # even columns gate [1, 8] -> [1, 7]; odd columns linear [2, -9] -> [2, -7]
    x = torch.tensor([[1.0, 2.0, 8.0, -9.0]], dtype=torch.bfloat16)
    out = [gpt_oss(1.0, 2.0), gpt_oss(8.0, -9.0)]  # [2.5374, -41.9997]
    s = max(abs(v) for v in out) / 127
    for activate_left in (False, True):  # mode 1 ignores activate_left
        y, scale = qg.npu_dequant_swiglu_quant(x, quant_mode=1, swiglu_mode=1, activate_left=activate_left)
        assert y.tolist() == [[round(out[0] / s), -127]] == [[8, -127]]
        assert scale.item() == pytest.approx(s, rel=1e-6)


@pytest.mark.parametrize("activate_left", [False, True])
def test_hand_computed_mode_2_halves(kernel_path, activate_left):
    # A = [1, 8], B = [2, -9]; clamp_limit 5, glu_alpha 1, glu_bias 0.5, static quant_scale 0.1
    x = torch.tensor([[1.0, 8.0, 2.0, -9.0]], dtype=torch.float16)
    a, b = [1.0, 8.0], [2.0, -9.0]
    gate, linear = (a, b) if activate_left else (b, a)
    out = [gpt_oss(g, u, 5.0, 1.0, 0.5) for g, u in zip(gate, linear, strict=True)]
    y, scale = qg.npu_dequant_swiglu_quant(x, quant_scale=torch.tensor([[0.1, 0.1]]), swiglu_mode=2,
                                           activate_left=activate_left, clamp_limit=5.0, glu_alpha=1.0, glu_bias=0.5)
    assert y.tolist() == [[max(-128, min(127, round(v / 0.1))) for v in out]]
    assert scale.tolist() == [0.0]


def test_hand_computed_float_bias_enters_after_dequant(kernel_path):
    # (x * weight_scale * activation_scale) + bias = [0.5, 1, 1.5, 2] + [1, -1, 0.5, 0]
    x = torch.tensor([[10, 20, 30, 40]], dtype=torch.int32)
    v = [1.5, 0.0, 2.0, 2.0]
    out = [v[0] / (1 + math.exp(-v[0])) * v[2], v[1] / (1 + math.exp(-v[1])) * v[3]]
    for bias_dtype in (torch.float32, torch.float16, torch.bfloat16):
        y, _ = qg.npu_dequant_swiglu_quant(
            x, weight_scale=torch.full((4,), 0.1), activation_scale=torch.tensor([0.5]),
            bias=torch.tensor([1.0, -1.0, 0.5, 0.0]).to(bias_dtype), quant_scale=torch.tensor([[0.02, 0.02]]),
            activate_left=True)
        assert y.tolist() == [[round(out[0] / 0.02), round(out[1] / 0.02)]] == [[123, 0]]


CASES = {
    "int32 dynamic": {}, "int32 static": {"static": True}, "int32 grouped": {"groups": 3},
    "int32 int bias": {"bias": torch.int32}, "int32 f32 bias": {"bias": torch.float32},
    "int32 bf16 bias static": {"bias": torch.bfloat16, "static": True}, "int32 f16 bias": {"bias": torch.float16},
    "int32 no activation_scale": {"act": False}, "int32 grouped no activation_scale": {"act": False, "groups": 2},
    "fp16 dynamic": {"dtype": torch.float16}, "fp16 static": {"dtype": torch.float16, "static": True},
    "fp16 grouped": {"dtype": torch.float16, "groups": 4}, "bf16 dynamic": {"dtype": torch.bfloat16},
}


@pytest.mark.parametrize("swiglu_mode", [0, 1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(kernel_path, swiglu_mode, case):
    x, kwargs = make_case((53, 128), **CASES[case])
    for flags in ({"activate_left": True}, {"activate_left": False, "clamp_limit": 2.5, "glu_alpha": 0.75,
                                            "glu_bias": -0.5}):
        out = qg.npu_dequant_swiglu_quant(x, swiglu_mode=swiglu_mode, **flags, **kwargs)
        assert_matches_reference(kernel_path, out, x, swiglu_mode=swiglu_mode, **flags, **kwargs)


def test_mode_1_ignores_activate_left_and_mode_2_is_mode_0_halves(kernel_path):
    x, kwargs = make_case((20, 128), groups=2, seed=1)
    left = qg.npu_dequant_swiglu_quant(x, swiglu_mode=1, activate_left=True, **kwargs)
    assert_identical(qg.npu_dequant_swiglu_quant(x, swiglu_mode=1, activate_left=False, **kwargs), left)
    # mode 2 on x with its halves swapped and activate_left flipped is the same computation
    halves = torch.cat(x.chunk(2, dim=-1)[::-1], dim=-1)
    swapped = {**kwargs, "weight_scale": torch.cat(kwargs["weight_scale"].chunk(2, dim=-1)[::-1], dim=-1)}
    assert_identical(qg.npu_dequant_swiglu_quant(halves, swiglu_mode=2, activate_left=False, **swapped),
                     qg.npu_dequant_swiglu_quant(x, swiglu_mode=2, activate_left=True, **kwargs))


@pytest.mark.parametrize("act_shape", ["lead", "lead+1"])
def test_rank_3_x_is_its_flattened_rows(kernel_path, act_shape):
    x, kwargs = make_case((3, 7, 128), groups=2, counts=[9, 8], seed=5)
    if act_shape == "lead+1":
        kwargs["activation_scale"] = kwargs["activation_scale"].unsqueeze(-1)
    y, scale = qg.npu_dequant_swiglu_quant(x, swiglu_mode=1, **kwargs)
    assert y.shape == (3, 7, 64) and scale.shape == (3, 7)
    flat = {**kwargs, "activation_scale": kwargs["activation_scale"].reshape(21)}
    y2, scale2 = qg.npu_dequant_swiglu_quant(x.reshape(21, 128), swiglu_mode=1, **flat)
    assert_identical((y.reshape(21, 64), scale.reshape(21)), (y2, scale2))
    assert_matches_reference(kernel_path, (y, scale), x, swiglu_mode=1, **kwargs)
    assert torch.equal(y.reshape(21, 64)[17:], torch.zeros(4, 64, dtype=torch.int8))


@pytest.mark.parametrize("shape,dim", [((6, 4, 32), 0), ((6, 4, 32), 1), ((6, 4, 32), -2), ((8, 16), 0),
                                       ((2, 4, 6, 16), 2)])
@pytest.mark.parametrize("swiglu_mode", [0, 1, 2])
def test_activate_dim_not_last_splits_that_dim(kernel_path, shape, dim, swiglu_mode):
    g = torch.Generator().manual_seed(len(shape) + dim)
    x = torch.randint(-300, 300, shape, generator=g, dtype=torch.int32)
    kwargs = {"weight_scale": torch.rand(shape[-1], generator=g) * 0.02,
              "activation_scale": torch.rand(shape[:-1], generator=g) * 0.05, "bias": torch.randn(shape[-1]),
              "quant_scale": torch.tensor([0.01]), "quant_offset": torch.tensor([3.0]), "activate_dim": dim,
              "swiglu_mode": swiglu_mode, "activate_left": True}
    y, scale = qg.npu_dequant_swiglu_quant(x, **kwargs)
    split = dim % len(shape)
    expected_y = tuple(s // 2 if i == split else s for i, s in enumerate(shape))  # torch_npu's meta
    assert y.shape == expected_y and scale.shape == expected_y[:-1]
    assert_matches_reference(kernel_path, (y, scale), x, **kwargs)
    assert_same_metadata(call_on_fakes(qg.npu_dequant_swiglu_quant, x, **kwargs), (y, scale))


def test_default_arguments_spelled_out_change_nothing(kernel_path):
    x, kwargs = make_case((2, 5, 128), groups=2, counts=[4, 3])
    default = qg.npu_dequant_swiglu_quant(x, **kwargs)
    for spelled in ({"dst_type": 1}, {"dst_type": torch.int8}, {"round_mode": 0}, {"activate_dim": -1},
                    {"activate_dim": 2}, {"swiglu_mode": 0, "clamp_limit": 7.0, "glu_alpha": 1.702, "glu_bias": 1.0},
                    {"swiglu_mode": 0, "clamp_limit": 1.0, "glu_alpha": 3.0, "glu_bias": -2.0}):
        assert_identical(qg.npu_dequant_swiglu_quant(x, **spelled, **kwargs), default)


def test_int32_group_index_is_int64_group_index(kernel_path):
    x, kwargs = make_case((30, 128), groups=3, counts=[10, 0, 15])
    expected = qg.npu_dequant_swiglu_quant(x, swiglu_mode=1, **kwargs)
    kwargs["group_index"] = kwargs["group_index"].int()
    assert_identical(qg.npu_dequant_swiglu_quant(x, swiglu_mode=1, **kwargs), expected)


def test_no_activation_scale_is_a_scale_of_one(kernel_path):
    x, kwargs = make_case((9, 64), act=False)
    ones = qg.npu_dequant_swiglu_quant(x, activation_scale=torch.ones(9), swiglu_mode=2, **kwargs)
    assert_identical(qg.npu_dequant_swiglu_quant(x, swiglu_mode=2, **kwargs), ones)


def test_non_finite_in_mode_1(kernel_path):
    # rows [gate, linear] pairs: +inf gate clamps to the limit, +-inf linear to +-limit,
    # -inf gate gives -inf / inf = NaN, a NaN stays NaN: its row's scale is NaN, y 0 there
    inf, nan = float("inf"), float("nan")
    x = torch.tensor([[inf, 1.0, 1.0, inf], [1.0, -inf, 2.0, 0.0], [-inf, 1.0, 1.0, 1.0], [nan, 1.0, 1.0, 1.0]],
                     dtype=torch.bfloat16)
    y, scale = qg.npu_dequant_swiglu_quant(x, quant_mode=1, swiglu_mode=1)
    row0 = [gpt_oss(7.0, 1.0), gpt_oss(1.0, 7.0)]
    row1 = [gpt_oss(1.0, -7.0), gpt_oss(2.0, 0.0)]
    for row, expected in ((0, row0), (1, row1)):
        s = max(abs(v) for v in expected) / 127
        assert scale[row].item() == pytest.approx(s, rel=1e-6)
        assert y[row].tolist() == [round(v / s) for v in expected]
    assert scale[2:].isnan().all() and y[2:].eq(0).all()


@given(shape=st.sampled_from([(0, 128), (1, 128), (17, 128), (2, 9, 128), (40, 256)]), groups=st.sampled_from(
    [None, 1, 3]), dtype=st.sampled_from([torch.int32, torch.float16, torch.bfloat16]), mode=st.sampled_from([0, 1, 2]),
       left=st.booleans(), bias=st.sampled_from([None, torch.int32, torch.float16]), act=st.booleans(),
       seed=st.integers(0, 99))
def test_native_and_portable_paths_agree(shape, groups, dtype, mode, left, bias, act, seed):
    if dtype != torch.int32 or groups is not None:
        bias = None
    x, kwargs = make_case(shape, dtype=dtype, groups=groups, bias=bias, act=act, seed=seed)
    glu = {"swiglu_mode": mode, "activate_left": left, "clamp_limit": 3.0 + seed / 10}
    fast = qg.npu_dequant_swiglu_quant(x, **glu, **kwargs)
    with portable_path():
        portable = qg.npu_dequant_swiglu_quant(x, **glu, **kwargs)
    assert_close(fast, portable)


@given(shape=st.sampled_from([(0, 128), (5, 128), (2, 3, 128)]), dtype=st.sampled_from([torch.int32, torch.float16]),
       mode=st.sampled_from([0, 1, 2]), groups=st.sampled_from([None, 2]))
def test_fake_matches_eager(shape, dtype, mode, groups):
    x, kwargs = make_case(shape, dtype=dtype, groups=groups, counts=None if groups is None else [0, 0])
    assert_same_metadata(call_on_fakes(qg.npu_dequant_swiglu_quant, x, swiglu_mode=mode, **kwargs),
                         qg.npu_dequant_swiglu_quant(x, swiglu_mode=mode, **kwargs))


@pytest.mark.parametrize("case", [
    ({"dtype": torch.float16}, {"swiglu_mode": 1, "clamp_limit": 3.0}),
    ({"bias": torch.bfloat16, "act": False}, {"swiglu_mode": 2, "glu_alpha": 0.5}),
    ({"groups": 2}, {"swiglu_mode": 1, "glu_bias": 0.0}),
], ids=str)
def test_opcheck(case):
    opts, flags = case
    x, kwargs = make_case((3, 4, 128), **opts)
    torch.library.opcheck(OP, (x,), {**kwargs, **flags})


def test_opcheck_activate_dim():
    x = torch.randint(-9, 9, (6, 2, 32), dtype=torch.int32)
    torch.library.opcheck(OP, (x,), {"weight_scale": torch.rand(32), "quant_scale": torch.tensor([0.1]),
                                     "activate_dim": 0, "swiglu_mode": 1})


def test_mode_1_compiles_once_across_token_counts():
    def fn(x, kwargs):
        return qg.npu_dequant_swiglu_quant(x, swiglu_mode=1, **kwargs)

    def make_args(tokens):
        x, kwargs = make_case((tokens, 128), seed=tokens, bias=torch.float32)
        return (x, kwargs), [(x, 0), (kwargs["activation_scale"], 0)]

    assert compile_once_across_tokens(fn, make_args) == 1


XI = torch.randint(-5, 5, (6, 128), dtype=torch.int32)
OK = {"weight_scale": torch.ones(128), "activation_scale": torch.ones(6), "quant_scale": torch.ones(1, 64)}
SPLIT0 = {"weight_scale": torch.ones(128), "quant_scale": torch.ones(1), "activate_dim": 0}
NAN, INF = float("nan"), float("inf")

BAD_INPUT = [
    ("x rank 9", XI.reshape(6, *[1] * 7, 128), {**OK, "activation_scale": torch.ones(6, *[1] * 7)}, ValueError,
     ["x", "rank 2 to 8", "(6, 1, 1, 1, 1, 1, 1, 1, 128)"]),
    ("dst_type float8 code", XI, {**OK, "dst_type": 291}, NotImplementedError,
     ["dst_type", "291", "float8_e5m2", "Ascend950"]),
    ("dst_type float8 dtype", XI, {**OK, "dst_type": torch.float8_e4m3fn}, NotImplementedError,
     ["dst_type", "24", "float8_e4m3fn", "Ascend950"]),
    ("dst_type hifloat8", XI, {**OK, "dst_type": 290}, NotImplementedError, ["dst_type", "290", "hifloat8"]),
    ("dst_type fp4", XI, {**OK, "dst_type": 296}, NotImplementedError, ["dst_type", "296", "float4_e2m1fn_x2"]),
    ("dst_type uint8", XI, {**OK, "dst_type": 0}, ValueError, ["dst_type", "int8", "0 (uint8)"]),
    ("dst_type qint8", XI, {**OK, "dst_type": 12}, ValueError, ["dst_type", "int8", "12 (qint8)"]),
    ("dst_type unknown code", XI, {**OK, "dst_type": 999}, ValueError, ["dst_type", "999"]),
    ("round_mode round", XI, {**OK, "round_mode": 1}, ValueError, ["round_mode", "rint", "1 (round)"]),
    ("round_mode trunc", XI, {**OK, "round_mode": 4}, ValueError, ["round_mode", "rint", "4 (trunc)"]),
    ("round_mode out of range", XI, {**OK, "round_mode": 5}, ValueError, ["round_mode", "0-4", "got 5"]),
    ("activate_dim past rank", XI, {**OK, "activate_dim": 2}, ValueError, ["activate_dim", "[-2, 1]", "got 2"]),
    ("activate_dim below -rank", XI, {**OK, "activate_dim": -3}, ValueError, ["activate_dim", "[-2, 1]", "got -3"]),
    ("swiglu_mode 3", XI, {**OK, "swiglu_mode": 3}, ValueError, ["swiglu_mode", "got 3"]),
    ("swiglu_mode -1", XI, {**OK, "swiglu_mode": -1}, ValueError, ["swiglu_mode", "got -1"]),
    ("clamp_limit zero", XI, {**OK, "clamp_limit": 0.0}, ValueError, ["clamp_limit", "> 0", "got 0.0"]),
    ("clamp_limit negative", XI, {**OK, "clamp_limit": -1.0}, ValueError, ["clamp_limit", "> 0", "got -1.0"]),
    ("clamp_limit inf", XI, {**OK, "clamp_limit": INF}, ValueError, ["clamp_limit", "finite", "got inf"]),
    ("clamp_limit nan", XI, {**OK, "clamp_limit": NAN}, ValueError, ["clamp_limit", "finite", "got nan"]),
    ("glu_alpha inf", XI, {**OK, "glu_alpha": -INF}, ValueError, ["glu_alpha", "finite", "got -inf"]),
    ("glu_bias nan", XI, {**OK, "glu_bias": NAN}, ValueError, ["glu_bias", "finite", "got nan"]),
    ("split dim odd", XI[:5], {**SPLIT0, "activation_scale": torch.ones(5)}, ValueError,
     ["split dim 0", "even", "got 5"]),
    ("split dim with group_index", XI, {**SPLIT0, "group_index": torch.tensor([6]), "quant_mode": 1}, ValueError,
     ["activate_dim 0", "group_index"]),
    ("split dim dynamic", XI, {**SPLIT0, "quant_mode": 1}, ValueError, ["activate_dim 0", "quant_mode=0", "got 1"]),
    ("split dim width", torch.ones(2, 5122, dtype=torch.int32), {**SPLIT0, "weight_scale": torch.ones(5122)},
     ValueError, ["activate_dim 0", "5120", "got 5122"]),
    ("split dim quant_scale", XI, {**SPLIT0, "quant_scale": torch.ones(1, 64)}, ValueError,
     ["quant_scale", "[1]", "(1, 64)"]),
    ("split dim quant_offset", XI, {**SPLIT0, "quant_offset": torch.ones(2)}, ValueError,
     ["quant_offset", "[1]", "(2,)"]),
    ("activation_scale rank 3", XI.reshape(2, 3, 128), {**OK, "activation_scale": torch.ones(6)}, ValueError,
     ["activation_scale", "(2, 3)", "T=6", "got (6,)"]),
    ("activation_scale trailing 2", XI.reshape(2, 3, 128), {**OK, "activation_scale": torch.ones(2, 3, 2)},
     ValueError, ["activation_scale", "trailing 1", "got (2, 3, 2)"]),
    ("float x with activation_scale", XI.half(), {"activation_scale": torch.ones(6), "quant_scale": OK["quant_scale"]},
     ValueError, ["activation_scale", "int32 x", "torch.float16"]),
    ("float x with bias", XI.bfloat16(), {"bias": torch.ones(128), "quant_scale": OK["quant_scale"]}, ValueError,
     ["bias", "int32 x", "torch.bfloat16"]),
    ("bias width", XI, {**OK, "bias": torch.ones(64, dtype=torch.float16)}, ValueError, ["bias", "128", "got 64"]),
]


# BAD_INPUT runs in test_registry.py (eager and fake kernel) and in the validation-coverage guard.


def test_bad_input_baselines_pass():
    """Each case above breaks one rule of these calls."""
    qg.npu_dequant_swiglu_quant(XI, **OK)
    qg.npu_dequant_swiglu_quant(XI, **SPLIT0)
    qg.npu_dequant_swiglu_quant(XI.reshape(2, 3, 128), **{**OK, "activation_scale": torch.ones(2, 3, 1)})


def test_one_group_takes_one_dimensional_tables(kernel_path):
    # op-plugin's own tests pass weight_scale [2H] and quant_scale [H] with group_index=[T]
    x, kwargs = make_case((12, 128), groups=1, counts=[10])
    flat = {**kwargs, "weight_scale": kwargs["weight_scale"].reshape(128), "quant_scale": kwargs["quant_scale"][0]}
    assert_identical(qg.npu_dequant_swiglu_quant(x, swiglu_mode=1, **flat),
                     qg.npu_dequant_swiglu_quant(x, swiglu_mode=1, **kwargs))
    two = {**flat, "group_index": torch.tensor([4, 6])}
    with pytest.raises(ValueError, match=r"1-D weight_scale is one row shared by all rows; with group_index it must "
                                         r"be \[2, 128\], got shape \(128,\)"):
        qg.npu_dequant_swiglu_quant(x, **two)
