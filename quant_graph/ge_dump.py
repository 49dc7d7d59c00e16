"""GE graph dumps and readable summaries: what a user inspects to see the fused kernels.

``dump_ge_graph(fn, *args, dump_dir=...)`` compiles ``fn`` with TorchAir's backend
(offline GE mode on a machine without CANN), writes each GE graph as TorchAir's pbtxt, and
returns them with summaries: each fused node's type, inputs, attrs and outputs, dynamic
dims as -1. The summaries read only the protos' fields; TorchAir itself is imported by
``converters`` alone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

# The fused Ascend operators quant_graph's ops lower to.
FUSED_QUANT_TYPES = ("DynamicQuantV2", "DequantSwigluQuant", "Quantize", "AscendQuantV2", "GroupQuant")
# Nodes whose output has the dtype of their first input.
_DTYPE_PRESERVING = ("Reshape", "Unsqueeze", "Squeeze", "Tile", "Identity", "TensorMove", "ExpandDims")
_META_SHAPE = re.compile(r"(?:shape=)?torch\.Size\(\[([^\]]*)\]\)")


@dataclass
class GeTensor:
    name: str
    source: str | None  # "node:index", None for an absent optional input
    dtype: str = "?"
    shape: list[int] | None = None  # -1 for a dynamic dim; None when the graph does not say


@dataclass
class GeNode:
    name: str
    type: str
    inputs: list[GeTensor]
    attrs: dict[str, object]
    outputs: list[GeTensor] = field(default_factory=list)


def _proto_dtype_name(desc, value: int) -> str:
    return desc.DESCRIPTOR.fields_by_name["dtype"].enum_type.values_by_number[value].name


def _attr_value(attr):
    kind = attr.WhichOneof("value")
    if kind == "list":
        items = attr.list
        for name in ("i", "f", "s", "b"):
            values = list(getattr(items, name))
            if values:
                return [v.decode() if isinstance(v, bytes) else v for v in values]
        return []
    value = getattr(attr, kind) if kind else None
    return value.decode() if isinstance(value, bytes) else value


def _meta_shape(desc):
    """Shape from the FX meta TorchAir stores on a descriptor: symbols -> -1."""
    if "_meta" not in desc.attr:
        return None
    meta = str(_attr_value(desc.attr["_meta"]))
    if "SymInt" in meta:  # a size passed into the graph as a scalar
        return []
    match = _META_SHAPE.search(meta)
    if not match:
        return None
    dims = [d.strip() for d in match.group(1).split(",") if d.strip()]
    return [int(d) if d.lstrip("-").isdigit() else -1 for d in dims]


def _desc_shape(desc):
    if desc.shape.dim:
        return list(desc.shape.dim)
    return _meta_shape(desc)


class GraphIndex:
    """A GraphDef with its producers indexed, to resolve what the descriptors leave unset."""

    def __init__(self, graph, ge_dtype_names: dict[int, str], input_names=None):
        self.graph = graph
        self.ge_dtype_names = ge_dtype_names
        # op type -> its inputs in order: shows optional inputs a node leaves out entirely
        self.input_names = input_names
        self.ops = {op.name: op for op in graph.op}

    def _producer(self, source):
        name, _, index = source.partition(":")
        return self.ops.get(name), int(index or 0)

    def dtype_of(self, source: str, depth: int = 0) -> str:
        op, index = self._producer(source)
        if op is None or depth > 32:
            return "?"
        if index < len(op.output_desc):
            desc = op.output_desc[index]
            name = _proto_dtype_name(desc, desc.dtype)
            if name != "DT_UNDEFINED":
                return name
        if op.type == "Cast":
            return self.ge_dtype_names.get(op.attr["dst_type"].i, "?")
        if op.type == "Bitcast":
            return self.ge_dtype_names.get(op.attr["type"].i, "?")
        if op.type == "Shape":
            return self.ge_dtype_names.get(op.attr["dtype"].i, "?")
        if op.type in _DTYPE_PRESERVING and op.input:
            return self.dtype_of(op.input[0], depth + 1)
        if op.type == "Fill" and len(op.input) > 1:
            return self.dtype_of(op.input[1], depth + 1)
        return "?"

    def shape_of(self, source: str):
        op, index = self._producer(source)
        if op is None or index >= len(op.output_desc):
            return None
        return _desc_shape(op.output_desc[index])

    def node(self, op) -> GeNode:
        inputs = []
        # descriptors pair with the data inputs in order; '' marks an absent optional input
        sources = [i for i in op.input if not i.startswith("^")]
        for desc, source in zip(op.input_desc, sources, strict=False):
            if not source:
                inputs.append(GeTensor(desc.name, None))
                continue
            dtype = _proto_dtype_name(desc, desc.dtype)
            if dtype == "DT_UNDEFINED":
                dtype = self.dtype_of(source)
            inputs.append(GeTensor(desc.name, source, dtype, _desc_shape(desc) or self.shape_of(source)))
        if self.input_names is not None and op.type in FUSED_QUANT_TYPES:
            given = {t.name: t for t in inputs}
            inputs = [given.get(name, GeTensor(name, None)) for name in self.input_names(op.type)] or inputs
        outputs = [GeTensor(d.name, f"{op.name}:{i}", self.dtype_of(f"{op.name}:{i}"), _desc_shape(d))
                   for i, d in enumerate(op.output_desc)]
        attrs = {k: _attr_value(v) for k, v in sorted(op.attr.items()) if not k.startswith(("_", "["))}
        return GeNode(op.name, op.type, inputs, attrs, outputs)

    def nodes(self, types=None) -> list[GeNode]:
        return [self.node(op) for op in self.graph.op if types is None or op.type in types]


def _fmt_tensor(t: GeTensor) -> str:
    if t.source is None:
        return f"{t.name}=(absent)"
    shape = "" if t.shape is None else "[" + ", ".join(map(str, t.shape)) + "]"
    return f"{t.name}={t.dtype}{shape}"


def _fmt_attr(key, value, ge_dtype_names):
    if key in ("dst_type", "type") and isinstance(value, int) and value in ge_dtype_names:
        return f"{key}={ge_dtype_names[value]}"
    return f"{key}={value!r}"


def format_summary(index: GraphIndex, title: str = "GE graph") -> str:
    """One block per fused quant node (inputs, attrs, outputs), then the rest by type."""
    fused = index.nodes(FUSED_QUANT_TYPES)
    data = index.nodes(("Data",))
    others = Counter(op.type for op in index.graph.op
                     if op.type not in (*FUSED_QUANT_TYPES, "Data", "NetOutput"))
    lines = [f"{title}: {len(fused)} fused quant node(s), {len(data)} input(s), {len(index.graph.op)} nodes in all"]
    for node in data:
        lines.append(f"  input {node.name}: " + ", ".join(_fmt_tensor(o) for o in node.outputs))
    for node in fused:
        lines.append(f"  {node.type} ({node.name})")
        lines.append("    inputs:  " + ", ".join(_fmt_tensor(t) for t in node.inputs))
        lines.append("    attrs:   " + ", ".join(_fmt_attr(k, v, index.ge_dtype_names) for k, v in node.attrs.items()))
        lines.append("    outputs: " + ", ".join(_fmt_tensor(t) for t in node.outputs))
    if others:
        lines.append("  other nodes: " + ", ".join(f"{t} x{n}" for t, n in sorted(others.items())))
    return "\n".join(lines)


# Which fused GE operator(s) each quant_graph op may lower to.
EXPECTED_GE_TYPES = {
    "npu_dynamic_quant_asymmetric": ("DynamicQuantV2",),
    "npu_dynamic_quant": ("DynamicQuantV2",),
    "npu_quantize": ("Quantize", "AscendQuantV2"),
    "npu_group_quant": ("GroupQuant",),
    "npu_dequant_swiglu_quant": ("DequantSwigluQuant",),
}


@dataclass
class GeDump:
    """What ``dump_ge_graph`` returns: the compiled call's outputs, the quant ops Dynamo
    captured, and each GE graph built."""

    outputs: object
    fx_quant_ops: Counter
    pbtxt_paths: list[Path]
    graphs: list[GraphIndex]

    def fused_nodes(self) -> list[GeNode]:
        return [node for graph in self.graphs for node in graph.nodes(FUSED_QUANT_TYPES)]

    def not_lowered(self) -> list[str]:
        """quant ops of the FX graph with no fused GE node to show for them."""
        fused = Counter(node.type for node in self.fused_nodes())
        missing = []
        for op, count in sorted(self.fx_quant_ops.items()):
            for _ in range(count):
                ge_type = next((t for t in EXPECTED_GE_TYPES[op] if fused[t] > 0), None)
                if ge_type is None:
                    missing.append(op)
                else:
                    fused[ge_type] -= 1
        return missing

    def summary(self) -> str:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(self.fx_quant_ops.items())) or "none"
        fused = Counter(node.type for node in self.fused_nodes())
        lines = [f"quant ops captured: {ops}",
                 "fused GE nodes: " + (", ".join(f"{t} x{n}" for t, n in sorted(fused.items())) or "none"),
                 "not lowered to a fused node: " + (", ".join(self.not_lowered()) or "nothing")]
        lines += [format_summary(graph, f"GE graph {path.name}")
                  for path, graph in zip(self.pbtxt_paths, self.graphs, strict=True)]
        return "\n".join(lines)

    def write_dot(self) -> list[Path]:
        """Each graph as Graphviz DOT beside its pbtxt, and as SVG where ``dot`` is installed."""
        written = []
        for path, graph in zip(self.pbtxt_paths, self.graphs, strict=True):
            dot_path = path.with_suffix(".dot")
            dot_path.write_text(to_dot(graph))
            written.append(dot_path)
            if shutil.which("dot"):
                svg = dot_path.with_suffix(".svg")
                subprocess.run(["dot", "-Tsvg", str(dot_path), "-o", str(svg)], check=True)
                written.append(svg)
        return written


def to_dot(index: GraphIndex) -> str:
    """The graph in Graphviz DOT: fused quant nodes filled, constants small and grey."""
    def quoted(text):
        return '"' + str(text).replace('"', r'\"') + '"'

    lines = ["digraph ge {", "  rankdir=TB;", '  node [shape=box, fontname="Helvetica", fontsize=10];']
    for op in index.graph.op:
        if op.type in FUSED_QUANT_TYPES:
            style = ', style=filled, fillcolor="#f6c85f", penwidth=2'
        elif op.type == "Const":
            style = ", fontsize=7, color=grey, fontcolor=grey"
        elif op.type in ("Data", "NetOutput"):
            style = ", shape=ellipse"
        else:
            style = ""
        lines.append(f"  {quoted(op.name)} [label={quoted(op.type + chr(10) + op.name)}{style}];")
        for source in op.input:
            if source:
                lines.append(f"  {quoted(source.lstrip('^').split(':')[0])} -> {quoted(op.name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _recording_quant_ops(backend_fn, counter: Counter):
    """Wrap a backend to count the quant_graph ops in each graph Dynamo hands it."""
    def compile_graph(gm, example_inputs):
        for node in gm.graph.nodes:
            target = str(node.target) if node.op == "call_function" else ""
            if target.startswith("quant_graph."):
                counter[target.split(".")[1]] += 1
        return backend_fn(gm, example_inputs)

    return compile_graph


def dump_ge_graph(fn, *args, dump_dir, dynamic: bool = True, fullgraph: bool = True, **kwargs) -> GeDump:
    """Compile ``fn`` with TorchAir's backend, call it on ``args``, and return the GE graphs
    that call built (written to ``dump_dir`` as ``*.pbtxt``) with its outputs."""
    from converters.ge_graph import DUMP_PREFIX, ge_dtype_names, ge_input_names, npu_backend, read_graphs

    earlier = set(Path(dump_dir).glob(f"{DUMP_PREFIX}*.txt"))
    fx_quant_ops = Counter()
    backend_fn = _recording_quant_ops(npu_backend(dump_dir=dump_dir), fx_quant_ops)
    compiled = torch.compile(fn, backend=backend_fn, dynamic=dynamic, fullgraph=fullgraph)
    outputs = compiled(*args, **kwargs)
    fresh = read_graphs(dump_dir, skip=earlier)
    names = ge_dtype_names()
    graphs = [GraphIndex(graph, names, ge_input_names) for _, graph in fresh]
    return GeDump(outputs, fx_quant_ops, [path for path, _ in fresh], graphs)
