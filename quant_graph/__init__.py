"""quant_graph: Ascend's fused quantization operators as torch.compile-friendly custom ops.

Each public function keeps torch_npu's name and signature and calls one op in the
``quant_graph`` namespace (``torch.ops.quant_graph.<name>``): on an npu device it runs
torch_npu's fused kernel, anywhere else an exact eager fallback.
"""

from . import native
from .dynamic_quant import npu_dynamic_quant, npu_dynamic_quant_asymmetric

__all__ = ["native", "npu_dynamic_quant", "npu_dynamic_quant_asymmetric"]
