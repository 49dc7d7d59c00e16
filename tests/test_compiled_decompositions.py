"""The quant_graph backend's inductor path compiles the dynamic quant ops and npu_quantize
from their decomposition (``QuantOp.decompose``): up to the size switch the compiled graph
calls no quant op kernel for the decomposed modes, past it the kernel; it gives eager's
outputs bit for bit (NaN where NaN) either way, keeps the other modes as kernel calls, and
leaves the GE graph (and the NPU path's graph) with the fused op."""

import sys

import pytest
import torch
from helpers import assert_identical
from torch._dynamo.testing import CompileCounterWithBackend

import quant_graph as qg
from quant_graph._registry import OPS, fused_ge_types
from quant_graph.backend import FUSED_UP_TO_ELEMENTS
from quant_graph.converters.ge_graph import read_graphs


def quant_op_calls(fn, *args):
    """(fn's outputs, how many calls reached a quant op's kernel): the extern kernels
    inductor's code calls, never what it fused into its own loops."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        outputs = fn(*args)
    return outputs, sum(event.name.split("::")[0] in ("quant_graph", "npu") for event in profile.events())


def run_compiled(fn, *args, backend="quant_graph"):
    """(compiled outputs, quant op kernel calls they took) of one fresh dynamic compile."""
    torch._dynamo.reset()
    compiled = torch.compile(fn, backend=backend, dynamic=True, fullgraph=True)
    compiled(*args)  # compiles before the count
    return quant_op_calls(compiled, *args)


def with_specials(x):
    """x with a row holding NaN, one holding +inf, one holding -inf and one all zeros."""
    x = x.clone()
    rows = x.view(-1, x.shape[-1])
    for row, value in enumerate((float("nan"), float("inf"), float("-inf"))):
        if row < rows.shape[0]:
            rows[row, row % rows.shape[1]] = value
    if rows.shape[0] > 3:
        rows[3] = 0
    return x


# Each case compiles all six modes into one graph, whose C++ takes g++ about a minute on a
# 2-core machine with a cold cache: each dtype and smooth_scales choice once, with one token
# (Dynamo specialises it), several, an H that int4 refuses and a 3-d input among them.
CASES = [((1, 7168), False, torch.float16), ((7, 33), True, torch.bfloat16),
         ((64, 256), True, torch.float16), ((2, 5, 48), False, torch.bfloat16)]
MODES = {
    "asym pertoken": (qg.npu_dynamic_quant_asymmetric, {}),
    "sym pertoken": (qg.npu_dynamic_quant, {}),
    "asym pertensor": (qg.npu_dynamic_quant_asymmetric, {"quant_mode": "pertensor"}),
    "sym pertensor": (qg.npu_dynamic_quant, {"quant_mode": "pertensor"}),
    "asym int4": (qg.npu_dynamic_quant_asymmetric, {"dst_type": torch.quint4x2}),
    "sym int4 pertensor": (qg.npu_dynamic_quant, {"dst_type": torch.quint4x2, "quant_mode": "pertensor"}),
}


@pytest.mark.parametrize(("shape", "smooth", "dtype"), CASES, ids=str)
def test_decomposed_modes_match_eager_without_a_kernel_call(shape, smooth, dtype):
    # int4 packs 8 values per int32, so H must be divisible by 8 (a validation rule)
    modes = [MODES[mode] for mode in MODES if shape[-1] % 8 == 0 or "int4" not in mode]
    generator = torch.Generator().manual_seed(sum(shape))
    x = with_specials(torch.randn(shape, generator=generator).to(dtype) * 3)
    smooth_scales = (torch.rand(shape[-1], generator=generator) + 0.5).to(dtype) if smooth else None

    def fn(x, smooth_scales):
        return [op(x, smooth_scales=smooth_scales, **kwargs) for op, kwargs in modes]

    outputs, calls = run_compiled(fn, x, smooth_scales)
    assert calls == 0
    assert_identical(outputs, fn(x, smooth_scales))


def test_one_compile_serves_every_token_count():
    def fn(x):
        return qg.npu_dynamic_quant_asymmetric(x)

    torch._dynamo.reset()
    compiled = torch.compile(fn, backend="quant_graph", dynamic=True, fullgraph=True)
    compiled(torch.randn(2, 40).half())  # the one compile, before the counts
    for tokens in (2, 9, 300):
        x = with_specials(torch.randn(tokens, 40, generator=torch.Generator().manual_seed(tokens)).half())
        outputs, calls = quant_op_calls(compiled, x)
        assert calls == 0  # and no recompile, which would run the fake kernel under the count
        assert_identical(outputs, fn(x))


SWITCHED = {
    "asym pertoken": lambda x, factors: qg.npu_dynamic_quant_asymmetric(x, smooth_scales=factors),
    "sym pertensor": lambda x, factors: qg.npu_dynamic_quant(x, smooth_scales=factors, quant_mode="pertensor"),
    # one output, not a tuple
    "quantize": lambda x, factors: qg.npu_quantize(x, factors, None, torch.qint8, -1, False),
}


@pytest.mark.parametrize("mode", SWITCHED)
def test_past_the_size_switch_the_compiled_graph_calls_the_kernel(mode):
    """One compiled graph: the fused formula up to FUSED_UP_TO_ELEMENTS input elements, the
    call into the eager kernel past it (where the kernel's one pass is faster)."""
    fn = SWITCHED[mode]
    smooth_scales = torch.rand(1024).half() + 0.5

    torch._dynamo.reset()
    compiled = torch.compile(fn, backend="quant_graph", dynamic=True, fullgraph=True)
    compiled(torch.randn(2, 1024).half(), smooth_scales)
    switch = FUSED_UP_TO_ELEMENTS // 1024
    for tokens, kernel_calls in ((3, 0), (switch, 0), (switch + 1, 1), (2 * switch, 1)):
        x = with_specials(torch.randn(tokens, 1024, generator=torch.Generator().manual_seed(tokens)).half())
        outputs, calls = quant_op_calls(compiled, x, smooth_scales)
        assert calls == kernel_calls, tokens
        assert_identical(outputs, fn(x, smooth_scales))


def test_the_one_token_graph_decides_the_switch_when_it_compiles():
    """Dynamo specialises one token: that graph holds the formula alone, no torch.cond, and
    guards the hidden size, which only a hidden size past the switch fails (a recompile
    that keeps the kernel call)."""
    counter = CompileCounterWithBackend("quant_graph")

    def fn(x):
        return qg.npu_quantize(x, torch.ones(1), None, torch.qint8, -1, False)

    torch._dynamo.reset()
    compiled = torch.compile(fn, backend=counter, dynamic=True, fullgraph=True)
    for hidden, kernel_calls, compiles in ((40, 0, 1), (96, 0, 1), (FUSED_UP_TO_ELEMENTS + 8, 1, 2)):
        x = with_specials(torch.randn(1, hidden, generator=torch.Generator().manual_seed(hidden)) * 100)
        compiled(x)  # any recompile before the count
        outputs, calls = quant_op_calls(compiled, x)
        assert (calls, counter.frame_count) == (kernel_calls, compiles), hidden
        assert_identical(outputs, fn(x))
    (graph, *_) = counter.graphs
    assert not any(node.target is torch.ops.higher_order.cond for node in graph.graph.nodes)


def test_int4_keeps_the_fused_formula_at_every_size():
    """The int4 formula's packed output has a stride torch.cond cannot match with the fake
    kernel's (Max(1, H//8) against 1), so there is no size switch: fused at any size."""
    def fn(x):
        return qg.npu_dynamic_quant_asymmetric(x, dst_type=torch.quint4x2)

    x = with_specials(torch.randn(FUSED_UP_TO_ELEMENTS // 64 + 1, 64).half())
    outputs, calls = run_compiled(fn, x)
    assert calls == 0
    assert_identical(outputs, fn(x))


def test_per_channel_dynamic_quant_matches_eager_without_a_kernel_call():
    """Statistics per column over each [M, H] slice; smooth_scales [M] scales the rows."""
    generator = torch.Generator().manual_seed(5)
    x = with_specials(torch.randn(3, 5, 16, generator=generator).bfloat16() * 3)
    smooth_scales = (torch.rand(5, generator=generator) + 0.5).bfloat16()

    def fn(x, smooth_scales):
        return (qg.npu_dynamic_quant(x, quant_mode="perchannel"),
                qg.npu_dynamic_quant_asymmetric(x, smooth_scales=smooth_scales, quant_mode="perchannel"),
                qg.npu_dynamic_quant(x, smooth_scales=smooth_scales, dst_type=torch.quint4x2, quant_mode="perchannel"))

    outputs, calls = run_compiled(fn, x, smooth_scales)
    assert calls == 0
    assert_identical(outputs, fn(x, smooth_scales))


def test_quantize_modes_match_eager_without_a_kernel_call():
    """npu_quantize's two formulas, along each kind of axis, with and without zero points,
    into integer and float8 formats: x reaches past 448 and 57344, and holds every tie
    between two positive float8_e4m3fn values, which a scale of 1 keeps ties."""
    generator = torch.Generator().manual_seed(3)
    x = with_specials(torch.randn(4, 6, 16, generator=generator) * 300)
    e4m3 = torch.arange(0, 127, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    x.view(-1)[16:16 + 126] = (e4m3[1:] + e4m3[:-1]) / 2
    per_column = torch.rand(16, generator=generator) + 0.25
    per_row = torch.rand(6, generator=generator) + 0.25
    int8_zeros = torch.randint(-9, 9, (16,), dtype=torch.int8, generator=generator)
    uint8_zeros = torch.randint(0, 9, (6,), dtype=torch.uint8, generator=generator)

    def fn(x, per_column, per_row, int8_zeros, uint8_zeros):
        x16 = x.half()
        return (
            qg.npu_quantize(x, per_column, int8_zeros, torch.qint8, -1, True),
            qg.npu_quantize(x, per_row, uint8_zeros, torch.quint8, 1, True),
            qg.npu_quantize(x, per_column, None, torch.qint32, -1, True),
            qg.npu_quantize(x, torch.ones(1), None, torch.float8_e4m3fn, -1, True),
            qg.npu_quantize(x16, per_column.half(), per_column.half() * 5, torch.qint8, -1, False),
            qg.npu_quantize(x16, per_row.half(), None, torch.qint8, -2, False),
            qg.npu_quantize(x16, per_column.half(), None, torch.quint4x2, -1, False),
            qg.npu_quantize(x, per_column * 100, None, torch.float8_e5m2, -1, False),
        )

    args = (x, per_column, per_row, int8_zeros, uint8_zeros)
    outputs, calls = run_compiled(fn, *args)
    assert calls == 0
    assert_identical(outputs, fn(*args))


UNDECOMPOSED = {
    "group_index": (qg.npu_dynamic_quant, lambda x: {
        "smooth_scales": torch.rand(2, x.shape[-1]).half() + 0.5,
        "group_index": torch.tensor([3, x.shape[0]], dtype=torch.int32)}),
    "float8": (qg.npu_dynamic_quant_asymmetric, lambda x: {"dst_type": torch.float8_e4m3fn}),
    "hifloat8": (qg.npu_dynamic_quant, lambda x: {"dst_type": 290, "dst_type_max": 15.0}),
    "quantize hifloat8": (lambda x, **kwargs: qg.npu_quantize(x, torch.tensor([0.5]), None, 290, -1, True),
                          lambda x: {}),
}


@pytest.mark.parametrize("mode", UNDECOMPOSED)
def test_other_modes_stay_kernel_calls(mode):
    op, make_kwargs = UNDECOMPOSED[mode]
    x = with_specials(torch.randn(6, 32, generator=torch.Generator().manual_seed(6)).half())
    kwargs = make_kwargs(x)

    def fn(x):
        return op(x, **kwargs)

    outputs, calls = run_compiled(fn, x)
    assert calls == 1
    assert_identical(outputs, fn(x))


def test_outputs_need_no_grad_as_in_eager():
    x = torch.randn(4, 16).half().requires_grad_()
    smooth_scales = torch.nn.Parameter(torch.rand(16).half() + 0.5)

    def fn(x):
        return qg.npu_dynamic_quant_asymmetric(x, smooth_scales=smooth_scales)

    outputs, calls = run_compiled(fn, x)
    assert calls == 0
    assert not any(t.requires_grad for t in outputs)
    assert_identical(outputs, fn(x))


def test_the_caches_keep_the_decomposed_and_the_kernel_graphs_apart():
    """backend="inductor" compiles the same Dynamo graph with the op as a kernel call: with
    AOTAutograd's and inductor's caches on, neither backend is served the other's code."""
    x = torch.randn(5, 24).half()

    def fn(x):
        return qg.npu_dynamic_quant(x)

    with torch._inductor.config.patch(fx_graph_cache=True), torch._functorch.config.patch(enable_autograd_cache=True):
        for backend, kernel_calls in (("quant_graph", 0), ("inductor", 1), ("quant_graph", 0), ("inductor", 1)):
            outputs, calls = run_compiled(fn, x, backend=backend)
            assert calls == kernel_calls, backend
            assert_identical(outputs, fn(x))


def test_the_ge_graph_still_has_the_fused_node(tmp_path):
    def fn(x):
        return qg.npu_dynamic_quant_asymmetric(x)

    x = torch.randn(8, 64).half()
    outputs, calls = run_compiled(fn, x, backend=qg.backend(dump_dir=tmp_path, on_npu=False))
    assert calls == 0
    assert_identical(outputs, fn(x))
    types = [op.type for _, graph in read_graphs(tmp_path) for op in graph.op]
    assert [t for t in types if t in fused_ge_types()] == ["DynamicQuantV2"]


def test_the_npu_path_gets_the_op_untouched(monkeypatch):
    handed_over = []

    def npu_backend(**_):
        def compile_graph(gm, example_inputs):
            handed_over.append([node.target for node in gm.graph.nodes if node.op == "call_function"])
            return gm.forward

        return compile_graph

    # the package exports the function backend(), which hides the module of that name
    monkeypatch.setattr(sys.modules["quant_graph.backend"], "npu_backend", npu_backend)

    def fn(x):
        return qg.npu_dynamic_quant_asymmetric(x)

    x = torch.randn(8, 64).half()
    outputs, calls = run_compiled(fn, x, backend=qg.backend(on_npu=True))
    assert calls == 1
    assert_identical(outputs, fn(x))
    (targets,) = handed_over
    assert OPS["npu_dynamic_quant_asymmetric"].overload._overloadpacket in targets
