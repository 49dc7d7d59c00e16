"""The quant_graph backend's inductor path compiles the dynamic quant ops from their
decomposition (``QuantOp.decompose``): up to the size switch the compiled graph calls no
quant op kernel for the decomposed modes, past it the kernel; it gives eager's outputs bit
for bit (NaN where NaN) either way, keeps the other modes as kernel calls, and leaves the GE
graph (and the NPU path's graph) with the fused op."""

import sys

import pytest
import torch
from helpers import assert_identical

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


@pytest.mark.parametrize("mode", ["asym pertoken", "sym pertensor"])
def test_past_the_size_switch_the_compiled_graph_calls_the_kernel(mode):
    """One compiled graph: the fused formula up to FUSED_UP_TO_ELEMENTS input elements, the
    call into the eager kernel past it (where the kernel's one pass is faster)."""
    op, kwargs = MODES[mode]
    smooth_scales = torch.rand(1024).half() + 0.5

    def fn(x, smooth_scales):
        return op(x, smooth_scales=smooth_scales, **kwargs)

    torch._dynamo.reset()
    compiled = torch.compile(fn, backend="quant_graph", dynamic=True, fullgraph=True)
    compiled(torch.randn(2, 1024).half(), smooth_scales)
    switch = FUSED_UP_TO_ELEMENTS // 1024
    for tokens, kernel_calls in ((3, 0), (switch, 0), (switch + 1, 1), (2 * switch, 1)):
        x = with_specials(torch.randn(tokens, 1024, generator=torch.Generator().manual_seed(tokens)).half())
        outputs, calls = quant_op_calls(compiled, x, smooth_scales)
        assert calls == kernel_calls, tokens
        assert_identical(outputs, fn(x, smooth_scales))


def test_int4_keeps_the_fused_formula_at_every_size():
    """The int4 formula's packed output has a stride torch.cond cannot match with the fake
    kernel's (Max(1, H//8) against 1), so there is no size switch: fused at any size."""
    def fn(x):
        return qg.npu_dynamic_quant_asymmetric(x, dst_type=torch.quint4x2)

    x = with_specials(torch.randn(FUSED_UP_TO_ELEMENTS // 64 + 1, 64).half())
    outputs, calls = run_compiled(fn, x)
    assert calls == 0
    assert_identical(outputs, fn(x))


UNDECOMPOSED = {
    "group_index": (qg.npu_dynamic_quant, lambda x: {
        "smooth_scales": torch.rand(2, x.shape[-1]).half() + 0.5,
        "group_index": torch.tensor([3, x.shape[0]], dtype=torch.int32)}),
    "perchannel": (qg.npu_dynamic_quant, lambda x: {"quant_mode": "perchannel"}),
    "float8": (qg.npu_dynamic_quant_asymmetric, lambda x: {"dst_type": torch.float8_e4m3fn}),
    "hifloat8": (qg.npu_dynamic_quant, lambda x: {"dst_type": 290, "dst_type_max": 15.0}),
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
