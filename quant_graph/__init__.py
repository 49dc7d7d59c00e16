"""quant_graph: Ascend's fused quantization operators as torch.compile-friendly custom ops.

Each public function keeps torch_npu's name and signature and calls one op in the
``quant_graph`` namespace (``torch.ops.quant_graph.<name>``): on an npu device it runs
torch_npu's fused kernel, anywhere else an exact eager fallback.
"""

import importlib.util
import sys

from . import native
from .backend import backend
from .dequant_swiglu_quant import npu_dequant_swiglu_quant
from .dynamic_quant import npu_dynamic_quant, npu_dynamic_quant_asymmetric
from .group_quant import npu_group_quant
from .quantize import npu_quantize

__all__ = [
    "backend",
    "native",
    "npu_dequant_swiglu_quant",
    "npu_dynamic_quant",
    "npu_dynamic_quant_asymmetric",
    "npu_group_quant",
    "npu_quantize",
]


def _register_ge_converters():
    """On a host where torch_npu (and so TorchAir) imports, register the GE converters.

    Offline GE mode is never entered here: it loads only when asked for
    (``converters.load_torchair()``, ``quant_graph.ge_dump``). Importing quant_graph must not
    fail for TorchAir's sake, so any failure here leaves the converters unregistered.
    """
    if "torchair" not in sys.modules and importlib.util.find_spec("torch_npu") is None:
        return
    try:
        import converters

        converters.load_torchair(offline=False)
    except Exception:  # noqa: BLE001
        pass


_register_ge_converters()
