"""The C++ dispatcher kernels (csrc/dispatch.cpp): they serve the common calls of every op
without entering Python, bit for bit as the Python kernels would, and hand every other call,
valid or not, to the Python kernels unchanged."""

import os
import subprocess
import sys

import pytest
import torch
from helpers import assert_identical, portable_path
from hypothesis import given
from hypothesis import strategies as st
from samples import OPS

import quant_graph as qg
from quant_graph import _dtypes, _registry, native

DYNAMIC_QUANT_OPS = ("npu_dynamic_quant", "npu_dynamic_quant_asymmetric")
FAST_PATH_OPS = (*DYNAMIC_QUANT_OPS, "npu_quantize", "npu_group_quant", "npu_dequant_swiglu_quant")

@pytest.fixture
def python_kernel_calls(monkeypatch):
    """How many calls reached a C kernel through the Python kernels' ctypes binding."""
    calls = []
    call = native.Kernel.__call__
    monkeypatch.setattr(native.Kernel, "__call__",
                        lambda self, **args: (calls.append(self.name), call(self, **args))[1])
    return calls


def test_dispatcher_kernels_are_built_here():
    """CI's machine has a C++ compiler: the tests below run the dispatcher kernels."""
    assert native.dispatch_enabled() and "C++ dispatcher kernels built" in native.status(), native.status()


def _x(shape, dtype=torch.float16, seed=0):
    return (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 4).to(dtype)


def _ints(shape, seed=4):
    return torch.randint(-500, 500, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.int32)


def _positive(shape, dtype=torch.float32, seed=1):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) + 0.5).to(dtype)


# (op, args, kwargs) in each op's common case; the names say what each covers
COMMON_CALLS = {
    **{f"{name} {label}": (name, args, kwargs) for name in DYNAMIC_QUANT_OPS for label, args, kwargs in [
        ("per token", (_x((4, 7168)),), {}),
        ("per token, 3-D, bf16", (_x((2, 3, 512), torch.bfloat16),), {}),
        ("per tensor", (_x((5, 300)),), {"quant_mode": "pertensor"}),
        ("smooth scales", (_x((6, 256)),), {"smooth_scales": _positive(256, torch.float16)}),
        ("int8 by code", (_x((3, 64)),), {"dst_type": 1}),
        ("int8 by dtype", (_x((3, 64)),), {"dst_type": torch.int8}),
        ("float8_e4m3fn by code", (_x((3, 64)),), {"dst_type": 24}),
        ("float8_e5m2 by torch_npu's alias, per tensor", (_x((3, 64), torch.bfloat16),),
         {"dst_type": 291, "quant_mode": "pertensor"}),
        ("per channel, 3-D", (_x((2, 3, 64)),), {"quant_mode": "perchannel"}),
        ("per channel, smooth scales per token", (_x((5, 48), torch.bfloat16),),
         {"quant_mode": "perchannel", "smooth_scales": _positive(5, torch.bfloat16)}),
    ]},
    "npu_quantize per channel": ("npu_quantize", (_x((4, 7168)), _positive(7168, torch.float16),
                                                  _x(7168, seed=2), torch.qint8, -1, False), {}),
    "npu_quantize one scale, no zero points, bf16": (
        "npu_quantize", (_x((2, 3, 40), torch.bfloat16), _positive(1, torch.bfloat16), None, torch.int8, 1, False), {}),
    "npu_quantize float32 input, float16 scales": (
        "npu_quantize", (_x((5, 33), torch.float32), _positive(33, torch.float16), _x(33, seed=3), 12, 0, False), {}),
    "npu_quantize float8_e5m2": (
        "npu_quantize", (_x((3, 40)), _positive(40, torch.float16), None, torch.float8_e5m2, -1, False), {}),
    "npu_quantize div_mode=True, per tensor, float8_e4m3fn (cann-recipes)": (
        "npu_quantize", (_x((4, 7168), torch.bfloat16), _positive(1) / 50, None, torch.float8_e4m3fn, -1, True), {}),
    "npu_quantize div_mode=True, per channel, bf16 scales, quint8": (
        "npu_quantize", (_x((4, 96), torch.bfloat16), _positive(96, torch.bfloat16), None, torch.quint8, 1, True), {}),
    "npu_quantize div_mode=True, qint32, 3-D": (
        "npu_quantize", (_x((2, 3, 16), torch.float32), _positive(16) / 100, None, torch.qint32, 2, True), {}),
    "npu_group_quant": ("npu_group_quant", (_x((9, 96)), _positive((3, 96)) * 20, torch.tensor([2, 2, 9],
                                                                                              dtype=torch.int32)),
                        {"offset": torch.tensor([0.3])}),
    "npu_group_quant int64 ends, bf16 scale, qint8": (
        "npu_group_quant", (_x((4, 64), torch.bfloat16), _positive((2, 64), torch.bfloat16) * 20, torch.tensor([0, 4])),
        {"dst_dtype": torch.qint8}),
    **{f"npu_dequant_swiglu_quant {label}": ("npu_dequant_swiglu_quant", (_ints((5, 256)),), kwargs)
       for label, kwargs in [
           ("MoE dynamic", {"weight_scale": _positive((3, 256)) / 100, "activation_scale": _positive(5) / 100,
                            "quant_scale": _positive((3, 128)), "group_index": torch.tensor([2, 0, 2]),
                            "quant_mode": 1}),
           ("dynamic, 1-D tables, int32 counts, activate_left",
            {"weight_scale": _positive(256) / 100, "quant_scale": _positive(128, torch.bfloat16),
             "group_index": torch.tensor([5], dtype=torch.int32), "quant_mode": 1, "activate_left": True}),
           ("GPT-OSS", {"weight_scale": _positive(256) / 100, "activation_scale": _positive((5, 1)) / 100,
                        "quant_mode": 1, "swiglu_mode": 1, "clamp_limit": 3.0, "glu_alpha": 1.5, "glu_bias": 0.5}),
           ("static", {"weight_scale": _positive((1, 256)) / 100, "quant_scale": _positive(128) / 50,
                       "quant_offset": _x(128, torch.float32), "swiglu_mode": 2, "dst_type": 1, "round_mode": 0,
                       "activate_dim": -1}),
       ]},
}


