"""Issue 12 item 6: bad inputs to a function compiled with ``dynamic=True`` (the
quant_graph backend and inductor) fail with eager's error: its type and its message, word
for word, and no tracing log on stderr or in the logging records in front of it.

A value check (group_index contents) runs in the eager kernel at run time and reaches the
caller as eager's exception itself. A shape or dtype check runs in the fake kernel while
Dynamo traces; quant_graph turns it into a graph break (``_registry``), so the call runs
eagerly and raises eager's exception. With ``fullgraph=True`` there is no eager fallback:
Dynamo's Unsupported error then gives eager's message, sizes as numbers, in its first lines."""

import logging

import pytest
import torch

import quant_graph as qg

H = torch.float16
# name -> (function, args): each breaks one rule
TRACED_CHECKS = {
    "dynamic quant x float32": (lambda x, s: qg.npu_dynamic_quant(x), (torch.zeros(4, 16), None)),
    "dynamic quant smooth_scales width": (lambda x, s: qg.npu_dynamic_quant(x, smooth_scales=s),
                                          (torch.zeros(4, 16, dtype=H), torch.ones(8, dtype=H))),
    "asymmetric int4 width": (lambda x, s: qg.npu_dynamic_quant_asymmetric(x, dst_type=torch.quint4x2),
                              (torch.zeros(4, 12, dtype=H), None)),
    "quantize scales length": (lambda x, s: qg.npu_quantize(x, s, None, torch.qint8, -1, True),
                               (torch.zeros(4, 16), torch.ones(5))),
    "swiglu odd width": (lambda x, s: qg.npu_dequant_swiglu_quant(x, quant_mode=1),
                         (torch.zeros(4, 15, dtype=torch.bfloat16), None)),
}
VALUE_CHECKS = {
    "group_quant group_index decreasing": (lambda x, s: qg.npu_group_quant(x, torch.ones(2, 16), s),
                                           (torch.zeros(4, 16), torch.tensor([3, 1]))),
    "moe group_index past the end": (
        lambda x, s: qg.npu_dynamic_quant(x, smooth_scales=torch.ones(2, 16, dtype=H), group_index=s),
        (torch.zeros(4, 16, dtype=H), torch.tensor([1, 9], dtype=torch.int32))),
}


def eager_error(fn, args):
    with pytest.raises((TypeError, ValueError)) as info:
        fn(*args)
    return info.value


def compiled_error(fn, args, backend, capfd, caplog, fullgraph=False):
    torch._dynamo.reset()
    capfd.readouterr()
    with caplog.at_level(logging.INFO), pytest.raises(Exception) as info:
        torch.compile(fn, backend=backend, dynamic=True, fullgraph=fullgraph)(*args)
    err = capfd.readouterr().err
    torch_records = [r for r in caplog.records if r.name.startswith("torch") and r.levelno >= logging.INFO]
    assert not err and not torch_records, (err[-2000:], [r.getMessage()[:200] for r in torch_records])
    return info.value


@pytest.mark.parametrize("backend", ["quant_graph", "inductor"])
@pytest.mark.parametrize("name", list(VALUE_CHECKS))
def test_a_value_error_while_compiled_is_eagers(name, backend, capfd, caplog):
    fn, args = VALUE_CHECKS[name]
    eager = eager_error(fn, args)
    compiled = compiled_error(fn, args, backend, capfd, caplog)
    assert type(compiled) is type(eager) and str(compiled) == str(eager)


@pytest.mark.parametrize("backend", ["quant_graph", "inductor"])
@pytest.mark.parametrize("name", list(TRACED_CHECKS))
def test_a_shape_or_dtype_error_while_tracing_is_eagers(name, backend, capfd, caplog):
    fn, args = TRACED_CHECKS[name]
    eager = eager_error(fn, args)
    compiled = compiled_error(fn, args, backend, capfd, caplog)
    assert type(compiled) is type(eager) and str(compiled) == str(eager)


@pytest.mark.parametrize("name", list(TRACED_CHECKS))
def test_with_fullgraph_dynamo_reports_eagers_message(name, capfd, caplog):
    fn, args = TRACED_CHECKS[name]
    eager = eager_error(fn, args)
    compiled = compiled_error(fn, args, "quant_graph", capfd, caplog, fullgraph=True)
    assert isinstance(compiled, torch._dynamo.exc.Unsupported)
    assert f"Explanation: {eager}" in [line.strip() for line in str(compiled).splitlines()[:3]], str(compiled)[:2000]


@pytest.mark.parametrize("namespace", ["npu", "quant_graph"])
def test_the_op_called_by_its_torch_ops_name_raises_eagers_error(namespace, capfd, caplog):
    def fn(x, s):
        return getattr(torch.ops, namespace).npu_dynamic_quant(x, smooth_scales=s)

    args = (torch.zeros(4, 16, dtype=H), torch.ones(8, dtype=H))
    eager = eager_error(fn, args)
    compiled = compiled_error(fn, args, "quant_graph", capfd, caplog)
    assert type(compiled) is type(eager) and str(compiled) == str(eager)


def test_a_valid_call_after_an_invalid_one_compiles_without_a_break():
    fn, (x, _) = TRACED_CHECKS["dynamic quant x float32"]
    torch._dynamo.reset()
    compiled = torch.compile(fn, backend="quant_graph", dynamic=True, fullgraph=True)
    with pytest.raises(torch._dynamo.exc.Unsupported):
        compiled(x, None)
    y, scale = compiled(x.half(), None)
    torch.testing.assert_close(scale, torch.zeros(4))
