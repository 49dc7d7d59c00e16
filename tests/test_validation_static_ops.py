"""One test per validation rule of npu_quantize, npu_group_quant and npu_dequant_swiglu_quant:
the exception type, and a message that names the argument."""

import pytest
import torch

import quant_graph as qg


def seeded(seed):
    """A generator of its own for each random tensor: the same values whatever runs first."""
    return torch.Generator().manual_seed(seed)

F = torch.float32
X = torch.randn(4, 16, generator=seeded(10))
S16 = torch.ones(16)


def quantize(*args, **kwargs):
    return qg.npu_quantize(*args, **kwargs)


QUANTIZE_CASES = [
    ("input dtype", (X.int(), S16, None, torch.qint8, -1, True), TypeError, ["input"]),
    ("div dtype", (X, S16, None, torch.quint4x2, -1, True), ValueError, ["dtype", "div_mode=True"]),
    ("div scales dtype", (X, S16.half(), None, torch.qint8, -1, True), TypeError, ["scales"]),
    ("div axis range", (X, S16, None, torch.qint8, 2, True), ValueError, ["axis"]),
    ("div scales rank", (X, torch.ones(1, 16), None, torch.qint8, -1, True), ValueError, ["scales", "1-D"]),
    ("div scales size", (X, torch.ones(4), None, torch.qint8, -1, True), ValueError, ["scales", "16"]),
    ("div zero_points dtype", (X, S16, torch.zeros(16, dtype=torch.int64), torch.qint8, -1, True), TypeError,
     ["zero_points"]),
    ("div zero_points shape", (X, S16, torch.zeros(8, dtype=torch.int32), torch.qint8, -1, True), ValueError,
     ["zero_points", "shape"]),
    ("mul dtype", (X, S16, None, torch.quint8, -1, False), ValueError, ["dtype", "div_mode=False"]),
    ("mul scales dtype", (X, S16.double(), None, torch.qint8, -1, False), TypeError, ["scales"]),
    ("mul axis below -2", (X, S16, None, torch.qint8, -3, False), ValueError, ["axis", "-2"]),
    ("mul axis past rank", (X, S16, None, torch.qint8, 2, False), ValueError, ["axis"]),
    ("mul axis -2 on 1-D", (S16, S16, None, torch.qint8, -2, False), ValueError, ["axis=-2"]),
    ("mul int4 last dim", (torch.randn(4, 12, generator=seeded(34)), torch.ones(12), None, torch.quint4x2, -1, False),
     ValueError, ["last dim", "8"]),
    ("mul scales size", (X, torch.ones(5), None, torch.qint8, -1, False), ValueError, ["scales", "16"]),
    ("mul scales rank", (X, torch.ones(1, 1, 16), None, torch.qint8, -1, False), ValueError, ["scales", "rank"]),
    ("mul scales other dim", (X, torch.ones(4, 16), None, torch.qint8, -1, False), ValueError, ["scales", "dim 0"]),
    ("mul zero_points dtype", (X, S16, torch.zeros(16, dtype=torch.float16), torch.qint8, -1, False), TypeError,
     ["zero_points"]),
    ("mul zero_points shape", (X, S16, torch.zeros(1), torch.qint8, -1, False), ValueError, ["zero_points"]),
]

