"""Tensors past 2^31 elements (rows * cols > 2^31) give exact results on the C path: a
32-bit index anywhere in the kernels would wrap and write or read the wrong rows. About
6.5 GB of memory and a few seconds; CI machines have 24 GB."""

import torch

import quant_graph as qg
from quant_graph import native

ROWS, COLS = (1 << 16) + 8, 1 << 15  # 2^31 + 2^18 elements


def test_dynamic_quant_past_2_to_the_31_elements():
    assert ROWS * COLS > 2**31 and native.enabled()
    base = torch.randn(COLS, generator=torch.Generator().manual_seed(0)).half()
    factor = (torch.arange(ROWS) % 251 + 1).half()  # every row differs from the one 2^31 elements before it
    x = torch.empty(ROWS, COLS, dtype=torch.float16)
    torch.mul(base, factor.unsqueeze(1) / 64, out=x)
    y, scale, offset = qg.npu_dynamic_quant_asymmetric(x)
    rows = torch.cat([torch.arange(4), torch.arange(ROWS - 4, ROWS)])
    with native.disabled():
        expected = qg.npu_dynamic_quant_asymmetric(x[rows].contiguous())
    for got, want in zip((y[rows], scale[rows], offset[rows]), expected, strict=True):
        assert torch.equal(got, want)
    # the row 2^31 elements earlier has another scale, so a wrapped index could not hide
    assert scale[-1] != scale[-1 - (1 << 16)]
