"""Example (c): inference code written the way sglang's and dlinfer's Ascend backends write it,
calling ``torch_npu.<op>`` and ``torch.ops.npu.<op>`` directly, running unchanged off an
Ascend host with quant_graph installed.

A W8A8 MoE expert block of the GPT-OSS kind: per-token dynamic quant of the routed tokens
(``torch_npu.npu_dynamic_quant``), an int8 grouped matmul to the gate/up projection, the
clamped, interleaved SwiGLU fused with dequant and requant
(``torch.ops.npu.npu_dequant_swiglu_quant``, ``swiglu_mode=1``, as vllm-ascend's MoE path
calls it), and an int8 grouped matmul down.

    python examples/torch_npu_style.py                        # eager vs compiled, GE summary
    quant-graph dump examples/torch_npu_style.py:make_model   # its GE graph
"""

import argparse
from pathlib import Path

import torch
from int8_matmul import grouped_int8_matmul

try:  # on an Ascend host: the real one; anywhere else quant_graph's torch_npu-shaped module
    import torch_npu
except ImportError:
    from quant_graph import torch_npu


class GptOssStyleW8A8Experts(torch.nn.Module):
    def __init__(self, experts=4, hidden=128, intermediate=64, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.experts, self.hidden = experts, hidden
        self.register_buffer("w13", torch.randint(-127, 128, (experts, 2 * intermediate, hidden), generator=g,
                                                  dtype=torch.int8))
        self.register_buffer("w13_scale", torch.rand(experts, 2 * intermediate, generator=g) * 1e-3)
        self.register_buffer("w2", torch.randint(-127, 128, (experts, hidden, intermediate), generator=g,
                                                 dtype=torch.int8))
        self.register_buffer("w2_scale", torch.rand(experts, hidden, generator=g) * 1e-3)

    def forward(self, hidden_states, group_list):
        # group_list: tokens per expert (counts); the int8 matmuls take cumulative ends
        ends = torch.cumsum(group_list, 0)
        x_int8, x_scale = torch_npu.npu_dynamic_quant(hidden_states)
        gate_up = grouped_int8_matmul(x_int8, self.w13, ends)
        h_int8, h_scale = torch.ops.npu.npu_dequant_swiglu_quant(
            gate_up, weight_scale=self.w13_scale, activation_scale=x_scale, group_index=group_list,
            activate_left=True, quant_mode=1, swiglu_mode=1, clamp_limit=7.0, glu_alpha=1.702, glu_bias=1.0)
        out = grouped_int8_matmul(h_int8, self.w2, ends, self.w2_scale)
        return (out * h_scale.unsqueeze(-1)).to(hidden_states.dtype)


def routed_tokens(tokens, experts, hidden, seed=0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.bincount(torch.randint(0, experts, (tokens,), generator=g), minlength=experts)
    return torch.randn(tokens, hidden, generator=g).to(torch.bfloat16), counts.to(torch.int64)


def make_model(tokens=32):
    """The factory ``quant-graph dump`` calls: the model and example inputs."""
    model = GptOssStyleW8A8Experts()
    return model, routed_tokens(tokens, model.experts, model.hidden)


def run(model, token_counts=(1, 9, 64, 300)):
    """Eager vs ``torch.compile(backend="quant_graph", dynamic=True)``: equal at every token
    count, with one compile; returns the compile count."""
    from torch._dynamo.testing import CompileCounterWithBackend

    counter = CompileCounterWithBackend("quant_graph")
    compiled = torch.compile(model, backend=counter, dynamic=True, fullgraph=True)
    for tokens in token_counts:
        x, counts = routed_tokens(tokens, model.experts, model.hidden, seed=tokens)
        torch._dynamo.decorators.mark_unbacked(x, 0)
        assert torch.equal(compiled(x, counts), model(x, counts)), tokens
        print(f"  {tokens:>4} tokens: compiled == eager")
    return counter.frame_count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump-dir", default="quant_graph_dump/torch_npu_style")
    args = parser.parse_args()
    print(f"torch_npu here is {torch_npu.__name__}")
    model, _ = make_model()
    print(f"compiles: {run(model)}")
    from quant_graph.ge import dump_ge_graph

    dump = dump_ge_graph(model, *routed_tokens(64, model.experts, model.hidden), dump_dir=Path(args.dump_dir))
    print(dump.summary())


if __name__ == "__main__":
    main()