@pytest.mark.parametrize("case", COMMON_CALLS)
def test_common_calls_never_enter_python_and_give_the_python_kernels_bits(case, python_kernel_calls):
    name, args, kwargs = COMMON_CALLS[case]
    for call in (getattr(qg, name), getattr(torch.ops.npu, name), getattr(torch.ops.quant_graph, name)):
        if call is not getattr(qg, name):  # the schema takes dtype codes, which the public functions decode
            args = tuple(_dtypes.torch_npu_code(name, "dtype", a) if isinstance(a, torch.dtype) and name ==
                         "npu_quantize" else a for a in args)
        got = call(*args, **kwargs)
        with torch.inference_mode():
            in_inference = call(*args, **kwargs)
        assert python_kernel_calls == []
        with native.without_dispatch():
            want = call(*args, **kwargs)
        assert python_kernel_calls, "without the dispatcher kernels the Python kernel serves"
        python_kernel_calls.clear()
        assert_identical(got, want)
        assert_identical(in_inference, want)


@pytest.mark.parametrize("name", FAST_PATH_OPS)
def test_every_registry_sample_gives_the_same_bits_with_and_without_the_dispatcher_kernels(name):
    for sample in OPS[name].samples:
        got = OPS[name].public(*sample.args, **sample.kwargs)
        with native.without_dispatch():
            want = OPS[name].public(*sample.args, **sample.kwargs)
        assert_identical(got, want)


@pytest.mark.parametrize("name", FAST_PATH_OPS)
def test_every_invalid_sample_raises_the_python_kernels_error(name):
    """The dispatcher kernels hold no validation rule: a bad call reaches the Python kernel,
    whose error comes back unchanged through C++."""
    info = OPS[name]
    for bad in info.invalid:
        if bad.public_only:
            continue
        with pytest.raises(bad.error) as raised:
            info.op(*bad.args, **bad.kwargs)
        with native.without_dispatch(), pytest.raises(bad.error) as unassisted:
            info.op(*bad.args, **bad.kwargs)
        assert str(raised.value) == str(unassisted.value), bad.name


