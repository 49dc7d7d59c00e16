"""torch_npu's names for quant_graph's five operators, for code written against torch_npu on a
machine where torch_npu cannot load::

    try:
        import torch_npu
    except ImportError:
        from quant_graph import torch_npu

``torch_npu.npu_dynamic_quant`` and the others are ``torch.ops.npu.<op>``, as in torch_npu
itself, so compiled graphs hold the same nodes (and match the same FX patterns) as on an
Ascend host; the dtype constants torch_npu defines for formats torch lacks (``hifloat8`` ...)
are its int codes. Any other attribute raises AttributeError: this is not torch_npu.
"""

from __future__ import annotations

import torch

from ._dtypes import TORCH_NPU_CODES
from ._registry import OPS

# torch_npu.hifloat8 and its kin: int dtype codes, as the ops' int dtype arguments take them
DTYPES = {name: code for code, name in TORCH_NPU_CODES.items() if isinstance(name, str)}

__all__ = sorted([*OPS, *DTYPES])


def __getattr__(name: str):
    if name in OPS:
        return getattr(torch.ops.npu, name)
    if name in DTYPES:
        return DTYPES[name]
    raise AttributeError(f"quant_graph.torch_npu provides only torch_npu's quantization operators "
                         f"({', '.join(sorted(OPS))}) and dtype codes ({', '.join(sorted(DTYPES))}); "
                         f"torch_npu.{name} needs the real torch_npu, with CANN")


def __dir__() -> list[str]:
    return __all__
