"""Validation helpers shared by the op modules.

Shape rules take symbolic sizes: conditions go to ``torch._check_value`` as SymBools
(never through ``bool()``), so checking a valid call under torch.compile adds a runtime
assert at most, never a guard that would specialise a dynamic dim.
"""

from __future__ import annotations

import torch


def check_same_shape(op: str, name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    def message():
        return f"{op}: {name} must have {ref_name}'s shape {tuple(ref.shape)}, got {tuple(t.shape)}"

    torch._check_value(t.dim() == ref.dim(), message)
    for a, b in zip(t.shape, ref.shape, strict=True):
        torch._check_value(a == b, message)


def check_group_ends(op: str, group_index: torch.Tensor, rows: int) -> None:
    """Value rules for cumulative row ends (eager only: they read the tensor)."""
    if group_index.numel() == 0:
        return
    ends = group_index.cpu()
    if bool((ends[1:] < ends[:-1]).any()):
        raise ValueError(f"{op}: group_index must be non-decreasing, got {ends.tolist()}")
    if int(ends[0]) < 0:
        raise ValueError(f"{op}: group_index values must be >= 0, got {int(ends[0])}")
    if int(ends[-1]) != rows:
        raise ValueError(f"{op}: group_index's last value must equal the number of rows S={rows}, "
                         f"got {int(ends[-1])}")
