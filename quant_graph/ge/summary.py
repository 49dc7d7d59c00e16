"""Readable summaries of GE graphs: each fused quant node's inputs, attrs and outputs.

They read only the GraphDef protos' fields (dynamic dims as -1); nothing here imports
TorchAir.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from .._registry import fused_ge_types

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
        if self.input_names is not None and op.type in fused_ge_types():
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
    fused = index.nodes(fused_ge_types())
    data = index.nodes(("Data",))
    others = Counter(op.type for op in index.graph.op
                     if op.type not in (*fused_ge_types(), "Data", "NetOutput"))
    lines = [f"{title}: {len(fused)} fused quant node(s), {len(data)} input(s), {len(index.graph.op)} nodes in all"]
    for node in data:
        lines.append(f"  input {node.name}: " + ", ".join(_fmt_tensor(o) for o in node.outputs))
    for node in fused:
        lines.append(f"  {node.type} ({node.name})")
        lines.append("    inputs:  " + ", ".join(_fmt_tensor(t) for t in node.inputs))
        lines.append("    attrs:   " + (", ".join(_fmt_attr(k, v, index.ge_dtype_names) for k, v in node.attrs.items())
                                   or "(none set: every attr at its REG_OP default)"))
        lines.append("    outputs: " + ", ".join(_fmt_tensor(t) for t in node.outputs))
    if others:
        lines.append("  other nodes: " + ", ".join(f"{t} x{n}" for t, n in sorted(others.items())))
    return "\n".join(lines)


# Which fused GE operator(s) each quant_graph op may lower to.
