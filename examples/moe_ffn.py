"""Example (b): the W8A8 expert FFN of a DeepSeek/Qwen-style MoE layer.

Tokens arrive sorted by expert with a count per expert (``group_counts``), as after
routing and dispatch. Per expert e, with int8 weights quantized per output channel:

    x_int8, x_scale = npu_dynamic_quant(x, smooth_scales=smooth_in, group_index=ends)
    gate_up         = x_int8 @ w13[e].T                       (int8 grouped matmul, int32)
    h_int8, h_scale = npu_dequant_swiglu_quant(gate_up, weight_scale=w13_scale,
                          activation_scale=x_scale, quant_scale=smooth_mid,
                          group_index=group_counts, quant_mode=1)
    out             = (h_int8 @ w2[e].T) * w2_scale[e] * h_scale
    out_int8        = npu_group_quant(out, combine_scale, ends)   (int8 for the combine)

On an NPU the grouped matmuls are torch_npu's; here they are exact CPU references
(examples/int8_matmul.py). ``python examples/moe_ffn.py`` is the README's main job: it
compiles the block with ``backend="quant_graph"`` and dynamic shapes, checks compiled ==
eager over several token counts with one compile, builds the GE graph the NPU would run
(offline GE mode) and prints its summary.
"""

import argparse
from pathlib import Path

import torch
from int8_matmul import grouped_int8_matmul

import quant_graph as qg


def quantize_per_channel(weight):
    """Symmetric int8 per output channel (the last-but-one dim) and its float32 scales."""
    scale = weight.abs().amax(dim=-1).clamp(min=1e-8) / 127
    return torch.round(weight / scale.unsqueeze(-1)).to(torch.int8), scale.float()


class W8A8MoEExperts(torch.nn.Module):
    def __init__(self, experts=8, hidden=2048, intermediate=1408, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.experts, self.hidden, self.intermediate = experts, hidden, intermediate
        smooth_in = torch.rand(experts, hidden, generator=g) + 0.5
        w13 = torch.randn(experts, 2 * intermediate, hidden, generator=g) * hidden**-0.5 / smooth_in.unsqueeze(1)
        w2 = torch.randn(experts, hidden, intermediate, generator=g) * intermediate**-0.5
        self.register_buffer("smooth_in", smooth_in.to(torch.bfloat16))
        self.register_buffer("smooth_mid", torch.rand(experts, intermediate, generator=g) + 0.5)
        for name, weight in (("w13", w13), ("w2", w2)):
            weight_int8, scale = quantize_per_channel(weight)
            self.register_buffer(f"{name}_int8", weight_int8)
            self.register_buffer(f"{name}_scale", scale)
        self.register_buffer("combine_scale", torch.full((experts, hidden), 64.0))

    def forward(self, x, group_counts):
        ends = torch.cumsum(group_counts, 0)
        x_int8, x_scale = qg.npu_dynamic_quant(x, smooth_scales=self.smooth_in, group_index=ends.to(torch.int32))
        gate_up = grouped_int8_matmul(x_int8, self.w13_int8, ends)
        h_int8, h_scale = qg.npu_dequant_swiglu_quant(
            gate_up, weight_scale=self.w13_scale, activation_scale=x_scale, quant_scale=self.smooth_mid,
            group_index=group_counts, quant_mode=1)
        out = grouped_int8_matmul(h_int8, self.w2_int8, ends, self.w2_scale) * h_scale.unsqueeze(-1)
        out_int8 = qg.npu_group_quant(out, self.combine_scale, ends, dst_dtype=torch.qint8)
        return out.to(x.dtype), out_int8


def routed_tokens(tokens, experts, hidden, seed=0):
    """Activations sorted by expert and the count per expert (some experts get none)."""
    g = torch.Generator().manual_seed(seed)
    expert_of_token = torch.randint(0, experts, (tokens,), generator=g).sort().values
    counts = torch.bincount(expert_of_token, minlength=experts).to(torch.int64)
    return torch.randn(tokens, hidden, generator=g).to(torch.bfloat16), counts


def make_model(tokens=64, experts=8, hidden=256, intermediate=128):
    """The factory ``quant-graph dump`` calls: the model and example inputs."""
    return W8A8MoEExperts(experts, hidden, intermediate), routed_tokens(tokens, experts, hidden)


def run(model, token_counts, backend="quant_graph"):
    """Compile once with dynamic shapes; check compiled == eager for each token count."""
    from torch._dynamo.testing import CompileCounterWithBackend

    counter = CompileCounterWithBackend(backend)
    compiled = torch.compile(model, backend=counter, dynamic=True, fullgraph=True)
    for tokens in token_counts:
        x, counts = routed_tokens(tokens, model.experts, model.hidden, seed=tokens)
        torch._dynamo.decorators.mark_unbacked(x, 0)
        eager, out = model(x, counts), compiled(x, counts)
        same = all(torch.equal(a, b) for a, b in zip(out, eager, strict=True))
        print(f"  tokens={tokens:<5} experts used={int((counts > 0).sum())}/{model.experts}  "
              f"compiled == eager: {same}")
        assert same, "compiled output differs from eager"
    return counter.frame_count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", default="1,17,64,512", help="token counts to run (comma-separated)")
    parser.add_argument("--dump-dir", default="quant_graph_dump/moe_ffn", help="where to write the GE graph")
    args = parser.parse_args()
    model = W8A8MoEExperts(experts=8, hidden=256, intermediate=128)
    print("W8A8 MoE experts: 8 experts, hidden 256, intermediate 128; torch.compile(backend='quant_graph', "
          "dynamic=True, fullgraph=True)")
    compiles = run(model, [int(t) for t in args.tokens.split(",")])
    print(f"  compiles: {compiles}")
    assert compiles == 1

    from quant_graph.ge import dump_ge_graph

    dump_dir = Path(args.dump_dir)
    x, counts = routed_tokens(64, model.experts, model.hidden)
    dump = dump_ge_graph(model, x, counts, dump_dir=dump_dir)
    print(f"\nThe GE graph this block runs on an Ascend NPU (offline GE mode), written to {dump_dir}:")
    print(dump.summary())


if __name__ == "__main__":
    main()
