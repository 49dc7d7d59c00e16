"""Compile a function with TorchAir's backend and return the GE graphs it built.

``dump_ge_graph(fn, *args, dump_dir=...)`` compiles ``fn`` (offline GE mode on a machine
without CANN), writes each GE graph as TorchAir's pbtxt, and returns them with the quant
ops Dynamo captured, summaries and renderings.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from .._registry import OPS, fused_ge_types
from ..converters.ge_graph import DUMP_PREFIX, ge_dtype_names, ge_input_names, npu_backend, read_graphs
from .render import write_dot
from .summary import GeNode, GraphIndex, format_summary

LEGEND = """legend: name=DTYPE[dims], -1 a dynamic dim; (absent) an optional input not given; ? a dtype the graph
  does not record (an output nothing reads, e.g. the symmetric op's offset); an input DT_INT64[] is a size
  Dynamo passes into the graph as a scalar (a dynamic dim's value)"""


@dataclass
class GeDump:
    """What ``dump_ge_graph`` returns: the compiled call's outputs, the quant ops Dynamo
    captured, and each GE graph built."""

    outputs: object
    fx_quant_ops: Counter
    pbtxt_paths: list[Path]
    graphs: list[GraphIndex]

    def fused_nodes(self) -> list[GeNode]:
        return [node for graph in self.graphs for node in graph.nodes(fused_ge_types())]

    def not_lowered(self) -> list[str]:
        """quant ops of the FX graph with no fused GE node to show for them."""
        fused = Counter(node.type for node in self.fused_nodes())
        missing = []
        for op, count in sorted(self.fx_quant_ops.items()):
            for _ in range(count):
                ge_type = next((t for t in OPS[op.rpartition(".")[2]].ge_types if fused[t] > 0), None)
                if ge_type is None:
                    missing.append(op)
                else:
                    fused[ge_type] -= 1
        return missing

    def proto_text_paths(self) -> list[Path]:
        """TorchAir's own dumps (protobuf text format) beside each pbtxt."""
        return [path.with_suffix(".txt") for path in self.pbtxt_paths]

    def summary(self) -> str:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(self.fx_quant_ops.items())) or "none"
        fused = Counter(node.type for node in self.fused_nodes())
        lines = [f"quant ops captured: {ops}",
                 "fused GE nodes: " + (", ".join(f"{t} x{n}" for t, n in sorted(fused.items())) or "none"),
                 "not lowered to a fused node: " + (", ".join(self.not_lowered()) or "nothing")]
        lines += [format_summary(graph, f"GE graph {path.name}")
                  for path, graph in zip(self.pbtxt_paths, self.graphs, strict=True)]
        return "\n".join([*lines, LEGEND])

    def write_dot(self) -> list[Path]:
        """Each graph as Graphviz DOT beside its pbtxt, and as SVG where ``dot`` is installed."""
        return [f for path, graph in zip(self.pbtxt_paths, self.graphs, strict=True) for f in write_dot(path, graph)]


def captured_name(target) -> str | None:
    """How a summary names a quant op an FX node calls: ``npu_group_quant`` in the quant_graph
    namespace, ``torch.ops.npu.npu_group_quant`` in torch_npu's; None for anything else."""
    namespace, _, rest = str(target).partition(".")
    name = rest.partition(".")[0]
    if name not in OPS or namespace not in ("quant_graph", "npu"):
        return None
    return name if namespace == "quant_graph" else f"torch.ops.npu.{name}"


def _recording_quant_ops(backend_fn, counter: Counter):
    """Wrap a backend to count the quant ops (either namespace) in each graph Dynamo hands it."""
    def compile_graph(gm, example_inputs):
        for node in gm.graph.nodes:
            name = captured_name(node.target) if node.op == "call_function" else None
            if name is not None:
                counter[name] += 1
        return backend_fn(gm, example_inputs)

    return compile_graph


def dump_ge_graph(fn, *args, dump_dir, dynamic: bool = True, fullgraph: bool = True, **kwargs) -> GeDump:
    """Compile ``fn`` with TorchAir's backend, call it on ``args``, and return the GE graphs
    that call built (written to ``dump_dir`` as ``*.pbtxt``) with its outputs."""
    earlier = set(Path(dump_dir).glob(f"{DUMP_PREFIX}*.txt"))
    fx_quant_ops = Counter()
    backend_fn = _recording_quant_ops(npu_backend(dump_dir=dump_dir), fx_quant_ops)
    compiled = torch.compile(fn, backend=backend_fn, dynamic=dynamic, fullgraph=fullgraph)
    with torch.no_grad():  # the graph the NPU runs for inference: one forward graph, no backward
        outputs = compiled(*args, **kwargs)
    fresh = read_graphs(dump_dir, skip=earlier)
    names = ge_dtype_names()
    graphs = [GraphIndex(graph, names, ge_input_names) for _, graph in fresh]
    return GeDump(outputs, fx_quant_ops, [path for path, _ in fresh], graphs)