SPECIALS = [0.0, -0.0, 1e-8, 65504.0, -65504.0, float("inf"), float("-inf"), float("nan")]


@given(rows=st.integers(1, 40), cols=st.integers(1, 300), lead=st.sampled_from([(), (2,), (1, 3)]),
       dtype=st.sampled_from([torch.float16, torch.bfloat16]), symmetric=st.booleans(),
       mode=st.sampled_from(["pertoken", "pertensor", "perchannel"]), smooth=st.booleans(),
       dst_type=st.sampled_from([None, 24, 23]),
       specials=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(SPECIALS)), max_size=4),
       seed=st.integers(0, 2**16))
def test_fast_path_matches_the_python_kernel_across_shapes_and_values(rows, cols, lead, dtype, symmetric, mode,
                                                                       smooth, dst_type, specials, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn((*lead, rows, cols), generator=g) * 10).to(dtype)
    for at, value in specials:
        x.view(-1)[at % x.numel()] = value
    kwargs = {"quant_mode": mode, "dst_type": dst_type}
    if smooth:
        kwargs["smooth_scales"] = (torch.rand(rows if mode == "perchannel" else cols, generator=g) + 0.5).to(dtype)
    op = qg.npu_dynamic_quant if symmetric else qg.npu_dynamic_quant_asymmetric
    got = op(x, **kwargs)
    with native.without_dispatch():
        want = op(x, **kwargs)
    assert_identical(got, want)


def _uncommon_calls():
    x = _x((16, 64))
    scales, ends = _positive(64, torch.float16), torch.tensor([8, 16], dtype=torch.int32)
    calls = {}
    for name in DYNAMIC_QUANT_OPS:
        op = getattr(torch.ops.npu, name)
        calls |= {
            f"{name} int4": lambda op=op: op(x, dst_type=torch.quint4x2),
            f"{name} MoE group_index": lambda op=op: op(x, smooth_scales=torch.ones(2, 64, dtype=torch.float16),
                                                        group_index=ends),
            f"{name} non-contiguous input": lambda op=op: op(x.t().contiguous().t()),
        }
    quantize, group_quant = torch.ops.npu.npu_quantize, torch.ops.npu.npu_group_quant
    return calls | {
        "npu_quantize div_mode=True with zero points": lambda: quantize(
            x, scales.float(), torch.ones(64, dtype=torch.int32), 12, -1, True),
        "npu_quantize div_mode=True along dim 0": lambda: quantize(x, _positive(16), None, 12, 0, True),
        "npu_quantize axis=-2": lambda: quantize(x, _positive(16, torch.float16), None, 12, -2, False),
        "npu_quantize int4": lambda: quantize(x, scales, None, 16, -1, False),
        "npu_quantize non-contiguous input": lambda: quantize(x.t().contiguous().t(), scales, None, 12, -1, False),
        "npu_group_quant int4": lambda: group_quant(x, torch.rand(2, 64), ends, dst_dtype=torch.quint4x2),
        "npu_group_quant bad ends": lambda: group_quant(x, torch.rand(2, 64), torch.tensor([9, 8])),
        "npu_group_quant ends short of S": lambda: group_quant(x, torch.rand(2, 64), torch.tensor([4, 8])),
        "npu_group_quant negative first end": lambda: group_quant(x, torch.rand(2, 64), torch.tensor([-1, 16])),
        **{f"npu_dequant_swiglu_quant {label}": (lambda kwargs=kwargs: torch.ops.npu.npu_dequant_swiglu_quant(
            kwargs.get("x", _ints((4, 128))),
            **{"weight_scale": torch.rand(128), "quant_mode": 1, **{k: v for k, v in kwargs.items() if k != "x"}}))
           for label, kwargs in [
               ("float x", {"x": _x((4, 128)), "weight_scale": None}),
               ("3-D x", {"x": _ints((2, 2, 128))}),
               ("int bias", {"bias": torch.ones(128, dtype=torch.int32)}),
               ("counts over T", {"group_index": torch.tensor([3, 2]), "weight_scale": torch.rand(2, 128),
                                  "quant_mode": 1}),
               ("negative count", {"group_index": torch.tensor([-1, 2]), "weight_scale": torch.rand(2, 128),
                                   "quant_mode": 1}),
               ("H not a multiple of 64 with group_index", {"x": _ints((4, 96)), "weight_scale": torch.rand(96),
                                                            "group_index": torch.tensor([4]), "quant_mode": 1}),
           ]},
    }


