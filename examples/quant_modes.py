"""quant_graph in one page: every mode of the dynamic-quant ops, eagerly and compiled.

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


def compiled_with_dynamic_shapes():
    def quantized_linear(x, weight_int8, weight_scale):
        y, scale = qg.npu_dynamic_quant(x)
        acc = y.float() @ weight_int8.float().t()  # int8 x int8 -> exact in float32 at this size
        return acc * scale.unsqueeze(-1) * weight_scale

    weight = torch.randn(32, 64)
    weight_scale = weight.abs().amax(1) / 127
    weight_int8 = torch.round(weight / weight_scale.unsqueeze(1)).to(torch.int8)
    compiled = torch.compile(quantized_linear, dynamic=True, fullgraph=True)
    print("torch.compile(dynamic=True, fullgraph=True) of a W8A8 linear layer:")
    for tokens in (1, 7, 64, 1000):
        x = torch.randn(tokens, 64, dtype=torch.float16)
        torch._dynamo.decorators.mark_unbacked(x, 0)  # token count may be 1: keep it symbolic
        same = torch.equal(compiled(x, weight_int8, weight_scale), quantized_linear(x, weight_int8, weight_scale))
        print(f"  tokens={tokens:<5} compiled == eager: {same}")


if __name__ == "__main__":
    every_mode()
    compiled_with_dynamic_shapes()
