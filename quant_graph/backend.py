"""The ``quant_graph`` torch.compile backend.

``torch.compile(model, backend="quant_graph")`` (registered through the
``torch_dynamo_backends`` entry point) or ``torch.compile(model, backend=quant_graph.backend(...))``:

* on an Ascend host (torch_npu and TorchAir import, an NPU is present): TorchAir's backend
  with quant_graph's converters, so each quant op runs as its fused GE kernel;
* elsewhere: inductor. Each quant op call whose mode has a decomposition (see
  ``decompose_quant_ops``: the dynamic quant ops into int8 and int4, per token, per tensor
  and per channel, with or without smooth_scales; npu_quantize in every mode but hifloat8)
  becomes a size switch: up to ``FUSED_UP_TO_ELEMENTS`` input elements its formula in
  torch ops, bit for bit the eager kernel's, which inductor fuses into its own loops
  (faster there than the call into the kernel: 0.48x its time at H=7168, one token); past
  it the call into the eager kernel, whose one pass is faster at large sizes. One dynamic
  graph serves every token count (the switch runs in the graph; in the one-token graph
  Dynamo specialises, it is decided at compile time). int4's packed output cannot share its
  layout with the kernel's in torch.cond, so int4 takes the formula at every size. The
  other calls (group_index, float8 and hifloat8 dynamic quant, group quant and
  dequant_swiglu_quant) stay calls into quant_graph's eager kernels. With ``dump_dir`` the
  GE graph the model would run on the NPU, with the fused ops, is built offline from the
  graph before that rewrite and dumped alongside.
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


# Up to this many input elements the decomposed formula, fused into inductor's loops, beats
# the call into the eager kernel; past it the kernel's one pass is faster (H = 7168,
# 2 threads, interleaved: the fused formula takes 0.48x the kernel call's time at 1 token,
# 0.78x at 64, 1.05x at 256 (1.8M elements), 1.6x at 4096).
FUSED_UP_TO_ELEMENTS = 1 << 20


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
        if op is None:
            continue
        single = isinstance(node.meta["example_value"], torch.Tensor)
        # Dynamo takes a tuple result apart with getitem; any other use keeps the call
        if not single and any(user.target is not operator.getitem for user in node.users):
            continue
        traced = _traced_decomposition(op, node)
        if traced is None:
            continue
        fused, kernel_call, tensor_args = traced
        example = tensor_args[0].meta["example_value"]
        switchable = _same_output_layouts(fused, kernel_call)
        # The switch runs in the graph where the token count is symbolic. Where Dynamo
        # specialised it (one token, whose graph is always its own) it is decided here, the
        # hidden size guarded if symbolic: a model never changes it, and torch.cond's branch
        # calls would cost 5 us of inductor's 55 at [1, 7168].
        at_run_time = switchable and not all(isinstance(size, int) for size in example.shape[:-1])
        if switchable and not at_run_time and not bool(example.numel() <= FUSED_UP_TO_ELEMENTS):
            continue  # past the switch: the kernel call stays
        with gm.graph.inserting_before(node):
            if at_run_time:
                results = _size_switch(gm, node, fused, kernel_call, tensor_args)
            else:
                results = _inlined(gm, fused, tensor_args)
        if single:
            node.replace_all_uses_with(results[0])
        for user in list(node.users):
            user.replace_all_uses_with(results[user.args[1]])
            gm.graph.erase_node(user)
        gm.graph.erase_node(node)
        replaced += 1
    if replaced:
        gm.graph.lint()
        gm.recompile()
    return replaced


def _inlined(gm: torch.fx.GraphModule, fused: torch.fx.GraphModule, tensor_args: list[torch.fx.Node]):
    """``fused``'s nodes copied into ``gm`` in front of the call: its result nodes."""
    copied = dict(zip(fused.graph.find_nodes(op="placeholder"), tensor_args, strict=True))
    results = gm.graph.graph_copy(fused.graph, copied)
    for source, copy_ in copied.items():
        # Dynamo's graphs carry each value's fake tensor as example_value; make_fx's as val
        if source.op != "placeholder" and "val" in source.meta:
            copy_.meta["example_value"] = source.meta["val"]
    return results


