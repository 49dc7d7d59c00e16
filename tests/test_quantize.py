import pytest
import torch
from helpers import assert_identical, assert_same_metadata, call_on_fakes, compile_once_across_tokens, portable_path
from hypothesis import given
from hypothesis import strategies as st
from reference import quantize_mul_reference, quantize_per_channel_oracle

import quant_graph as qg


def seeded(seed):
    """A generator of its own for each random tensor: the same values whatever runs first."""
    return torch.Generator().manual_seed(seed)

# The worked example in seeds/npu_quantize.md: float32 [2, 3, 12], scale 3, div_mode=False.
SEED_X = torch.tensor([
    [[-7.7834e-01, -1.0473e+00, -1.1155e+00, 1.2233e+00, -1.2271e+00, -2.5612e+00, -1.8274e-01, 2.8293e+00,
      1.9029e-01, -1.9333e+00, -4.9270e-01, -1.0650e+00],
     [-8.9416e-01, 3.1869e-02, -5.8144e-01, -4.9477e-01, 9.7323e-02, -3.8681e-01, 2.1969e-03, -6.3244e-01,
      7.1591e-01, -1.8587e-01, -1.3381e+00, -2.6253e-01],
     [1.8462e-02, 1.2397e-01, -9.0656e-01, -9.9280e-01, -4.4235e-02, 1.0623e+00, -9.8437e-02, 1.2941e+00,
      1.0805e+00, -1.7269e-01, -9.9205e-02, -6.1429e-01]],
    [[1.3678e+00, -2.7348e-01, -4.1354e-01, -9.4638e-01, 4.2792e-01, 8.0462e-01, 9.3584e-01, 6.3704e-01,
      1.1269e+00, -1.5329e+00, 5.8572e-01, -1.3966e+00],
     [3.5882e-01, 8.7029e-01, -1.3176e+00, 1.1601e+00, -3.6984e-01, 7.3642e-01, -1.0755e+00, 6.6557e-01,
      3.1149e+00, -6.8776e-01, -1.0913e+00, 4.4962e-01],
     [-1.2505e+00, 1.5474e+00, -7.4332e-02, -1.6657e+00, 1.3275e+00, 5.8914e-02, 8.4287e-01, -1.7109e+00,
      1.8256e-01, 3.2937e-01, 2.4875e+00, 1.3921e+00]]])
SEED_Y = torch.tensor([
    [[-2, -3, -3, 4, -4, -8, -1, 8, 1, -6, -1, -3],
     [-3, 0, -2, -1, 0, -1, 0, -2, 2, -1, -4, -1],
     [0, 0, -3, -3, 0, 3, 0, 4, 3, -1, 0, -2]],
    [[4, -1, -1, -3, 1, 2, 3, 2, 3, -5, 2, -4],
     [1, 3, -4, 3, -1, 2, -3, 2, 9, -2, -3, 1],
     [-4, 5, 0, -5, 4, 0, 3, -5, 1, 1, 7, 4]]], dtype=torch.int8)


def test_seed_example_float32(kernel_path):
    out = qg.npu_quantize(SEED_X, torch.tensor([3.0] * 12), None, torch.qint8, -1, False)
    assert torch.equal(out, SEED_Y)


def test_seed_example_bfloat16(kernel_path):
    x = torch.tensor([[[0.9609, 1.3281, -0.6172, 0.5469, -1.1797, -1.1719, -0.7422, 0.9727, -0.9062, -0.0815,
                        -0.8047, 1.0703]]], dtype=torch.bfloat16)
    out = qg.npu_quantize(x, torch.tensor([0.1] * 12).bfloat16(), None, torch.qint8, -1, False)
    assert torch.equal(out, torch.zeros(1, 1, 12, dtype=torch.int8))


def test_seed_graph_example_float16(kernel_path):
    # The seed's graph-mode example (float16 x, float16 scale 3, axis=1 -> last dim): its first row.
    x = torch.tensor([[0.2600, 0.6782, 0.5024, 0.9492, 0.6089, 0.7461, 1.5332, -0.2123, 0.6558, -0.8354, -0.5366,
                       -0.6821]], dtype=torch.float16)
    out = qg.npu_quantize(x, torch.tensor([3.0] * 12, dtype=torch.float16), None, torch.qint8, div_mode=False)
    assert out.tolist() == [[1, 2, 2, 3, 2, 2, 5, -1, 2, -3, -2, -2]]


