"""Issue 12 item 6: bad inputs to a function compiled with ``dynamic=True`` (the
quant_graph backend and inductor) fail with eager's error: its type and its message, word
for word, and no tracing log on stderr or in the logging records in front of it.

A value check (group_index contents) runs in the eager kernel at run time and reaches the
caller as eager's exception itself. A shape or dtype check runs in the fake kernel while
Dynamo traces, and Dynamo wraps whatever a fake kernel raises (torch/_dynamo/utils.py
run_node/get_fake_value) in a TorchRuntimeError, eager's exception in its context chain:
TRACED_CHECKS holds those, checked through that context, until the public functions run
their checks in Python ahead of the op while compiling (Dynamo then raises them as they
are). The traced message writes a dynamic size as its symbol ("x's last dim s27, got 8"
for eager's "16, got 8"): it is checked as eager's message with those symbols for numbers."""

import logging
import re

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


def chain(error):
    """The error and those it was raised from or while handling (Dynamo raises its
    TorchRuntimeError ``from None``, so eager's exception is in the context)."""
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def eager_error(fn, args):
    with pytest.raises((TypeError, ValueError)) as info:
        fn(*args)
    return info.value


def compiled_error(fn, args, backend, capfd, caplog):
    torch._dynamo.reset()
    capfd.readouterr()
    with caplog.at_level(logging.INFO), pytest.raises(Exception) as info:
        torch.compile(fn, backend=backend, dynamic=True)(*args)
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
def test_a_shape_or_dtype_error_while_tracing_carries_eagers(name, backend, capfd, caplog):
    fn, args = TRACED_CHECKS[name]
    eager = eager_error(fn, args)
    compiled = compiled_error(fn, args, backend, capfd, caplog)
    causes = [e for e in chain(compiled) if type(e) is type(eager)]
    assert causes, (type(compiled), str(compiled)[:1000])
    traced = str(causes[0])
    assert re.fullmatch(re.sub(r"\bs\d+\b", r"\\d+", re.escape(traced)), str(eager)), (traced, str(eager))
    # that message within the first lines of what the caller reads, not after pages of log
    assert any(traced in line for line in str(compiled).splitlines()[:4]), str(compiled)[:2000]
