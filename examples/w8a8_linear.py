"""Example (a): a W8A8 linear layer, per-token dynamic activation quant.

Weights are int8 per output channel (quantized once, offline); each token's activations
are quantized on the fly with ``npu_dynamic_quant`` (smooth-quant scales folded in); the
int8 x int8 product accumulates in int32 and is dequantized by both scales. On an NPU
the same code runs torch_npu's fused kernels.

    python examples/w8a8_linear.py                        # eager vs compiled, 4 token counts
    quant-graph dump examples/w8a8_linear.py:make_model   # its GE graph
"""

import torch
from int8_matmul import int8_matmul

import quant_graph as qg


class W8A8Linear(torch.nn.Module):
    def __init__(self, weight, smooth_scales=None):
        super().__init__()
        scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127
        self.register_buffer("weight_int8", torch.round(weight / scale.unsqueeze(1)).to(torch.int8))
        self.register_buffer("weight_scale", scale.float())
        self.register_buffer("smooth_scales", smooth_scales)

    def forward(self, x):
        x_int8, x_scale = qg.npu_dynamic_quant(x, smooth_scales=self.smooth_scales)
        acc = int8_matmul(x_int8, self.weight_int8)
        return (acc.float() * x_scale.unsqueeze(-1) * self.weight_scale).to(x.dtype)


def make_model(in_features=512, out_features=1024, tokens=16, seed=0):
    """The factory ``quant-graph dump`` calls: the model and example inputs."""
    g = torch.Generator().manual_seed(seed)
    smooth = (torch.rand(in_features, generator=g) + 0.5).to(torch.bfloat16)
    weight = torch.randn(out_features, in_features, generator=g) * 0.02 / smooth.float()
    model = W8A8Linear(weight, smooth)
    return model, (torch.randn(tokens, in_features, generator=g).to(torch.bfloat16),)


def main(token_counts=(1, 7, 64, 1000)):
    from torch._dynamo.testing import CompileCounterWithBackend

    model, _ = make_model()
    counter = CompileCounterWithBackend("quant_graph")
    compiled = torch.compile(model, backend=counter, dynamic=True, fullgraph=True)
    print("W8A8 linear 512 -> 1024, bf16 activations, torch.compile(backend='quant_graph', dynamic=True)")
    for tokens in token_counts:
        x = torch.randn(tokens, 512).to(torch.bfloat16)
        torch._dynamo.decorators.mark_unbacked(x, 0)
        eager, out = model(x), compiled(x)
        w = model.weight_int8.float() * model.weight_scale.unsqueeze(1)
        error = (eager.float() - (x.float() * model.smooth_scales.float()) @ w.t()).abs().max()
        print(f"  tokens={tokens:<5} compiled == eager: {torch.equal(out, eager)}   "
              f"max |W8A8 - float| = {error:.4f}")
        assert torch.equal(out, eager)
    print(f"  compiles: {counter.frame_count}")
    assert counter.frame_count == 1


if __name__ == "__main__":
    main()