@pytest.mark.parametrize("dtype", [torch.qint8, torch.quint8, torch.qint32])
@pytest.mark.parametrize("shape,axis", [((6, 10), 1), ((6, 10), 0), ((3, 4, 5), 1), ((3, 4, 5), -1),
                                        ((2, 3, 4, 5), 2), ((7,), 0)])
@pytest.mark.parametrize("with_zero_points", [False, True])
def test_div_mode_matches_quantize_per_channel(kernel_path, dtype, shape, axis, with_zero_points):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g) * 20
    channels = shape[axis]
    scales = torch.rand(channels, generator=g) * 0.5 + 0.01
    zero_points = None
    if with_zero_points:
        lo, hi = {torch.qint8: (-20, 20), torch.quint8: (0, 255), torch.qint32: (-1000, 1000)}[dtype]
        zp_dtype = {torch.qint8: torch.int8, torch.quint8: torch.uint8, torch.qint32: torch.int32}[dtype]
        zero_points = torch.randint(lo, hi, (channels,), generator=g).to(zp_dtype)
    out = qg.npu_quantize(x, scales, zero_points, dtype, axis, True)
    assert_identical(out, quantize_per_channel_oracle(x, scales, zero_points, dtype, axis))


def test_div_mode_ties_and_saturation_match_quantize_per_channel(kernel_path):
    # exact halves (x * 1/scale = k + 0.5) round to even; values far out of range saturate
    x = torch.tensor([[0.5, 1.5, 2.5, -0.5, -1.5, 1e9, -1e9, 127.5]])
    scales = torch.tensor([1.0])
    out = qg.npu_quantize(x.t().contiguous(), scales, None, torch.qint8, 1, True)
    assert_identical(out, quantize_per_channel_oracle(x.t(), scales, None, torch.qint8, 1))
    assert out.flatten().tolist() == [0, 2, 2, 0, -2, 127, -128, 127]


@pytest.mark.parametrize("shape,axis", [((4, 6), 1), ((4, 6), 0), ((2, 3, 4), 1)])
def test_div_mode_zero_point_is_added_before_rounding(kernel_path, shape, axis):
    # x * (1 / scale) = k + 0.5 exactly: rounding after adding an odd zero point decides the tie
    x = torch.randint(-20, 20, shape, generator=seeded(83)).float() + 0.5
    zero_points = torch.tensor([1, -3, 5, 2, 0, 7][:shape[axis]], dtype=torch.int32)
    scales = torch.ones(shape[axis])
    out = qg.npu_quantize(x, scales, zero_points, torch.qint8, axis, True)
    assert_identical(out, quantize_per_channel_oracle(x, scales, zero_points, torch.qint8, axis))


def test_div_mode_input_dtypes_and_bfloat16_parameters(kernel_path):
    g = torch.Generator().manual_seed(0)  # this seed draws an exact tie (x / scale = 6.5)
    x = (torch.randn(5, 8, generator=g) * 10).to(torch.bfloat16)
    scales = (torch.rand(8, generator=g) + 0.1).to(torch.bfloat16)
    out = qg.npu_quantize(x, scales, torch.full((8,), 3, dtype=torch.bfloat16), torch.qint8, -1)
    expected = quantize_per_channel_oracle(x, scales.float(), torch.full((8,), 3), torch.qint8, -1)
    assert_identical(out, expected)


@pytest.mark.parametrize("dtype", [torch.qint8, torch.quint4x2])
@pytest.mark.parametrize("axis", [-2, -1, 0, 1])
@pytest.mark.parametrize("in_dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("param_form", ["full", "one", "multi_dim"])
def test_mul_mode_matches_reference(kernel_path, dtype, axis, in_dtype, param_form):
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(3, 5, 16, generator=g) * 8).to(in_dtype)
    dim = 1 if axis == -2 else 2
    size = {"full": x.shape[dim], "one": 1, "multi_dim": x.shape[dim]}[param_form]
    scales = (torch.rand(size, generator=g) + 0.2).to(in_dtype)
    zero_points = torch.randn(size, generator=g).to(in_dtype)
    if param_form == "multi_dim":
        shape = [1, 1, 1]
        shape[dim] = size
        scales, zero_points = scales.reshape(shape), zero_points.reshape(shape)
    out = qg.npu_quantize(x, scales, zero_points, dtype, axis, False)
    assert_identical(out, quantize_mul_reference(x, scales, zero_points, dtype, axis))


