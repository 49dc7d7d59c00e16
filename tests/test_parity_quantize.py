"""torch_npu 2.13/2.14 parity of npu_quantize and npu_group_quant: the registered schemas,
int dtype codes, and the output formats and modes beyond the seeds (SPEC.md, "torch_npu
2.13/2.14 schemas")."""

import pytest
import torch
from helpers import assert_identical

import quant_graph as qg

# SPEC.md, verbatim (torch_npu's npu_native_functions_by_codegen.yaml in 2.13.0 and 2.14.0)
SCHEMAS = {
    "npu_quantize": "npu_quantize(Tensor self, Tensor scales, Tensor? zero_points, int dtype, int axis=1, "
                    "bool div_mode=True) -> Tensor",
    "npu_group_quant": "npu_group_quant(Tensor x, Tensor scale, Tensor group_index, *, Tensor? offset=None, "
                       "ScalarType? dst_dtype=None) -> Tensor",
}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_registered_schema_is_torch_npus(name):
    assert str(getattr(torch.ops.quant_graph, name).default._schema) == "quant_graph::" + SCHEMAS[name]


def test_code_written_for_torch_npu_runs_unchanged():
    x = torch.tensor([[0.5, 1.5, -2.5, 3.0]])
    s = torch.tensor([1.0, 1.0, 1.0, 1.0])
    positional = qg.npu_quantize(x, s, None, torch.qint8, -1, False)  # the common form
    assert positional.tolist() == [[0, 2, -2, 3]]
    # torch_npu's Python name of the first argument is `input`; its docs' graph example uses keywords
    assert_identical(qg.npu_quantize(input=x, scales=s, zero_points=None, dtype=torch.qint8, div_mode=False),
                     positional)
    # the op itself takes torch_npu's int codes and, through the dispatcher, torch dtypes
    assert_identical(torch.ops.quant_graph.npu_quantize(x, s, None, 12, -1, False), positional)
    assert_identical(torch.ops.quant_graph.npu_quantize(x, s, None, torch.qint8, -1, False), positional)


@pytest.mark.parametrize("code,dtype,div_mode", [(12, torch.qint8, True), (13, torch.quint8, True),
                                                 (14, torch.qint32, True), (12, torch.qint8, False),
                                                 (16, torch.quint4x2, False)])
def test_int_codes_are_the_dtypes_they_name(code, dtype, div_mode):
    g = torch.Generator().manual_seed(code)
    x = torch.randn(3, 16, generator=g) * 30
    s = torch.rand(16, generator=g) + 0.1
    assert_identical(qg.npu_quantize(x, s, None, code, -1, div_mode), qg.npu_quantize(x, s, None, dtype, -1, div_mode))


@pytest.mark.parametrize("code,dtype", [(1, torch.int8), (12, torch.qint8), (16, torch.quint4x2)])
def test_group_quant_takes_int_codes(code, dtype):
    x = torch.randn(4, 16) * 5
    scale, group_index = torch.rand(2, 16) + 0.5, torch.tensor([1, 4])
    assert_identical(qg.npu_group_quant(x, scale, group_index, dst_dtype=code),
                     qg.npu_group_quant(x, scale, group_index, dst_dtype=dtype))


@pytest.mark.parametrize("call,error,words", [
    (lambda: qg.npu_quantize(torch.randn(2, 4), torch.ones(4), None, 1000, -1, True), ValueError,
     ["npu_quantize", "dtype", "1000"]),
    (lambda: qg.npu_quantize(torch.randn(2, 4), torch.ones(4), None, torch.float16, -1, True), ValueError,
     ["npu_quantize", "dtype", "torch.float16", "no torch_npu dtype code"]),
    (lambda: qg.npu_quantize(torch.randn(2, 4), torch.ones(4), None, None, -1, True), TypeError,
     ["npu_quantize", "dtype", "required", "None"]),
    (lambda: qg.npu_group_quant(torch.randn(2, 4), torch.ones(1, 4), torch.tensor([2]), dst_dtype=1000), ValueError,
     ["npu_group_quant", "dst_dtype", "1000"]),
    (lambda: qg.npu_group_quant(torch.randn(2, 8), torch.ones(1, 8), torch.tensor([2]), dst_dtype=296), ValueError,
     ["npu_group_quant", "dst_dtype", "296 (float4_e2m1fn_x2)"]),
])
def test_bad_dtype_codes_are_refused_by_name(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert all(w in str(info.value) for w in words), str(info.value)