UNCOMMON_CALLS = _uncommon_calls()


@pytest.mark.parametrize("case", UNCOMMON_CALLS)
def test_uncommon_calls_take_the_python_kernel(case, python_kernel_calls):
    """What a fast path's predicate leaves out goes on to the Python kernel, valid or not."""
    try:
        UNCOMMON_CALLS[case]()
    except ValueError as err:  # bad group_index values or H: only the Python kernel raises these
        assert str(err).startswith(("npu_group_quant: group_index", "npu_dequant_swiglu_quant: group_index",
                                    "npu_dequant_swiglu_quant: with group_index")), err
    else:
        assert python_kernel_calls


def test_the_dispatcher_kernels_split_work_as_the_python_kernels_do():
    """One thread at decode size, all threads for a large call (native._threads_for)."""
    dispatch = native.dispatch_library()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for touched in (0, 1 << 10, 1 << 16, 1 << 17, 1 << 30):
            for units in (1, 2, 1000):
                assert dispatch.qg_dispatch_threads_for(touched, units) == native._threads_for(touched, units)
    finally:
        torch.set_num_threads(threads)


def test_outputs_never_require_grad_and_the_autograd_kernel_is_cpp():
    x = torch.randn(3, 64, dtype=torch.float16, requires_grad=True)
    for name in DYNAMIC_QUANT_OPS:
        assert not any(out.requires_grad for out in getattr(qg, name)(x))
    for name in _registry.OPS:
        kernels = torch._C._dispatch_dump(f"quant_graph::{name}").splitlines()
        autograd = next(line for line in kernels if line.startswith("Autograd"))
        assert "dispatch.cpp" in autograd, autograd


@pytest.mark.parametrize("env,reason", [({"QUANT_GRAPH_DISPATCH": "0"}, "QUANT_GRAPH_DISPATCH=0"),
                                        ({"CXX": "no-such-compiler"}, "no C++ compiler 'no-such-compiler'")])
def test_status_says_why_the_dispatcher_kernels_are_off_and_results_stay_the_same(env, reason):
    child = subprocess.run([sys.executable, "-c", "\n".join([
        "import torch, quant_graph as qg",
        "from quant_graph import native",
        "x = (torch.arange(-64, 64, dtype=torch.float32).reshape(2, 64) / 7).half()",
        "print(native.status())",
        "print(native.dispatch_enabled(), qg.npu_dynamic_quant(x)[0].sum().item())"])],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    status, result = child.stdout.splitlines()
    assert f"C++ dispatcher kernels unavailable ({reason}" in status and "the Python kernels serve" in status
    x = (torch.arange(-64, 64, dtype=torch.float32).reshape(2, 64) / 7).half()
    assert result == f"False {qg.npu_dynamic_quant(x)[0].sum().item()}"


FLOATS = [torch.float16, torch.bfloat16, torch.float32]


# cols up to 1200: rows of many AVX2 steps and a tail, parameter tables the kernel widens itself
@given(rows=st.integers(1, 30), cols=st.integers(1, 1200), dtype=st.sampled_from(FLOATS),
       param_dtype=st.sampled_from(FLOATS), one_scale=st.booleans(), zero=st.booleans(), div_mode=st.booleans(),
       code_index=st.integers(0, 7), specials=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(SPECIALS)),
                                                       max_size=4), seed=st.integers(0, 2**16))
