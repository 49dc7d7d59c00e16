import pytest
import torch
from helpers import assert_identical, assert_same_metadata, call_on_fakes, compile_once_across_tokens, portable_path
from hypothesis import given
from hypothesis import strategies as st
from reference import group_quant_reference

import quant_graph as qg


def make_case(rows, hidden, groups, x_dtype=torch.float16, scale_dtype=torch.float32, index_dtype=torch.int32,
              seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(rows, hidden, generator=g) * 4).to(x_dtype)
    scale = (torch.randn(groups, hidden, generator=g) * 3).to(scale_dtype)
    cuts = torch.randint(0, rows + 1, (groups - 1,), generator=g).sort().values
    group_index = torch.cat([cuts, torch.tensor([rows])]).to(index_dtype)
    offset = torch.randn(1, generator=g).to(scale_dtype)
    return x, scale, group_index, offset


def test_seed_example_shapes_and_values(kernel_path):
    # seeds/npu_group_quant.md: x [6, 4] fp16, scale [4, 4] fp32, group_index [1, 4, 6, 6]
    x, scale, _, offset = make_case(6, 4, 4)
    group_index = torch.tensor([1, 4, 6, 6], dtype=torch.int32)
    y = qg.npu_group_quant(x, scale, group_index, offset=offset, dst_dtype=torch.qint8)
    assert y.dtype == torch.int8 and y.shape == (6, 4)
    assert_identical(y, group_quant_reference(x, scale, group_index, offset))


def test_hand_computed(kernel_path):
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.5, -0.5]])
    scale = torch.tensor([[10.0, 1.0], [2.0, -3.0]])
    group_index = torch.tensor([1, 3], dtype=torch.int64)
    y = qg.npu_group_quant(x, scale, group_index, offset=torch.tensor([0.5]))
    # row 0: [10.5, 2.5] -> [10, 2]; row 1: [6.5, -11.5] -> [6, -12]; row 2: [1.5, 2.0] -> [2, 2]
    assert y.tolist() == [[10, 2], [6, -12], [2, 2]]


@pytest.mark.parametrize("x_dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scale_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("dst", [None, torch.int8, torch.qint8, torch.quint4x2])
@pytest.mark.parametrize("with_offset", [False, True])
def test_matches_reference(kernel_path, x_dtype, scale_dtype, index_dtype, dst, with_offset):
    x, scale, group_index, offset = make_case(37, 64, 5, x_dtype, scale_dtype, index_dtype)
    offset = offset if with_offset else None
    assert_identical(qg.npu_group_quant(x, scale, group_index, offset=offset, dst_dtype=dst),
                     group_quant_reference(x, scale, group_index, offset, dst))


def test_large_many_groups(kernel_path):
    x, scale, group_index, offset = make_case(3000, 512, 64, torch.bfloat16)
    assert_identical(qg.npu_group_quant(x, scale, group_index, offset=offset),
                     group_quant_reference(x, scale, group_index, offset))


def test_nan_inf_zero_rows_and_empty(kernel_path):
    x = torch.tensor([[float("nan"), float("inf")], [-float("inf"), 0.0]])
    y = qg.npu_group_quant(x, torch.ones(1, 2), torch.tensor([2], dtype=torch.int32))
    assert y.tolist() == [[0, 127], [-128, 0]]
    empty = qg.npu_group_quant(torch.empty(0, 16), torch.ones(2, 16), torch.tensor([0, 0], dtype=torch.int32),
                               dst_dtype=torch.quint4x2)
    assert empty.shape == (0, 2) and empty.dtype == torch.int32


@given(rows=st.integers(0, 40), cols8=st.integers(1, 6), groups=st.integers(1, 6), seed=st.integers(0, 999),
       int4=st.booleans())
def test_native_and_portable_paths_agree(rows, cols8, groups, seed, int4):
    x, scale, group_index, offset = make_case(rows, cols8 * 8, groups, torch.bfloat16, seed=seed)
    dst = torch.quint4x2 if int4 else None
    fast = qg.npu_group_quant(x, scale, group_index, offset=offset, dst_dtype=dst)
    with portable_path():
        portable = qg.npu_group_quant(x, scale, group_index, offset=offset, dst_dtype=dst)
    assert_identical(fast, portable)


@pytest.mark.parametrize("dst", [None, torch.quint4x2])
@pytest.mark.parametrize("with_offset", [False, True])
def test_opcheck(dst, with_offset):
    x, scale, group_index, offset = make_case(9, 16, 3, torch.bfloat16, torch.bfloat16, torch.int64)
    torch.library.opcheck(torch.ops.quant_graph.npu_group_quant, (x, scale, group_index),
                          {"offset": offset if with_offset else None, "dst_dtype": dst})


@given(rows=st.integers(0, 9), cols8=st.integers(1, 4), groups=st.integers(1, 4), int4=st.booleans())
def test_fake_matches_eager(rows, cols8, groups, int4):
    x, scale, group_index, _ = make_case(rows, cols8 * 8, groups)
    dst = torch.quint4x2 if int4 else None
    assert_same_metadata(call_on_fakes(qg.npu_group_quant, x, scale, group_index, dst_dtype=dst),
                         qg.npu_group_quant(x, scale, group_index, dst_dtype=dst))


@pytest.mark.parametrize("dst", [None, torch.quint4x2])
def test_compiled_equals_eager_and_compiles_once(dst):
    def fn(x, scale, group_index, offset):
        return qg.npu_group_quant(x, scale, group_index, offset=offset, dst_dtype=dst)

    def make_args(tokens):
        x, scale, group_index, offset = make_case(tokens, 64, 4, seed=tokens)
        return (x, scale, group_index, offset), [(x, 0)]

    assert compile_once_across_tokens(fn, make_args) == 1