GI = torch.tensor([2, 4], dtype=torch.int32)
GROUP_QUANT_CASES = [
    ("x dtype", (X.int(), torch.ones(2, 16), GI), {}, TypeError, ["x"]),
    ("x rank", (X.reshape(2, 2, 16), torch.ones(2, 16), GI), {}, ValueError, ["x", "2-D"]),
    ("dst_dtype", (X, torch.ones(2, 16), GI), {"dst_dtype": torch.quint8}, ValueError, ["dst_dtype"]),
    ("int4 last dim", (torch.randn(4, 12, generator=seeded(49)), torch.ones(2, 12), GI), {"dst_dtype": torch.quint4x2},
     ValueError, ["last dim", "8"]),
    ("scale dtype", (X, torch.ones(2, 16, dtype=torch.int32), GI), {}, TypeError, ["scale"]),
    ("scale rank", (X, torch.ones(16), GI), {}, ValueError, ["scale", "2-D"]),
    ("scale G zero", (X, torch.ones(0, 16), GI[:0]), {}, ValueError, ["scale", "G"]),
    ("scale H", (X, torch.ones(2, 8), GI), {}, ValueError, ["scale", "H=16"]),
    ("group_index dtype", (X, torch.ones(2, 16), GI.float()), {}, TypeError, ["group_index"]),
    ("group_index rank", (X, torch.ones(2, 16), GI.reshape(2, 1)), {}, ValueError, ["group_index", "1-D"]),
    ("group_index length", (X, torch.ones(3, 16), GI), {}, ValueError, ["group_index", "G=3"]),
    ("offset dtype", (X, torch.ones(2, 16), GI), {"offset": torch.ones(1, dtype=torch.float16)}, TypeError,
     ["offset"]),
    ("offset size", (X, torch.ones(2, 16), GI), {"offset": torch.ones(2)}, ValueError, ["offset", "one element"]),
    ("group_index decreasing", (X, torch.ones(2, 16), torch.tensor([4, 2], dtype=torch.int32)), {}, ValueError,
     ["group_index", "non-decreasing"]),
    # a decrease that stays above the first end is still one
    ("group_index decreasing later", (X, torch.ones(4, 16), torch.tensor([1, 3, 2, 4], dtype=torch.int32)), {},
     ValueError, ["group_index", "non-decreasing", "[1, 3, 2, 4]"]),
    ("group_index negative", (X, torch.ones(2, 16), torch.tensor([-1, 4], dtype=torch.int32)), {}, ValueError,
     ["group_index", ">= 0", "got -1"]),
    ("group_index end", (X, torch.ones(2, 16), torch.tensor([1, 3], dtype=torch.int32)), {}, ValueError,
     ["group_index", "S=4"]),
    ("group_index one group's end", (X, torch.ones(1, 16), torch.tensor([3], dtype=torch.int32)), {}, ValueError,
     ["group_index", "S=4", "got 3"]),
]

XI = torch.randint(-5, 5, (6, 128), dtype=torch.int32, generator=seeded(69))
WS = torch.ones(128)
AS = torch.ones(6)
QS = torch.ones(1, 64)
COUNTS = torch.tensor([2, 3])
DSQ_OK = {"weight_scale": WS, "activation_scale": AS, "quant_scale": QS}
DSQ_GROUPED = {"weight_scale": torch.ones(2, 128), "activation_scale": AS, "quant_scale": torch.ones(2, 64),
               "group_index": COUNTS, "quant_mode": 1}


def with_(base, **changes):
    return {**base, **changes}


