"""quant_graph: Ascend's fused quantization operators as torch.compile-friendly custom ops.

Each public function keeps torch_npu's name and signature and calls one op in the
``quant_graph`` namespace (``torch.ops.quant_graph.<name>``): on an npu device it runs
torch_npu's fused kernel, on CPU the C kernel (or the portable torch kernel where the C
library cannot be built), anywhere else the portable torch kernel. Where torch_npu cannot
load, the same operators are also ``torch.ops.npu.<name>`` (``_host``), and
``quant_graph.torch_npu`` gives torch_npu's names for them.
"""

from . import converters, native, ops  # noqa: F401 - ops defines every operator in the registry
from ._registry import OPS
from ._version import __version__
from .backend import backend

globals().update({name: op.public for name, op in OPS.items()})

__all__ = ["__version__", "backend", "native", *sorted(OPS)]

native.enable()
converters.register_on_ascend_host()
