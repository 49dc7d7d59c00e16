"""TorchAir GE converters for quant_graph's ops: the only code that imports torchair.

One module per operator, each registering a converter that lowers a
``torch.ops.quant_graph.*`` op to its one fused GE operator. ``load_torchair()`` imports
TorchAir (an Ascend host's real one, or offline from a side install) and registers them.
"""

from __future__ import annotations

import importlib
import sys

CONVERTER_MODULES = ("dynamic_quant", "quantize", "group_quant", "dequant_swiglu_quant")

_loaded = None


def _import_real_torchair():
    """TorchAir as installed with torch_npu on an Ascend host, or None."""
    if "torchair" in sys.modules:
        return sys.modules["torchair"]
    try:
        importlib.import_module("torch_npu")
        return importlib.import_module("torchair")
    except Exception:  # noqa: BLE001 - torch_npu fails in many ways without CANN; all mean "not here"
        return None


def load_torchair(*, offline: bool | None = None):
    """Import TorchAir and register every quant_graph converter; returns ``(torchair, offline)``.

    ``offline=None`` uses the real TorchAir where torch_npu imports, else offline GE mode
    (see ``converters._offline``); ``True`` forces offline mode.
    """
    global _loaded
    if _loaded is None:
        torchair = None if offline else _import_real_torchair()
        if torchair is None:
            if offline is False:
                raise ModuleNotFoundError("quant_graph: torch_npu/TorchAir cannot be imported on this host")
            from . import _offline

            torchair, offline = _offline.import_offline(), True
        importlib.import_module("quant_graph")  # defines the ops the converters register on
        for name in CONVERTER_MODULES:
            importlib.import_module(f"{__name__}.{name}")
        _loaded = (torchair, bool(offline))
    return _loaded