def test_quantize_fast_path_matches_the_python_kernel(rows, cols, dtype, param_dtype, one_scale, zero, div_mode,
                                                      code_index, specials, seed):
    """Both modes, every format the fast path writes (int8, uint8, int32, float8 by either code);
    div_mode=False with parameters of the input's dtype, or of any float dtype for a float32 input."""
    x = _x((rows, cols), dtype, seed) * 10
    for at, value in specials:
        x.view(-1)[at % x.numel()] = value
    if div_mode:  # float32 scales (bfloat16 with a bfloat16 input), no zero points
        code = (0, 1, 3, 12, 13, 14, 23, 24)[code_index]
        scales = _positive(1 if one_scale else cols, torch.bfloat16 if zero and dtype == torch.bfloat16
                           else torch.float32, seed + 1) / 3
        zero_points = None
    else:
        code = (1, 12, 23, 24, 291, 292, 1, 12)[code_index]
        params = param_dtype if dtype == torch.float32 else dtype
        scales = _positive(1 if one_scale else cols, params, seed + 1) * 3
        zero_points = _x(scales.shape, params, seed + 2) if zero else None
    got = torch.ops.npu.npu_quantize(x, scales, zero_points, code, -1, div_mode)
    with native.without_dispatch():
        want = torch.ops.npu.npu_quantize(x, scales, zero_points, code, -1, div_mode)
    with portable_path():  # no C kernel at all: the fast path's kernel is held to torch's code too
        portable = torch.ops.npu.npu_quantize(x, scales, zero_points, code, -1, div_mode)
    assert_identical(got, want)
    assert_identical(got, portable)


@given(rows=st.integers(1, 30), cols=st.integers(1, 1200), groups=st.integers(1, 6), dtype=st.sampled_from(FLOATS),
       offset=st.booleans(),
       ends_dtype=st.sampled_from([torch.int32, torch.int64]), seed=st.integers(0, 2**16))
def test_group_quant_fast_path_matches_the_python_kernel(rows, cols, groups, dtype, offset, ends_dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = _x((rows, cols), dtype, seed) * 10
    scale = _positive((groups, cols), dtype, seed + 1) * 20
    ends = torch.sort(torch.randint(0, rows + 1, (groups,), generator=g)).values
    ends[-1] = rows
    kwargs = {"offset": _x(1, dtype, seed + 2)} if offset else {}
    got = qg.npu_group_quant(x, scale, ends.to(ends_dtype), **kwargs)
    with native.without_dispatch():
        want = qg.npu_group_quant(x, scale, ends.to(ends_dtype), **kwargs)
    with portable_path():
        portable = qg.npu_group_quant(x, scale, ends.to(ends_dtype), **kwargs)
    assert_identical(got, want)
    assert_identical(got, portable)


@given(tokens=st.integers(1, 20), h=st.sampled_from([64, 128]), groups=st.integers(0, 4),
       mode=st.sampled_from([0, 1, 2]), activate_left=st.booleans(), act=st.booleans(), dynamic=st.booleans(),
       seed=st.integers(0, 2**16))
def test_dequant_swiglu_quant_fast_path_matches_the_python_kernel(tokens, h, groups, mode, activate_left, act,
                                                                  dynamic, seed):
    """groups 0: no group_index; static quant takes none."""
    g = torch.Generator().manual_seed(seed)
    grouped = groups > 0 and dynamic
    rows = groups if grouped else 1
    kwargs = {"weight_scale": _positive((rows, 2 * h), seed=seed) / 100, "swiglu_mode": mode,
              "activate_left": activate_left, "quant_mode": int(dynamic),
              "quant_scale": _positive((rows, h), seed=seed + 1) / (1 if dynamic else 50)}
    if act:
        kwargs["activation_scale"] = _positive(tokens, seed=seed + 2) / 100
    if grouped:
        kwargs["group_index"] = torch.multinomial(torch.ones(groups), tokens, replacement=True,
                                                  generator=g).bincount(minlength=groups)[:groups]
    if not dynamic:
        kwargs["quant_offset"] = _x(h, torch.float32, seed + 3)
    x = _ints((tokens, 2 * h), seed)
    got = qg.npu_dequant_swiglu_quant(x, **kwargs)
    with native.without_dispatch():
        want = qg.npu_dequant_swiglu_quant(x, **kwargs)
    assert_identical(got, want)