def _size_switch(gm: torch.fx.GraphModule, node: torch.fx.Node, fused: torch.fx.GraphModule,
                 kernel_call: torch.fx.GraphModule, tensor_args: list[torch.fx.Node]):
    """``torch.cond(input.numel() <= FUSED_UP_TO_ELEMENTS, fused, kernel_call, operands)``
    in front of the call: its result nodes. Inductor compiles both branches and picks one at
    run time, so one dynamic graph still serves every size."""
    graph = gm.graph
    names = [_free_attribute(gm, f"_quant_graph_{node.name}_{branch}") for branch in ("fused", "kernel")]
    for name, branch in zip(names, (fused, kernel_call), strict=True):
        gm.add_submodule(name, branch)
    example = tensor_args[0].meta["example_value"]
    numel = graph.call_function(torch.ops.aten.sym_numel.default, (tensor_args[0],))
    numel.meta["example_value"] = example.numel()
    small = graph.call_function(operator.le, (numel, FUSED_UP_TO_ELEMENTS))
    small.meta["example_value"] = numel.meta["example_value"] <= FUSED_UP_TO_ELEMENTS
    operands = []
    for arg in tensor_args:
        # cond refuses operands that require grad; quantization has none (the op's Autograd kernel)
        detached = graph.call_function(torch.ops.aten.detach.default, (arg,))
        detached.meta["example_value"] = arg.meta["example_value"].detach()
        operands.append(detached)
    branches = [graph.get_attr(name) for name in names]
    switch = graph.call_function(torch.ops.higher_order.cond, (small, *branches, tuple(operands)))
    outputs = _output_values(fused)
    switch.meta["example_value"] = tuple(outputs)
    results = []
    for i, value in enumerate(outputs):
        result = graph.call_function(operator.getitem, (switch, i))
        result.meta["example_value"] = value
        results.append(result)
    return results


def _free_attribute(gm: torch.fx.GraphModule, name: str) -> str:
    while hasattr(gm, name):
        name += "_"
    return name


def _output_values(gm: torch.fx.GraphModule) -> list[torch.Tensor]:
    """The fake tensors make_fx traced ``gm``'s outputs as."""
    (output,) = gm.graph.find_nodes(op="output")
    return [node.meta["val"] for node in pytree.tree_leaves(output.args[0])]


def _same_output_layouts(fused: torch.fx.GraphModule, kernel_call: torch.fx.GraphModule) -> bool:
    """Both branches return the same dtypes and shapes, each output's strides written as
    the running products of its sizes, the way torch.cond compares them: it refuses any
    other pair (int4's packed [T, H//8] output has strides (Max(1, H//8), 1)), which then
    keeps the fused formula at every size."""

    def layouts(gm):
        return [(out.dtype, str(tuple(out.shape)), str(out.stride())) for out in _output_values(gm)]

    return layouts(fused) == layouts(kernel_call) and all(
        str(out.stride()) == str(_dense_strides(out.shape)) for out in _output_values(fused))


def _dense_strides(shape) -> tuple:
    strides, running = [], 1
    for size in reversed(shape):
        strides.insert(0, running)
        running = running * size
    return tuple(strides)


def _traced_decomposition(op, node: torch.fx.Node):
    """``(fused, kernel_call, tensor argument nodes)``: ``op``'s decomposition and the call
    itself, each traced by make_fx on the call's fake arguments (symbolic shapes included)
    into a GraphModule whose placeholders stand for those nodes in order and which returns
    the op's outputs as a tuple; None where the decomposition returns NotImplemented."""
    from torch.fx.experimental.proxy_tensor import make_fx

    flat, spec = pytree.tree_flatten((node.args, node.kwargs))
    tensor_at = [i for i, arg in enumerate(flat) if isinstance(arg, torch.fx.Node)]

    def call_arguments(tensors):
        """The call's (args, kwargs), its tensor arguments replaced by ``tensors``, detached:
        quantization has no gradient, as the op's Autograd kernel says."""
        values = list(flat)
        for i, tensor in zip(tensor_at, tensors, strict=True):
            values[i] = tensor.detach()
        return pytree.tree_unflatten(values, spec)

    def formula(*tensors):
        args, kwargs = call_arguments(tensors)
        result = op.decomposition(*args, **kwargs)
        if result is NotImplemented:
            raise _KeepsKernelCall
        return as_tuple(result)

    def kernel_call(*tensors):
        args, kwargs = call_arguments(tensors)
        return as_tuple(node.target(*args, **kwargs))

    def as_tuple(result):
        """torch.cond's branches return tuples: single-tensor ops' too."""
        return (result,) if isinstance(result, torch.Tensor) else tuple(result)

    fakes = [flat[i].meta["example_value"] for i in tensor_at]
    if not all(isinstance(fake, torch.Tensor) for fake in fakes):
        return None  # a symbolic scalar argument (a traced float): the call keeps the kernel
    try:
        with fakes[0].fake_mode:  # Dynamo's, whose shape environment holds the symbolic sizes
            fused = make_fx(formula)(*fakes)
            kernel = make_fx(kernel_call)(*fakes)
    except _KeepsKernelCall:
        return None
    return fused, kernel, [flat[i] for i in tensor_at]