DSQ_CASES = [
    ("x dtype", XI.float(), {}, TypeError, ["x", "int32"]),
    ("x rank", XI.reshape(-1), DSQ_OK, ValueError, ["x", "rank 2"]),
    ("x odd last dim", XI[:, :127], DSQ_OK, ValueError, ["2H", "even"]),
    ("quant_mode", XI, with_(DSQ_OK, quant_mode=2), ValueError, ["quant_mode"]),
    ("int32 needs weight_scale", XI, {"quant_scale": QS}, ValueError, ["weight_scale", "int32"]),
    ("scales only for int32", XI.bfloat16(), DSQ_OK, ValueError, ["weight_scale", "int32"]),
    ("weight_scale dtype", XI, with_(DSQ_OK, weight_scale=WS.half()), TypeError, ["weight_scale"]),
    ("weight_scale width", XI, with_(DSQ_OK, weight_scale=torch.ones(64)), ValueError, ["weight_scale", "128"]),
    ("weight_scale rows ungrouped", XI, with_(DSQ_OK, weight_scale=torch.ones(2, 128)), ValueError,
     ["weight_scale"]),
    ("activation_scale dtype", XI, with_(DSQ_OK, activation_scale=AS.double()), TypeError, ["activation_scale"]),
    ("activation_scale length", XI, with_(DSQ_OK, activation_scale=torch.ones(5)), ValueError,
     ["activation_scale", "T=6"]),
    ("activation_scale [T, 2]", XI, with_(DSQ_OK, activation_scale=torch.ones(6, 2)), ValueError,
     ["activation_scale"]),
    ("bias dtype", XI, with_(DSQ_OK, bias=torch.ones(128, dtype=torch.float64)), TypeError, ["bias", "int32"]),
    ("bias shape", XI, with_(DSQ_OK, bias=torch.ones(64, dtype=torch.int32)), ValueError, ["bias"]),
    ("static needs quant_scale", XI, with_(DSQ_OK, quant_scale=None), ValueError, ["quant_scale", "static"]),
    ("quant_scale dtype", XI, with_(DSQ_OK, quant_scale=QS.int()), TypeError, ["quant_scale"]),
    ("quant_scale width", XI, with_(DSQ_OK, quant_scale=torch.ones(1, 32)), ValueError, ["quant_scale", "64"]),
    ("quant_offset dynamic", XI, with_(DSQ_OK, quant_offset=QS, quant_mode=1), ValueError, ["quant_offset"]),
    ("quant_offset shape", XI, with_(DSQ_OK, quant_offset=torch.ones(3)), ValueError, ["quant_offset"]),
    ("group_index dtype", XI, with_(DSQ_GROUPED, group_index=COUNTS.short()), TypeError, ["group_index", "int64"]),
    ("group_index rank", XI, with_(DSQ_GROUPED, group_index=COUNTS.reshape(2, 1)), ValueError,
     ["group_index", "1-D"]),
    ("group_index empty", XI, with_(DSQ_GROUPED, group_index=COUNTS[:0]), ValueError, ["group_index"]),
    ("grouped static", XI, with_(DSQ_GROUPED, quant_mode=0), ValueError, ["group_index", "quant_mode=1"]),
    ("grouped bias", XI, with_(DSQ_GROUPED, bias=torch.ones(128, dtype=torch.int32)), ValueError,
     ["bias", "group_index"]),
    ("grouped quant_offset", XI, with_(DSQ_GROUPED, quant_offset=torch.ones(2, 64)), ValueError,
     ["quant_offset", "group_index"]),
    ("grouped H alignment", torch.ones(6, 96, dtype=torch.int32),
     with_(DSQ_GROUPED, weight_scale=torch.ones(2, 96), quant_scale=torch.ones(2, 48)), ValueError, ["H", "64"]),
    ("grouped H max", torch.ones(1, 2 * 10560, dtype=torch.int32),
     {"weight_scale": torch.ones(1, 2 * 10560), "activation_scale": torch.ones(1), "group_index": torch.tensor([1]),
      "quant_mode": 1}, ValueError, ["H", "10496"]),
    ("grouped weight_scale rows", XI, with_(DSQ_GROUPED, weight_scale=torch.ones(1, 128)), ValueError,
     ["weight_scale", "group"]),
    ("grouped quant_scale rows", XI, with_(DSQ_GROUPED, quant_scale=torch.ones(64)), ValueError,
     ["quant_scale", "[2, 64]"]),
    ("counts negative", XI, with_(DSQ_GROUPED, group_index=torch.tensor([-1, 3])), ValueError,
     ["group_index", ">= 0"]),
    ("counts over T", XI, with_(DSQ_GROUPED, group_index=torch.tensor([4, 3])), ValueError,
     ["group_index", "T=6"]),
]


def check_raises(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("args,error,words", [c[1:] for c in QUANTIZE_CASES], ids=[c[0] for c in QUANTIZE_CASES])
def test_npu_quantize_bad_input(args, error, words):
    check_raises(lambda: qg.npu_quantize(*args), error, ["npu_quantize", *words])


@pytest.mark.parametrize("args,kwargs,error,words", [c[1:] for c in GROUP_QUANT_CASES],
                         ids=[c[0] for c in GROUP_QUANT_CASES])
def test_npu_group_quant_bad_input(args, kwargs, error, words):
    check_raises(lambda: qg.npu_group_quant(*args, **kwargs), error, ["npu_group_quant", *words])


@pytest.mark.parametrize("x,kwargs,error,words", [c[1:] for c in DSQ_CASES], ids=[c[0] for c in DSQ_CASES])
def test_npu_dequant_swiglu_quant_bad_input(x, kwargs, error, words):
    check_raises(lambda: qg.npu_dequant_swiglu_quant(x, **kwargs), error, ["npu_dequant_swiglu_quant", *words])


def test_valid_baselines_pass():
    """The cases above each break one rule of these calls."""
    qg.npu_quantize(X, S16, torch.zeros(16, dtype=torch.int32), torch.qint8, -1, True)
    qg.npu_quantize(X, S16, torch.zeros(16), torch.qint8, -1, False)
    qg.npu_group_quant(X, torch.ones(2, 16), GI, offset=torch.ones(1))
    qg.npu_dequant_swiglu_quant(XI, **DSQ_OK)
    qg.npu_dequant_swiglu_quant(XI, **DSQ_GROUPED)
