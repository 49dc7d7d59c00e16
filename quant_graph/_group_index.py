"""The two meanings of ``group_index``, named so they are never confused.

* ENDS (npu_dynamic_quant*, npu_group_quant): cumulative row ends over the flattened rows;
  rows ``[ends[g-1], ends[g])`` belong to group g. Non-decreasing, >= 0, last == rows.
* COUNTS (npu_dequant_swiglu_quant): rows per group, >= 0, summing to at most the row
  count; rows past the sum belong to no group.

The kernels all work on ends: ``ends_from_counts`` converts. Value rules read the tensor,
so they run in eager mode only.
"""

from __future__ import annotations

import torch


def check_ends(op: str, group_index: torch.Tensor, rows: int) -> None:
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


def ends_from_counts(op: str, group_index: torch.Tensor, rows: int) -> torch.Tensor:
    """Checked row counts as int64 cumulative ends."""
    counts = group_index.cpu()
    if bool((counts < 0).any()):
        raise ValueError(f"{op}: group_index counts must be >= 0, got {counts.tolist()}")
    if int(counts.sum()) > rows:
        raise ValueError(f"{op}: group_index counts must sum to at most T={rows}, got {int(counts.sum())}")
    return torch.cumsum(group_index.to(torch.int64), 0).contiguous()


def row_groups(ends: torch.Tensor, rows: int) -> torch.Tensor:
    """Each row's group for ends, as ``group_of_row`` in csrc/kernels.c; every row must lie
    before the last end (the callers take rows past it out first)."""
    return torch.searchsorted(ends, torch.arange(rows, device=ends.device), right=True)
