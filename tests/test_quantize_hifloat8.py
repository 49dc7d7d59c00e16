"""npu_quantize into hifloat8 (torch_npu code 290): the affine formula in float32, then HiF8
bit patterns in uint8, held bit for bit to en_dtypes' encoder (CANN's goldens use it), on
both kernel paths; and its GE lowering (Quantize "torch.hifloat8", AscendQuantV2 DT_HIFLOAT8)."""

import pytest
import torch
from ge_ir import conformance_errors, parse_reg_op
from reference import hifloat8_reference_bits

import quant_graph as qg
from quant_graph.converters.ge_graph import ge_dtype_names
from quant_graph.ge import dump_ge_graph

G = torch.Generator().manual_seed(290)
X = torch.randn(64, 48, generator=G) * torch.logspace(-6, 5, 48)  # every HiF8 exponent width
SCALES = torch.rand(48, generator=G) + 0.5


@pytest.mark.parametrize("div_mode", [True, False])
@pytest.mark.parametrize("with_zero_points", [False, True])
def test_hifloat8_output_is_en_dtypes_bits(kernel_path, div_mode, with_zero_points):
    zp = torch.randn(48, generator=torch.Generator().manual_seed(1)) if with_zero_points else None
    if div_mode and zp is not None:
        zp = zp.to(torch.int32)
    y = qg.npu_quantize(X, SCALES, zp, 290, -1, div_mode)
    v = X * (1.0 / SCALES) if div_mode else X * SCALES
    if zp is not None:
        v = v + zp.float()
    assert y.dtype == torch.uint8 and y.shape == X.shape
    assert torch.equal(y, hifloat8_reference_bits(v))


def test_hifloat8_saturates_and_zeroes_nan(kernel_path):
    x = torch.tensor([[40000.0, -1e30, float("inf"), -float("inf"), float("nan"), 32768.0, 0.0]])
    y = qg.npu_quantize(x, torch.ones(1), None, 290, -1, True)
    # +-inf saturate to +-32768 (0x6E/0xEE, the largest finite), not to HiF8's inf (0x6F/0xEF); NaN -> 0
    assert y.tolist() == [[0x6E, 0xEE, 0x6E, 0xEE, 0x00, 0x6E, 0x00]]


@pytest.mark.parametrize("div_mode,op_type,attr", [(True, "Quantize", ("dtype", "torch.hifloat8")),
                                                   (False, "AscendQuantV2", ("dst_type", "DT_HIFLOAT8"))])
def test_hifloat8_lowers_with_torchairs_attrs(tmp_path, div_mode, op_type, attr):
    from quant_graph import converters

    converters.load_torchair()
    torch._dynamo.reset()
    dump = dump_ge_graph(lambda x, s: qg.npu_quantize(x, s, None, 290, -1, div_mode), X, SCALES, dump_dir=tmp_path)
    (node,) = dump.graphs[0].nodes((op_type,))
    key, value = attr
    assert (ge_dtype_names()[node.attrs[key]] if key == "dst_type" else node.attrs[key]) == value
    assert node.outputs[0].dtype == "DT_HIFLOAT8"
    # TorchAir 2.13's REG_OP texts predate hifloat8 outputs (CANN's current ones list it)
    assert {e for e in conformance_errors(node, parse_reg_op(op_type)) if "DT_HIFLOAT8" not in e} == set()
