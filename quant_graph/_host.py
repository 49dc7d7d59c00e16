"""Whether torch_npu is in this process, decided once when quant_graph is imported.

* ``loaded``: torch_npu was imported before quant_graph (on an Ascend host ``import torch``
  autoloads it). It owns ``torch.ops.npu``; quant_graph registers only its GE converters.
* ``absent``: no torch_npu is installed.
* ``unloadable``: torch_npu is installed but importing it fails (no CANN: ``libhccl.so``
  missing; such an environment only imports torch at all with
  ``TORCH_DEVICE_BACKEND_AUTOLOAD=0``). The import is tried once, here.

In the last two cases quant_graph defines ``torch.ops.npu.<op>`` for its five operators
with torch_npu's registered schemas, backed by its own kernels, so code written against
torch_npu runs. Importing torch_npu after that fails (both would define those ops):
import torch_npu first, or not at all.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys


def _probe() -> tuple[str, str]:
    if "torch_npu" in sys.modules:
        return "loaded", ""
    if importlib.util.find_spec("torch_npu") is None:
        return "absent", ""
    try:
        importlib.import_module("torch_npu")
    except Exception as err:  # noqa: BLE001 - without CANN torch_npu fails in many ways; all mean "not here"
        return "unloadable", f"{type(err).__name__}: {err}"
    return "loaded", ""


TORCH_NPU, TORCH_NPU_ERROR = _probe()


def defines_npu_namespace() -> bool:
    """Whether quant_graph owns ``torch.ops.npu`` in this process."""
    return TORCH_NPU != "loaded"
