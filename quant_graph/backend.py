"""The ``quant_graph`` torch.compile backend.

``torch.compile(model, backend="quant_graph")`` (registered through the
``torch_dynamo_backends`` entry point) or ``torch.compile(model, backend=quant_graph.backend(...))``:

* on an Ascend host (torch_npu and TorchAir import, an NPU is present): TorchAir's backend
  with quant_graph's converters, so each quant op runs as its fused GE kernel;
* elsewhere: inductor. Each quant op call whose mode has a decomposition (the dynamic
  quant ops, int8 and int4, per token and per tensor, with or without smooth_scales; see
  ``decompose_quant_ops``) becomes its formula in torch ops, bit for bit the eager kernel's,
  which inductor fuses into its own loops: at every token count, since one dynamic graph
  serves them all (no size switch). Measured at H=7168 on 2 threads: as fast as inductor's
  code for the bare formula (no NaN or zero-scale handling) up to 16 tokens, 1.1-1.2x
  slower at 256-4096, and 4-6x faster than the call into the eager kernel at every size. The other
  calls (group_index, perchannel, float8, hifloat8, and the other ops) stay calls into
  quant_graph's eager kernels. With ``dump_dir`` the GE graph the model would run on the
  NPU, with the fused ops, is built offline from the graph before that rewrite and dumped
  alongside.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import operator
from pathlib import Path

import torch
from torch.utils import _pytree as pytree

from ._registry import LIBS, OPS
from .converters.ge_graph import DUMP_PREFIX, npu_backend, read_graphs


def npu_available() -> bool:
    """torch_npu imports and sees an NPU."""
    if importlib.util.find_spec("torch_npu") is None:
        return False
    try:
        torch_npu = importlib.import_module("torch_npu")
        return bool(torch_npu.npu.is_available())
    except Exception:  # noqa: BLE001 - without CANN torch_npu fails in many ways; all mean "no NPU"
        return False


def backend(*, dump_dir: str | Path | None = None, npu_config=None, inductor_options: dict | None = None,
            on_npu: bool | None = None):
    """A torch.compile backend; see the module docstring.

    Args:
        dump_dir: write each compiled graph's GE graph here (TorchAir's pbtxt and protobuf
            text; read them back with ``quant_graph.converters.ge_graph.read_graphs``).
        npu_config: a ``torchair.CompilerConfig`` for the NPU path (mode, graph dump ...).
        inductor_options: inductor config patches for the CPU path.
        on_npu: force the NPU (True) or the inductor (False) path; None detects.
    """

    def compile_graph(gm, example_inputs):
        if npu_available() if on_npu is None else on_npu:
            return npu_backend(config=npu_config, dump_dir=dump_dir, offline=False)(gm, example_inputs)
        if dump_dir is not None:
            # TorchAir's offline backend builds and dumps the GE graph; its own runnable
            # (the FX graph, eagerly) is not used: inductor runs the model here.
            earlier = set(Path(dump_dir).glob(f"{DUMP_PREFIX}*.txt"))
            npu_backend(dump_dir=dump_dir, offline=True)(copy.deepcopy(gm), example_inputs)
            read_graphs(dump_dir, skip=earlier)  # writes the readable pbtxt beside the new dump
        from torch._inductor.compile_fx import compile_fx  # inductor loads when a graph first compiles

        decompose_quant_ops(gm)
        return compile_fx(gm, example_inputs, config_patches=inductor_options)

    return compile_graph


def quant_graph_backend(gm, example_inputs):
    """The backend registered as ``"quant_graph"``: ``backend()`` with its defaults."""
    return backend()(gm, example_inputs)


class _KeepsKernelCall(Exception):
    """A decomposition returned NotImplemented: the call stays the eager kernel's."""


def decompose_quant_ops(gm: torch.fx.GraphModule) -> int:
    """Replace, in Dynamo's graph ``gm``, each quant op call that has a decomposition for its
    arguments (``QuantOp.decompose``) by the torch ops the decomposition traces to, so that
    inductor fuses the formula into its own loops; returns how many calls it replaced.

    The inductor path alone does this: the GE path must see the op, which it lowers to the
    fused GE node. The graph is rewritten before compile_fx, so AOTAutograd's and inductor's
    caches key on the rewritten graph and never serve one compiled from the other.
    """
    decomposable = {}
    for op in OPS.values():
        if op.decomposition is not None:
            for namespace in LIBS:
                packet = getattr(getattr(torch.ops, namespace), op.name)
                decomposable[packet] = decomposable[packet.default] = op
    replaced = 0
    for node in list(gm.graph.nodes):
        op = decomposable.get(node.target) if node.op == "call_function" else None
        # Dynamo takes a tuple result apart with getitem; any other use keeps the call
        if op is None or any(user.target is not operator.getitem for user in node.users):
            continue
        traced = _traced_decomposition(op, node)
        if traced is None:
            continue
        graph, tensor_args = traced
        copied = dict(zip(graph.find_nodes(op="placeholder"), tensor_args, strict=True))
        with gm.graph.inserting_before(node):
            results = gm.graph.graph_copy(graph, copied)
        for source, copy_ in copied.items():
            # Dynamo's graphs carry each value's fake tensor as example_value; make_fx's as val
            if source.op != "placeholder" and "val" in source.meta:
                copy_.meta["example_value"] = source.meta["val"]
        for user in list(node.users):
            user.replace_all_uses_with(results[user.args[1]])
            gm.graph.erase_node(user)
        gm.graph.erase_node(node)
        replaced += 1
    if replaced:
        gm.graph.lint()
        gm.recompile()
    return replaced


def _traced_decomposition(op, node: torch.fx.Node):
    """``(graph, tensor argument nodes)``: ``op``'s decomposition traced by make_fx on the
    call's fake arguments (symbolic shapes included), the graph's placeholders standing for
    those nodes in order; None where it returns NotImplemented."""
    from torch.fx.experimental.proxy_tensor import make_fx

    flat, spec = pytree.tree_flatten((node.args, node.kwargs))
    tensor_at = [i for i, arg in enumerate(flat) if isinstance(arg, torch.fx.Node)]

    def formula(*tensors):
        values = list(flat)
        for i, tensor in zip(tensor_at, tensors, strict=True):
            values[i] = tensor.detach()  # quantization has no gradient, as the op's Autograd kernel says
        args, kwargs = pytree.tree_unflatten(values, spec)
        result = op.decomposition(*args, **kwargs)
        if result is NotImplemented:
            raise _KeepsKernelCall
        return result

    fakes = [flat[i].meta["example_value"] for i in tensor_at]
    if not all(isinstance(fake, torch.Tensor) for fake in fakes):
        return None  # a symbolic scalar argument (a traced float): the call keeps the kernel
    try:
        with fakes[0].fake_mode:  # Dynamo's, whose shape environment holds the symbolic sizes
            traced = make_fx(formula)(*fakes)
    except _KeepsKernelCall:
        return None
    return traced.graph, [flat[i] for i in tensor_at]
