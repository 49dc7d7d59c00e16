"""torch_npu 2.13/2.14 parity of npu_dynamic_quant(_asymmetric): the registered schema, its
argument names and dtype codes, and the modes it adds to the seeds."""

import pytest
import torch
from helpers import assert_identical
from reference import dynamic_quant_reference

import quant_graph as qg

OPS = {False: qg.npu_dynamic_quant_asymmetric, True: qg.npu_dynamic_quant}
TORCH_NPU_ARGS = ("(Tensor input, *, Tensor? smooth_scales=None, Tensor? group_index=None, int? dst_type=None, "
                  'str quant_mode="pertoken", float dst_type_max=0.0)')


def _x(shape=(5, 32), dtype=torch.bfloat16, seed=0):
    return (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3).to(dtype)


# --- schema and arguments -------------------------------------------------------------

@pytest.mark.parametrize("name,outputs", [("npu_dynamic_quant", "(Tensor, Tensor)"),
                                          ("npu_dynamic_quant_asymmetric", "(Tensor, Tensor, Tensor)")])
def test_schema_is_torch_npus_verbatim(name, outputs):
    schema = getattr(torch.ops.quant_graph, name).default._schema
    # torch prints the float default 0.0 as "0."
    expected = torch._C.parse_schema(f"quant_graph::{name}{TORCH_NPU_ARGS} -> {outputs}")
    assert str(schema) == str(expected)
    assert [a.name for a in schema.arguments] == ["input", "smooth_scales", "group_index", "dst_type", "quant_mode",
                                                  "dst_type_max"]


@pytest.mark.parametrize("symmetric", [False, True])
def test_the_input_by_position_as_input_and_as_x(symmetric):
    x = _x()
    expected = dynamic_quant_reference(x, symmetric=symmetric)
    for out in (OPS[symmetric](x), OPS[symmetric](input=x), OPS[symmetric](x=x)):
        assert_identical(out, expected)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("call,word", [(lambda op, x: op(), "neither"), (lambda op, x: op(x, x=x), "both"),
                                       (lambda op, x: op(input=x, x=x), "both")])
def test_the_input_exactly_once(symmetric, call, word):
    name = "npu_dynamic_quant" if symmetric else "npu_dynamic_quant_asymmetric"
    with pytest.raises(TypeError, match=rf"^{name}: pass the tensor to quantize exactly once.*got {word}$"):
        call(OPS[symmetric], _x())


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("dtype,codes", [(torch.int8, (1,)), (torch.quint4x2, (16,))])
def test_dst_type_as_dtype_or_int_code(symmetric, dtype, codes):
    x = _x()
    expected = dynamic_quant_reference(x, dst_type=dtype, symmetric=symmetric)
    for dst in (dtype, *codes):
        assert_identical(OPS[symmetric](x, dst_type=dst), expected)
        assert_identical(getattr(torch.ops.quant_graph, OPS[symmetric].__name__)(x, dst_type=dst), expected)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("bad", [True, 1.0, "int8"])
def test_dst_type_of_another_type_is_a_type_error(symmetric, bad):
    with pytest.raises(TypeError, match=rf"dst_type must be None, a torch.dtype or an int dtype code, got {bad!r}"):
        OPS[symmetric](_x(), dst_type=bad)
