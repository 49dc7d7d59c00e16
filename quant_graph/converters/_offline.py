"""Offline GE mode: TorchAir's real Python code, on a machine without CANN or an NPU.

TorchAir builds its GE graph (protobuf) in pure Python; of its native module
``torchair.core._torchair``, graph construction only touches the names set in
``_graph_construction_stub`` below.
Those are replaced by no-ops, and every other native entry point (loading, compiling or
running a graph on a device) raises ``CannRequiredError`` saying so. TorchAir's sources
come from the torch_npu wheel installed in a side directory, where ``import torch_npu``
cannot find it (so ``import torch`` keeps working on a host without CANN):

    pip install --no-deps --target ~/.cache/quant_graph/torch_npu torch-npu==2.13.0
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
import warnings
from pathlib import Path

TORCH_NPU_PIN = "torch-npu==2.13.0"


def torchair_sources_pip_args() -> list[str]:
    """pip's arguments that put TorchAir's sources (the torch_npu wheel) in the side directory."""
    return ["--no-deps", "--target", str(side_install_dir()), TORCH_NPU_PIN]
_NATIVE_MODULES = ("_torchair", "_npu_graph_executor", "_npu_utils", "_abi_compat_ge_apis")


class CannRequiredError(RuntimeError):
    """An offline-mode TorchAir call that needs CANN's GE runtime or an NPU."""


def side_install_dir() -> Path:
    return Path(os.environ.get("QUANT_GRAPH_TORCH_NPU_DIR", Path.home() / ".cache" / "quant_graph" / "torch_npu"))


def missing_pieces() -> list[tuple[str, list[str]]]:
    """What offline GE mode lacks here, each with the pip arguments that install it: TorchAir's
    Python sources (from the torch_npu wheel, into the side directory) and the two Python
    packages they import. Checked before anything compiles, so no error blames the model."""
    missing = []
    if not (torchair_source_dir() / "torchair" / "__init__.py").is_file():
        missing.append((f"TorchAir's Python sources (in {side_install_dir()})",
                        torchair_sources_pip_args()))
    for module, requirement in (("google.protobuf", "protobuf>=3.13"), ("packaging", "packaging")):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # find_spec of a dotted name imports its parent
            found = False
        if not found:
            missing.append((f"the Python package {requirement.split('>')[0]}", [requirement]))
    return missing


def torchair_source_dir() -> Path:
    return side_install_dir() / "torch_npu" / "dynamo"


def _needs_cann(name: str):
    def call(*args, **kwargs):
        raise CannRequiredError(
            f"torchair: {name} needs CANN's GE runtime (libge_runner.so) and an Ascend NPU; quant_graph's offline "
            f"GE mode builds and dumps GE graphs but cannot compile or run them")

    return call


class _TorchDataType:
    """Stands in for the native enum; TorchAir only uses its members as dict values offline."""

    def __getattr__(self, name: str) -> str:
        if name.startswith("__"):
            raise AttributeError(name)
        return name


class _TorchNpuGraphBase:
    """A graph handle that can be created but not loaded, compiled or run."""

    def __init__(self, name: str = "") -> None:
        self.name = name

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _needs_cann(f"TorchNpuGraph.{name}")


def _native_stub(name: str) -> types.ModuleType:
    module = types.ModuleType(f"torchair.core.{name}")

    def native_attribute(attr: str):
        if attr.startswith("__"):  # module protocol (__file__, __path__ ...): as for any module
            raise AttributeError(attr)
        return _needs_cann(f"{name}.{attr}")

    module.__getattr__ = native_attribute
    return module


def _graph_construction_stub() -> types.ModuleType:
    module = _native_stub("_torchair")
    module.QUANT_GRAPH_OFFLINE = True
    module.TorchDataType = _TorchDataType()
    module.TorchNpuGraphBase = _TorchNpuGraphBase
    for name in ("InitializeGraphEngine", "FinalizeGraphEngine", "SetDebugLogPath"):
        setattr(module, name, lambda *args, **kwargs: None)
    # "no IR registry here": TorchAir then generates no converter of its own for unknown ops.
    module.get_registered_ir_def = lambda op_type: ("UNAVAILABLE_OFFLINE", [], [], [])
    # No installed CANN to hold optional inputs/attrs against: report compatible ("").
    # What offline mode checks instead is each node against TorchAir's REG_OP definitions.
    module.check_cann_compat = lambda op_type, optional_inputs, optional_attrs: ""
    return module


def is_offline_torchair() -> bool:
    """Whether the TorchAir loaded in this process runs on this module's stubs."""
    return getattr(sys.modules.get("torchair.core._torchair"), "QUANT_GRAPH_OFFLINE", False)


def import_offline():
    """Import TorchAir from the side install with its native pieces replaced."""
    source = torchair_source_dir()
    if not (source / "torchair" / "__init__.py").is_file():
        raise ModuleNotFoundError(
            f"quant_graph: offline GE mode needs TorchAir's Python sources, from the torch_npu wheel installed "
            f"beside (not into) this environment; none at {source}. Install them with:\n    "
            + "pip install " + " ".join(torchair_sources_pip_args())
            + "\n(or point QUANT_GRAPH_TORCH_NPU_DIR at such a directory)")
    for name in _NATIVE_MODULES:
        sys.modules[f"torchair.core.{name}"] = (
            _graph_construction_stub() if name == "_torchair" else _native_stub(name))
    sys.path.insert(0, str(source))
    with warnings.catch_warnings():
        # TorchAir's converters for torch_npu's other ops cannot register where torch_npu is
        # absent; offline that is expected. Its converters for the five ops quant_graph
        # defines in torch.ops.npu do register, and quant_graph's replace them afterwards.
        warnings.filterwarnings("ignore", message="Failed to import torchair._ge_concrete_graph.ge_converter")
        import torchair
        import torchair._ge_concrete_graph.ge_converter.custom  # noqa: F401 - TorchAir imports it lazily

    return torchair
