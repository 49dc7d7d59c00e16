"""The ``quant_graph`` op namespace and what every op module registers into it.

Each op module defines its schema with ``LIB.define``, its fake kernel with
``torch.library.register_fake``, its eager kernel for every device with
``torch.library.impl(LIB, name, "CompositeExplicitAutograd")`` and, through
``delegate_to_torch_npu``, a ``PrivateUse1`` (npu) kernel that calls torch_npu's fused op.
"""

from __future__ import annotations

import importlib

import torch

LIB = torch.library.Library("quant_graph", "DEF")


def torch_npu_module():
    try:
        return importlib.import_module("torch_npu")
    except ImportError as err:  # pragma: no cover - only reachable with an npu device and no torch_npu
        raise RuntimeError(
            "quant_graph: a tensor is on an 'npu' device but torch_npu cannot be imported; "
            "install torch_npu with the CANN toolkit to run the fused kernels"
        ) from err


def delegate_to_torch_npu(name: str) -> None:
    """Register the npu kernel of ``quant_graph::name`` as a call to ``torch_npu.name``.

    This path is a thin hand-over to torch_npu's own fused kernel, which validates and
    computes on the device. It cannot be run on a machine without an Ascend NPU, so it is
    not exercised by this project's tests.
    """

    def npu_kernel(*args, **kwargs):
        return getattr(torch_npu_module(), name)(*args, **kwargs)

    torch.library.impl(LIB, name, "PrivateUse1")(npu_kernel)
