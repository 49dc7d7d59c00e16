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


OUT_OF_MEMORY_CHILD = r"""
import resource, torch, quant_graph as qg
from quant_graph import native
assert native.enabled()
torch.set_num_threads(2)
qg.npu_dynamic_quant(torch.ones(64, 1024, dtype=torch.float16))  # OpenMP's two threads exist now
cols = 1 << 26  # a row buffer of 256 MB per thread
x = torch.ones(1, cols, dtype=torch.float16)
scales = torch.ones(cols, dtype=torch.float16)
swiglu_x = torch.ones(1, cols, dtype=torch.int32)  # h = cols / 2: 128 MB of buffer per thread
weight_scale = torch.ones(cols)
MB = 1 << 20
# each call, and the address space it gets beyond what the process uses: room for its
# outputs and float32 copies of its parameters (quantize: 256 MB of scales), not for its
# row buffers (one per thread; one thread for a one-row call)
calls = {
    "dynamic quant per token": (lambda: qg.npu_dynamic_quant(x), 64 * MB + 64 * MB),
    "dynamic quant per channel": (lambda: qg.npu_dynamic_quant(x, quant_mode="perchannel"), 320 * MB + 64 * MB),
    "quantize": (lambda: qg.npu_quantize(x, scales, None, torch.qint8, -1, False), 320 * MB + 64 * MB),
    "dequant_swiglu_quant": (lambda: qg.npu_dequant_swiglu_quant(swiglu_x, weight_scale=weight_scale,
                                                                 quant_mode=1), 32 * MB + 32 * MB),
}
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
for name, (call, room) in calls.items():
    with open("/proc/self/status") as status:
        used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (used + room, hard))
    try:
        call()
    except MemoryError as err:
        print(name, "MemoryError", err)
    else:
        print(name, "no error")
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
print("then", bool((calls["dynamic quant per token"][0]()[0] == 127).all()))
"""


def test_a_kernel_that_cannot_allocate_its_row_buffers_raises_memory_error():
    """Under an address-space limit the C kernels' scratch allocation fails: a MemoryError
    naming the kernel, not a thread writing through NULL; the next call is unharmed."""
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", OUT_OF_MEMORY_CHILD], capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    lines = child.stdout.splitlines()
    assert len(lines) == 5, child.stdout
    for line in lines[:4]:
        assert " MemoryError quant_graph: the C kernel qg_" in line and "could not allocate" in line, line
    assert lines[4] == "then True"
