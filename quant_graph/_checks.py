"""Validation helpers shared by the op modules.

Shape rules take symbolic sizes: conditions go to ``torch._check_value`` as SymBools
(never through ``bool()``), so checking a valid call under torch.compile records what it
needs as a relation between sizes (e.g. ``Eq(s1, s2)`` for scales' length and a channel
dim), never a guard that pins a dynamic dim to a value.
"""

from __future__ import annotations

import torch


def check_same_shape(op: str, name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    def message():
        return f"{op}: {name} must have {ref_name}'s shape {tuple(ref.shape)}, got {tuple(t.shape)}"

    torch._check_value(t.dim() == ref.dim(), message)
    for a, b in zip(t.shape, ref.shape, strict=True):
        torch._check_value(a == b, message)


def check_devices(op: str, ref_name: str, ref: torch.Tensor, **tensors: torch.Tensor | None) -> None:
    """Every tensor argument on ``ref``'s device: a kernel reads them all as its memory."""
    for name, t in tensors.items():
        if t is not None and t.device != ref.device:
            raise ValueError(f"{op}: {name} must be on {ref_name}'s device {ref.device}, got {t.device}")
