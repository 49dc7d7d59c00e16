"""One test per validation rule of npu_dynamic_quant(_asymmetric): exception type, and a
message that names the argument."""

import pytest
import torch

import quant_graph as qg


def seeded(seed):
    """A generator of its own for each random tensor: the same values whatever runs first."""
    return torch.Generator().manual_seed(seed)

OPS = [qg.npu_dynamic_quant_asymmetric, qg.npu_dynamic_quant]
X = torch.randn(6, 16, generator=seeded(10)).to(torch.float16)
SMOOTH2 = torch.ones(2, 16, dtype=torch.float16)
GROUPS = torch.tensor([3, 6], dtype=torch.int32)

CASES = [
    # (id, args, kwargs, error, words in message)
    ("x dtype", (X.float(),), {}, TypeError, ["x", "float16"]),
    ("x rank", (X[0],), {}, ValueError, ["x", "2 dims"]),
    ("dst_type", (X,), {"dst_type": torch.uint8}, ValueError, ["dst_type"]),
    ("quant_mode", (X,), {"quant_mode": "pergroup"}, ValueError, ["quant_mode"]),
    ("int4 last dim", (torch.randn(2, 12, generator=seeded(20)).half(),), {"dst_type": torch.quint4x2}, ValueError,
     ["last dim", "8"]),
    ("smooth dtype", (X,), {"smooth_scales": torch.ones(16, dtype=torch.bfloat16)}, TypeError,
     ["smooth_scales", "dtype"]),
    ("smooth rank without groups", (X,), {"smooth_scales": SMOOTH2}, ValueError, ["smooth_scales", "1-D"]),
    ("smooth size", (X,), {"smooth_scales": torch.ones(8, dtype=torch.float16)}, ValueError,
     ["smooth_scales", "16"]),
    ("group_index without smooth", (X,), {"group_index": GROUPS}, ValueError, ["group_index", "smooth_scales"]),
    ("group_index dtype", (X,), {"smooth_scales": SMOOTH2, "group_index": GROUPS.long()}, TypeError,
     ["group_index", "int32"]),
    ("group_index rank", (X,), {"smooth_scales": SMOOTH2, "group_index": GROUPS.reshape(2, 1)}, ValueError,
     ["group_index", "1-D"]),
    ("group_index with pertensor", (X,), {"smooth_scales": SMOOTH2, "group_index": GROUPS,
                                          "quant_mode": "pertensor"}, ValueError, ["group_index", "pertoken"]),
    ("moe smooth rank", (X,), {"smooth_scales": torch.ones(16, dtype=torch.float16), "group_index": GROUPS},
     ValueError, ["smooth_scales", "2-D"]),
    ("moe smooth hidden", (X,), {"smooth_scales": torch.ones(2, 8, dtype=torch.float16), "group_index": GROUPS},
     ValueError, ["smooth_scales", "H=16"]),
    ("experts mismatch", (X,), {"smooth_scales": torch.ones(3, 16, dtype=torch.float16), "group_index": GROUPS},
     ValueError, ["group_index", "E=3"]),
    ("experts over 1024", (torch.randn(1100, 16, generator=seeded(40)).half(),),
     {"smooth_scales": torch.ones(1025, 16, dtype=torch.float16),
      "group_index": torch.arange(1, 1026, dtype=torch.int32)}, ValueError, ["experts", "1024"]),
    ("experts zero", (X,), {"smooth_scales": torch.ones(0, 16, dtype=torch.float16),
                            "group_index": torch.ones(0, dtype=torch.int32)}, ValueError, ["experts", "[1, 1024]"]),
    ("group_index decreasing", (X,), {"smooth_scales": SMOOTH2, "group_index": torch.tensor([6, 3], dtype=torch.int32)},
     ValueError, ["group_index", "non-decreasing"]),
    # a decrease that stays above the first end is still one
    ("group_index decreasing later", (X,), {"smooth_scales": torch.ones(4, 16, dtype=torch.float16),
                                            "group_index": torch.tensor([1, 5, 3, 6], dtype=torch.int32)},
     ValueError, ["group_index", "non-decreasing", "[1, 5, 3, 6]"]),
    ("group_index negative", (X,), {"smooth_scales": SMOOTH2, "group_index": torch.tensor([-1, 6], dtype=torch.int32)},
     ValueError, ["group_index", ">= 0", "got -1"]),
    ("group_index end", (X,), {"smooth_scales": SMOOTH2, "group_index": torch.tensor([3, 5], dtype=torch.int32)},
     ValueError, ["group_index", "S=6"]),
    # one expert: the end is still checked (a one-element group_index is no exception)
    ("group_index one expert's end", (X,), {"smooth_scales": SMOOTH2[:1], "group_index": torch.tensor(
        [5], dtype=torch.int32)}, ValueError, ["group_index", "S=6", "got 5"]),
]


@pytest.mark.parametrize("op", OPS, ids=["asymmetric", "symmetric"])
@pytest.mark.parametrize("args,kwargs,error,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_named(op, args, kwargs, error, words):
    with pytest.raises(error) as info:
        op(*args, **kwargs)
    for word in words:
        assert word in str(info.value)


def test_float8_for_both_fp4_for_neither():
    # torch_npu 2.13/2.14 (aclnnDynamicQuantV4) take float8 asymmetric too; no op takes fp4
    for op in OPS:
        op(X, dst_type=torch.float8_e4m3fn)
        with pytest.raises(ValueError, match="dst_type"):
            op(X, dst_type=296)


def test_shape_rules_also_hold_in_the_fake_kernel():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode() as mode, pytest.raises(ValueError, match="smooth_scales"):
        qg.npu_dynamic_quant(mode.from_tensor(X), smooth_scales=mode.from_tensor(SMOOTH2))


def test_bad_input_under_compile_is_reported_while_tracing():
    fn = torch.compile(lambda x: qg.npu_dynamic_quant(x, dst_type=torch.quint4x2), dynamic=True, fullgraph=True)
    with pytest.raises(Exception, match="divisible by 8"):
        fn(torch.randn(3, 12, generator=seeded(78)).half())


def test_more_experts_than_tokens_is_allowed():
    # MoE decode: one token, eight experts, seven of them empty
    x = torch.randn(1, 16, generator=seeded(83)).half()
    smooth = torch.rand(8, 16, generator=seeded(84)).half() + 0.5
    ends = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1], dtype=torch.int32)
    y, scale = qg.npu_dynamic_quant(x, smooth_scales=smooth, group_index=ends)
    assert y.shape == (1, 16) and scale.shape == (1,)
