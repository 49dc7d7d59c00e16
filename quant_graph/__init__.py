"""quant_graph: Ascend's fused quantization operators as torch.compile-friendly custom ops.

Each public function keeps torch_npu's name and signature and calls one op in the
``quant_graph`` namespace (``torch.ops.quant_graph.<name>``): on an npu device it runs
torch_npu's fused kernel, anywhere else an exact eager fallback.
"""

from . import native
from .dequant_swiglu_quant import npu_dequant_swiglu_quant
from .dynamic_quant import npu_dynamic_quant, npu_dynamic_quant_asymmetric
from .group_quant import npu_group_quant
from .quantize import npu_quantize

__all__ = [
    "native",
    "npu_dequant_swiglu_quant",
    "npu_dynamic_quant",
    "npu_dynamic_quant_asymmetric",
    "npu_group_quant",
    "npu_quantize",
]
