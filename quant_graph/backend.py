"""The ``quant_graph`` torch.compile backend.

``torch.compile(model, backend="quant_graph")`` (registered through the
``torch_dynamo_backends`` entry point) or ``torch.compile(model, backend=quant_graph.backend(...))``:

* on an Ascend host (torch_npu and TorchAir import, an NPU is present): TorchAir's backend
  with quant_graph's converters, so each quant op runs as its fused GE kernel;
* elsewhere: inductor, with the quant ops kept as calls into quant_graph's eager kernels
  (one memory pass each, faster than what inductor generates from the formula; see
  ``benchmarks/bench.py``), and with ``dump_dir`` the GE graph the model would run on the
  NPU built offline and dumped alongside.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
from pathlib import Path

from .converters.ge_graph import DUMP_PREFIX, npu_backend, read_graphs


def npu_available() -> bool:
    """torch_npu imports and sees an NPU."""
    if importlib.util.find_spec("torch_npu") is None:
        return False
    try:
        torch_npu = importlib.import_module("torch_npu")
        return bool(torch_npu.npu.is_available())
    except Exception:  # noqa: BLE001 - without CANN torch_npu fails in many ways; all mean "no NPU"
        return False


def backend(*, dump_dir: str | Path | None = None, npu_config=None, inductor_options: dict | None = None,
            on_npu: bool | None = None):
    """A torch.compile backend; see the module docstring.

    Args:
        dump_dir: write each compiled graph's GE graph here (TorchAir's pbtxt and protobuf
            text; read them back with ``quant_graph.converters.ge_graph.read_graphs``).
        npu_config: a ``torchair.CompilerConfig`` for the NPU path (mode, graph dump ...).
        inductor_options: inductor config patches for the CPU path.
        on_npu: force the NPU (True) or the inductor (False) path; None detects.
    """

    def compile_graph(gm, example_inputs):
        if npu_available() if on_npu is None else on_npu:
            return npu_backend(config=npu_config, dump_dir=dump_dir, offline=False)(gm, example_inputs)
        if dump_dir is not None:
            # TorchAir's offline backend builds and dumps the GE graph; its own runnable
            # (the FX graph, eagerly) is not used: inductor runs the model here.
            earlier = set(Path(dump_dir).glob(f"{DUMP_PREFIX}*.txt"))
            npu_backend(dump_dir=dump_dir, offline=True)(copy.deepcopy(gm), example_inputs)
            read_graphs(dump_dir, skip=earlier)  # writes the readable pbtxt beside the new dump
        from torch._inductor.compile_fx import compile_fx  # inductor loads when a graph first compiles

        return compile_fx(gm, example_inputs, config_patches=inductor_options)

    return compile_graph


def quant_graph_backend(gm, example_inputs):
    """The backend registered as ``"quant_graph"``: ``backend()`` with its defaults."""
    return backend()(gm, example_inputs)
