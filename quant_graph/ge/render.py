"""GE graphs as Graphviz DOT (and SVG where Graphviz's ``dot`` is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .._registry import fused_ge_types
from .summary import GraphIndex


def to_dot(index: GraphIndex) -> str:
    """The graph in Graphviz DOT: fused quant nodes filled, constants small and grey."""
    def quoted(text):
        return '"' + str(text).replace('"', r'\"') + '"'

    lines = ["digraph ge {", "  rankdir=TB;", '  node [shape=box, fontname="Helvetica", fontsize=10];']
    for op in index.graph.op:
        if op.type in fused_ge_types():
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


def write_dot(pbtxt_path: Path, index: GraphIndex) -> list[Path]:
    """The graph as DOT beside its pbtxt, and as SVG where ``dot`` is installed."""
    dot_path = pbtxt_path.with_suffix(".dot")
    dot_path.write_text(to_dot(index))
    if not shutil.which("dot"):
        return [dot_path]
    svg = dot_path.with_suffix(".svg")
    subprocess.run(["dot", "-Tsvg", str(dot_path), "-o", str(svg)], check=True)
    return [dot_path, svg]
