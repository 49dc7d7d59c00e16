"""Exact int8 x int8 -> int32 matmuls on CPU, in aten ops both inductor and TorchAir lower.

A CPU stand-in for the NPU's int8 (grouped) matmul kernels: the reference the examples
check against. float32 holds integers exactly below 2^24, and a product of int8s is at
most 128 * 128 = 2^14, so summing K <= 1024 of them in float32 is exact whatever the
summation order; longer K is split into such chunks and the partial sums added in int32.
"""

import torch

EXACT_K = 1024


def int8_matmul(x_int8, weight_int8):
    """int32 ``[..., N] = x [..., K] @ weight [N, K].T``, exactly."""
    xf, wf = x_int8.float(), weight_int8.float()
    out = None
    for k in range(0, x_int8.shape[-1], EXACT_K):
        part = (xf[..., k:k + EXACT_K] @ wf[:, k:k + EXACT_K].t()).to(torch.int32)
        out = part if out is None else out + part
    return out


def grouped_int8_matmul(x_int8, weight_int8, group_ends, weight_scale=None):
    """``[T, N]``: rows ``[ends[e-1], ends[e])`` of x times ``weight[e] [N, K]``, int32; or,
    with ``weight_scale [E, N]``, that int32 times the expert's per-channel scale in float32.

    One masked matmul per expert keeps every shape static, so one compiled graph serves
    any token count and any split of tokens between experts.
    """
    rows = torch.arange(x_int8.shape[0], device=x_int8.device).unsqueeze(-1)
    group_starts = torch.cat([group_ends.new_zeros(1), group_ends[:-1]])
    dtype = torch.int32 if weight_scale is None else torch.float32
    out = torch.zeros(x_int8.shape[0], weight_int8.shape[1], dtype=dtype, device=x_int8.device)
    for e in range(weight_int8.shape[0]):
        mine = (rows >= group_starts[e]) & (rows < group_ends[e])
        acc = int8_matmul(x_int8, weight_int8[e])
        out = out + torch.where(mine, acc if weight_scale is None else acc.float() * weight_scale[e], 0)
    return out
