"""Quantization has no gradient: every op's outputs never require grad, with no autograd
warning, whatever its inputs require (model parameters usually do)."""

import warnings

import pytest
import torch
from samples import OPS

import quant_graph as qg


def _with_grad(value):
    if isinstance(value, torch.Tensor) and value.dtype.is_floating_point:
        return value.detach().clone().requires_grad_()
    return value


@pytest.mark.parametrize("info", list(OPS.values()), ids=lambda info: info.name)
def test_outputs_never_require_grad(info):
    sample = next(s for s in info.samples if any(
        isinstance(a, torch.Tensor) and a.dtype.is_floating_point for a in (*s.args, *s.kwargs.values())))
    args = [_with_grad(a) for a in sample.args]
    kwargs = {k: _with_grad(v) for k, v in sample.kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = getattr(qg, info.name)(*args, **kwargs)
    for t in out if isinstance(out, tuple) else (out,):
        assert not t.requires_grad and t.grad_fn is None


def test_dump_traces_one_forward_graph_for_a_model_with_trainable_parameters(tmp_path):
    from quant_graph.ge import dump_ge_graph

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(32, 32)

        def forward(self, x):
            y, scale = qg.npu_dynamic_quant(self.proj(x).half())
            return y.float() * scale.unsqueeze(-1)

    torch._dynamo.reset()
    dump = dump_ge_graph(Block(), torch.randn(6, 32, generator=torch.Generator().manual_seed(0)), dump_dir=tmp_path)
    assert len(dump.graphs) == 1 and dump.not_lowered() == []