def test_mul_mode_nan_inf_and_empty(kernel_path):
    x = torch.tensor([[float("nan"), float("inf"), -float("inf"), 1.0, 2.0, 3.0, 4.0, 100.0]])
    out = qg.npu_quantize(x, torch.tensor([1.0]), None, torch.qint8, -1, False)
    assert out.tolist() == [[0, 127, -128, 1, 2, 3, 4, 100]]
    packed = qg.npu_quantize(x, torch.tensor([1.0]), None, torch.quint4x2, -1, False)
    assert_identical(packed, quantize_mul_reference(x, torch.tensor([1.0]), None, torch.quint4x2, -1))
    empty = qg.npu_quantize(torch.empty(0, 16), torch.ones(16), None, torch.quint4x2, -1, False)
    assert empty.shape == (0, 2) and empty.dtype == torch.int32


def edge_values() -> torch.Tensor:
    """Every half-integer tie in and just outside int8's and uint8's ranges, with the float32
    neighbours on either side of each, the non-finite values, signed zeros, huge and tiny
    values: 1,700 float32 values, so a kernel's vector loop and its tail both meet them."""
    ties = torch.arange(-140.5, 270.0, 0.5)
    values = torch.cat([ties, torch.nextafter(ties, torch.tensor(-1e9)), torch.nextafter(ties, torch.tensor(1e9)),
                        torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e30, -1e30,
                                      torch.finfo(torch.float32).max, torch.finfo(torch.float32).tiny, 1e-45])])
    return values[torch.randperm(values.numel(), generator=seeded(91))]


@pytest.mark.parametrize("dtype", [torch.qint8, torch.quint8])
def test_byte_outputs_round_ties_to_even_and_saturate(kernel_path, dtype):
    # a scale of 1 puts the values themselves into the narrowing: y = round(x), NaN -> 0, saturated
    x = edge_values().reshape(1, -1)
    div_mode = dtype == torch.quint8  # div_mode=False writes int8 only
    out = qg.npu_quantize(x, torch.ones(1), None, dtype, -1, div_mode)
    lo, hi = (0, 255) if dtype == torch.quint8 else (-128, 127)
    expected = x.nan_to_num(nan=0.0).clamp(lo, hi).round().to(torch.uint8 if dtype == torch.quint8 else torch.int8)
    assert_identical(out, expected)


def float8_edge_values(dtype) -> torch.Tensor:
    """Every value of the float8 format and the midpoint (a tie) between each two neighbours,
    with the float32 neighbours of each midpoint, the subnormals' ties, values past the
    format's max, the non-finite values and signed zeros."""
    values = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(dtype).float()
    finite = values[values.isfinite()].unique()
    ties = (finite[1:] + finite[:-1]) / 2
    nudged = torch.cat([torch.nextafter(ties, torch.tensor(-1e9)), torch.nextafter(ties, torch.tensor(1e9))])
    extremes = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e30, -1e30, 1e-45, -1e-45])
    out = torch.cat([finite, ties, nudged, finite * 1.0625, extremes])
    return out[torch.randperm(out.numel(), generator=seeded(93))]


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_float8_outputs_are_torchs_conversion(kernel_path, dtype):
    # scale 1: y = x as the format holds it, NaN -> 0 and clamped to the format's range first
    x = float8_edge_values(dtype).reshape(1, -1)
    out = qg.npu_quantize(x, torch.ones(1), None, dtype, -1, False)
    top = torch.finfo(dtype).max
    expected = x.nan_to_num(nan=0.0).clamp(-top, top).to(dtype)
    assert_identical(out, expected)


