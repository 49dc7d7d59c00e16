"""quant_graph in one page: every mode of the dynamic-quant ops, eagerly.

For the ops compiled with dynamic shapes, see w8a8_linear.py and moe_ffn.py.

Run with ``python examples/quant_modes.py`` (after ``bash scripts/setup.sh``: ``.venv/bin/python``).
"""

import torch

import quant_graph as qg


def show(title, outputs):
    parts = ", ".join(f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}" for t in outputs)
    print(f"  {title:<44} -> {parts}")


def every_mode():
    torch.manual_seed(0)
    x = torch.randn(4, 16, 64, dtype=torch.bfloat16)
    smooth = torch.rand(64, dtype=torch.bfloat16) + 0.5
    experts = torch.rand(3, 64, dtype=torch.bfloat16) + 0.5
    group_index = torch.tensor([10, 40, 64], dtype=torch.int32)  # cumulative row ends over 4*16 rows
    print("npu_dynamic_quant_asymmetric / npu_dynamic_quant on x", tuple(x.shape), "bfloat16")
    for name, op in (("asymmetric", qg.npu_dynamic_quant_asymmetric), ("symmetric", qg.npu_dynamic_quant)):
        show(f"{name} int8 per token", op(x))
        show(f"{name} int4 (8 per int32) per token", op(x, dst_type=torch.quint4x2))
        show(f"{name} int8 per tensor", op(x, quant_mode="pertensor"))
        show(f"{name} smooth quant", op(x, smooth_scales=smooth))
        show(f"{name} MoE smooth quant (3 experts)", op(x, smooth_scales=experts, group_index=group_index))
    show("symmetric float8_e4m3fn", qg.npu_dynamic_quant(x, dst_type=torch.float8_e4m3fn))

    y, scale, offset = qg.npu_dynamic_quant_asymmetric(x)
    restored = (y.float() - offset.unsqueeze(-1)) * scale.unsqueeze(-1)
    print(f"  asymmetric int8 round trip: max |x - dequant(quant(x))| = {(restored - x.float()).abs().max():.4f}"
          f" (half a step: {scale.max() / 2:.4f})")


if __name__ == "__main__":
    every_mode()
