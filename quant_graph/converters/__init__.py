"""TorchAir GE converters for quant_graph's ops: the only code that imports torchair.

One module per operator, named as the operator's module in ``quant_graph/ops/``, each
registering the converter that lowers ``torch.ops.quant_graph.<op>`` to its fused GE
operator; ``_ge.py`` holds what they share. ``load_torchair()`` imports TorchAir (an Ascend
host's own, or offline from a side install: ``_offline.py``) and registers them all;
``ge_graph.py`` is TorchAir's backend and the reading of its graph dumps.

Importing this package imports no TorchAir: only ``load_torchair`` and
``register_on_ascend_host`` do.
"""

from __future__ import annotations

import importlib
import sys
import warnings

from .. import _host
from .._registry import OPS
from ._offline import import_offline, is_offline_torchair


def _import_real_torchair():
    """TorchAir as installed with torch_npu on an Ascend host, or None where torch_npu
    cannot be imported (no CANN fails in many ways; all mean "not here")."""
    try:
        importlib.import_module("torch_npu")
        return importlib.import_module("torchair")
    except Exception:  # noqa: BLE001
        return None


def _register_converters() -> None:
    for op in OPS.values():
        try:
            importlib.import_module(f"{__name__}.{op.module}")
        except Exception as err:
            raise RuntimeError(f"quant_graph: the GE converter of {op.name} (quant_graph/converters/{op.module}.py) "
                               f"failed to register: {err}") from err


def load_torchair(*, offline: bool | None = None):
    """Import TorchAir, register every quant_graph converter, and return ``(torchair, offline)``.

    ``offline=None``: the real TorchAir where torch_npu imports, else offline GE mode;
    ``True``: offline GE mode; ``False``: the real TorchAir or ModuleNotFoundError. One
    process holds one TorchAir, so asking for the other mode than the one loaded raises.
    """
    loaded = sys.modules.get("torchair")
    if loaded is not None:
        loaded_offline = is_offline_torchair()
        if offline is not None and offline != loaded_offline:
            def mode(is_offline):
                return "offline" if is_offline else "from torch_npu"

            raise RuntimeError(f"quant_graph: TorchAir is already loaded {mode(loaded_offline)} in this process; "
                               f"it cannot also be loaded {mode(offline)}")
        torchair, offline = loaded, loaded_offline
    else:
        torchair = None if offline else _import_real_torchair()
        if torchair is None:
            if offline is False:
                raise ModuleNotFoundError("quant_graph: torch_npu/TorchAir cannot be imported on this host")
            torchair, offline = import_offline(), True
    _register_converters()
    return torchair, bool(offline)


def register_on_ascend_host() -> None:
    """At ``import quant_graph``, where torch_npu is loaded (``_host``), register the GE
    converters with its TorchAir. Offline GE mode is never entered here, and a host where
    torch_npu is missing or cannot load is left alone; a converter that fails to register
    is reported loudly."""
    if _host.TORCH_NPU != "loaded" or _import_real_torchair() is None:
        return
    try:
        load_torchair(offline=False)
    except RuntimeError as err:
        warnings.warn(str(err), RuntimeWarning, stacklevel=2)