def test_non_contiguous_input(kernel_path):
    x = torch.randn(16, 6, generator=seeded(129)).t() * 10
    assert not x.is_contiguous()
    scales = torch.rand(6, generator=seeded(131)) + 0.1
    assert_identical(qg.npu_quantize(x, scales, None, torch.qint8, 0, True),
                     qg.npu_quantize(x.contiguous(), scales, None, torch.qint8, 0, True))


@given(rows=st.integers(0, 30), cols=st.integers(1, 70), div_mode=st.booleans(), seed=st.integers(0, 999),
       in_dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
def test_native_and_portable_paths_agree(rows, cols, div_mode, seed, in_dtype):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(rows, cols, generator=g) * 30).to(in_dtype)
    axis = seed % 2 if div_mode else (-2 if seed % 2 else -1)
    size = x.shape[axis] if div_mode else x.shape[axis]
    scales = torch.rand(size, generator=g) + 0.05
    zp = torch.randint(-5, 5, (size,), generator=g).to(torch.int32) if div_mode else torch.randn(size, generator=g)
    if not div_mode:  # AscendQuantV3 takes float16/bfloat16 input only with scales of its dtype
        scales, zp = scales.to(in_dtype), zp.to(in_dtype)
    dtypes = (torch.qint8, torch.quint8, torch.qint32) if div_mode else (torch.qint8,) + (
        (torch.quint4x2,) if cols % 8 == 0 else ())
    for dtype in dtypes:
        fast = qg.npu_quantize(x, scales, zp, dtype, axis, div_mode)
        with portable_path():
            portable = qg.npu_quantize(x, scales, zp, dtype, axis, div_mode)
        assert_identical(fast, portable)


@pytest.mark.parametrize("args", [
    ((4, 8), (8,), torch.qint8, 1, True), ((4, 8), (4,), torch.quint8, 0, True), ((2, 4, 8), (4,), torch.qint32, 1,
                                                                                   True),
    ((4, 16), (16,), torch.qint8, -1, False), ((4, 16), (4,), torch.quint4x2, -2, False),
    ((2, 4, 16), (1, 4, 1), torch.qint8, -2, False)])
def test_opcheck(args):
    shape, scale_shape, dtype, axis, div_mode = args
    x = torch.randn(shape, generator=seeded(161))
    scales = torch.rand(scale_shape, generator=seeded(162)) + 0.1
    zp = torch.ones(scale_shape, dtype=torch.int32) if div_mode else torch.ones(scale_shape)
    torch.library.opcheck(torch.ops.quant_graph.npu_quantize, (x, scales, zp, dtype, axis, div_mode))


@given(lead=st.lists(st.integers(0, 6), min_size=1, max_size=3), cols8=st.integers(1, 4),
       div_mode=st.booleans(), int4=st.booleans())
def test_fake_matches_eager(lead, cols8, div_mode, int4):
    x = torch.randn(*lead, cols8 * 8, generator=seeded(170))
    dtype = (torch.qint32 if int4 else torch.quint8) if div_mode else (torch.quint4x2 if int4 else torch.qint8)
    scales = torch.rand(x.shape[-1], generator=seeded(172)) + 0.1
    assert_same_metadata(call_on_fakes(qg.npu_quantize, x, scales, None, dtype, -1, div_mode),
                         qg.npu_quantize(x, scales, None, dtype, -1, div_mode))


@pytest.mark.parametrize("div_mode,dtype,axis", [(True, torch.qint8, -1), (True, torch.quint8, 0),
                                                 (False, torch.qint8, -1), (False, torch.quint4x2, -2)])
def test_compiled_equals_eager_and_compiles_once(div_mode, dtype, axis):
    def fn(x, scales, zero_points):
        return qg.npu_quantize(x, scales, zero_points, dtype, axis, div_mode)

    def make_args(tokens):
        x = torch.randn(tokens, 4, 32, generator=seeded(184)) * 10
        size = x.shape[axis]
        zp = (torch.randint(0, 9, (size,), dtype=torch.int32, generator=seeded(186)) if div_mode
              else torch.randn(size, generator=seeded(187)))
        scales = torch.rand(size, generator=seeded(187)) + 0.1
        marks = [(x, 0)] + ([(scales, 0), (zp, 0)] if axis == 0 else [])
        return (x, scales, zp), marks

    assert compile_once_across_tokens(fn, make_args) == 1
