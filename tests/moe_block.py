"""A small W8A8 MoE expert block mixing the quant ops, in aten ops TorchAir can lower.

The grouped int8 matmul is written as one masked matmul per expert (exact: int8 products
summed over K=64 stay far below 2^24 in float32); examples/ has the full-size model.
"""

import torch

import quant_graph as qg


def grouped_matmul(x_int8, weight_int8, starts, ends):
    """int32 [T, N] = x [T, K] @ weight[e].T [K, N] for the rows of each expert e."""
    rows = torch.arange(x_int8.shape[0], device=x_int8.device).unsqueeze(-1)
    xf = x_int8.float()
    out = torch.zeros(x_int8.shape[0], weight_int8.shape[1])
    for e in range(weight_int8.shape[0]):
        mine = (rows >= starts[e]) & (rows < ends[e])
        out = out + torch.where(mine, xf @ weight_int8[e].float().t(), 0.0)
    return out.to(torch.int32)


def moe_block(x, counts, smooth1, w13, w13_scale, smooth2, w2, w2_scale, out_scale):
    ends = torch.cumsum(counts, 0)
    starts = ends - counts
    xq, x_scale = qg.npu_dynamic_quant(x, smooth_scales=smooth1, group_index=ends.to(torch.int32))
    h = grouped_matmul(xq, w13, starts, ends)
    a, a_scale = qg.npu_dequant_swiglu_quant(h, weight_scale=w13_scale, activation_scale=x_scale,
                                             quant_scale=smooth2, group_index=counts, quant_mode=1)
    o = grouped_matmul(a, w2, starts, ends).float() * a_scale.unsqueeze(-1)
    o_int8 = qg.npu_group_quant(o, out_scale, ends, dst_dtype=torch.qint8)
    next_q, next_scale = qg.npu_dynamic_quant(o.to(torch.bfloat16))
    return o_int8, next_q, next_scale


def make_moe_block(tokens, hidden=64, inter=64, experts=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.tensor([tokens // 3, 0, tokens - tokens // 3])[:experts]
    args = (
        torch.randn(tokens, hidden, generator=g).to(torch.bfloat16),
        counts,
        (torch.rand(experts, hidden, generator=g) + 0.5).to(torch.bfloat16),
        torch.randint(-127, 128, (experts, 2 * inter, hidden), generator=g, dtype=torch.int8),
        torch.rand(experts, 2 * inter, generator=g) * 1e-3,
        torch.rand(experts, inter, generator=g) + 0.5,
        torch.randint(-127, 128, (experts, hidden, inter), generator=g, dtype=torch.int8),
        torch.rand(experts, hidden, generator=g) * 1e-3,
        torch.rand(experts, hidden, generator=g) * 0.1,
    )
    return moe_block, args
