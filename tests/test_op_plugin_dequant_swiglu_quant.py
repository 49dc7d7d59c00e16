"""op-plugin's own test of npu_dequant_swiglu_quant (Ascend/op-plugin
test/test_custom_ops/test_npu_dequant_swiglu_quant.py), rewritten to run on CPU: the same
input generators (shapes, value ranges, which arguments are None), a golden in the spirit of
theirs (group by group in float32; the dynamic quant multiplies by 127 / max as theirs does)
and their tolerance (y within 1, as op-plugin's MindSpore twin allows; scale to 1e-4, the
default precision of torch_npu's assertRtolEqual).

Upstream skips cases 1-3 (they need CANN 8.3.RC1's aclnnDequantSwigluQuantV2) and runs case 4
on Ascend950 only; here every case runs. Case 3 uses group_index=[T] with static quant, which
the seed refuses ("group_index: dynamic quant only") while op-plugin's newer doc and
aclnnDequantSwigluQuantV2 accept it: it checks the refusal, then runs with group_index=None,
the same single group. Case 4 asks for float8_e5m2 output (dst_type 291),
which quant_graph refuses (an Ascend950-only format): it checks that refusal, then runs the
same inputs with int8 output. Upstream has no swiglu_mode 2 case, and its golden would treat
mode 2 as plain mode 0; the docs and the kernel define mode 2 as mode 0's halves with mode
1's arithmetic, so the mode 2 case added here follows them.
"""

import pytest
import torch

import quant_graph as qg

INT8_MAX = 127


def golden(x, weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index, activate_left, quant_mode,
           swiglu_mode=0, clamp_limit=7.0, glu_alpha=1.702, glu_bias=1.0):
    """op-plugin's reference computation (per group; int8 output, rint)."""
    x = x.reshape(-1, x.shape[-1])
    tokens, hidden = x.shape[0], x.shape[1] // 2
    weight_scale = None if weight_scale is None else weight_scale.reshape(-1, x.shape[1])
    activation_scale = None if activation_scale is None else activation_scale.reshape(-1, 1)
    if quant_scale is not None and quant_mode == 1:
        quant_scale = quant_scale.reshape(-1, hidden)
    counts = [tokens] if group_index is None else group_index.tolist()
    y = torch.zeros(tokens, hidden)
    scale = torch.zeros(tokens)
    start = 0
    for g, count in enumerate(counts):
        rows = slice(start, start + count)
        start += count
        part = x[rows]
        if x.dtype == torch.int32:
            if bias is not None and bias.dtype == torch.int32:
                part = part + bias.reshape(-1)
            res = part.float() * weight_scale[g]
            if activation_scale is not None:
                res = res * activation_scale[rows]
            if bias is not None and bias.dtype != torch.int32:
                res = res + bias.float()
        else:
            res = part.float()
        if swiglu_mode == 1:
            gate, other = res[:, 0::2], res[:, 1::2]
        else:
            left, right = res.chunk(2, dim=-1)
            gate, other = (left, right) if activate_left else (right, left)
        if swiglu_mode in (1, 2):
            gate = gate.clamp(max=clamp_limit)
            other = other.clamp(-clamp_limit, clamp_limit)
            out = gate * torch.sigmoid(glu_alpha * gate) * (other + glu_bias)
        else:
            out = torch.nn.functional.silu(gate) * other
        if quant_mode == 0:
            out = out / quant_scale.float()[g]
            if quant_offset is not None:
                out = out + quant_offset.float()[g]
            row_scale = torch.zeros(count)
        else:
            if quant_scale is not None:
                out = out * quant_scale.float()[g]
            row_max = out.abs().amax(dim=-1)
            row_scale = row_max / INT8_MAX
            out = out * (INT8_MAX / row_max).unsqueeze(1)
        y[rows] = torch.round(out.clamp(-128, 127))
        scale[rows] = row_scale
    return y.to(torch.int8), scale


def assert_matches_golden(out, expected, *, check_scale=True):
    (y, scale), (y_gold, scale_gold) = out, expected
    assert y.shape == y_gold.shape and y.dtype == torch.int8
    diff = (y.int() - y_gold.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01, (diff.max(), (diff > 0).float().mean())
    if check_scale:
        torch.testing.assert_close(scale, scale_gold, rtol=1e-4, atol=0)


def a2_case(seed, *, activation_scale, quant_mode):
    """Cases 1-3's inputs: int32 x [4608, 2048] in [-10, 10), randn scales, one group of all rows."""
    g = torch.Generator().manual_seed(seed)
    tokens, width = 4608, 2048
    x = torch.randint(-10, 10, (tokens, width), generator=g, dtype=torch.int32)
    weight_scale = torch.randn(width, generator=g)
    act = torch.randn(tokens, 1, generator=g) if activation_scale else None
    quant_scale = torch.randn(1, width // 2, generator=g)
    quant_offset = torch.randn(1, width // 2, generator=g) if quant_mode == 0 else None
    return dict(x=x, weight_scale=weight_scale, activation_scale=act, bias=None, quant_scale=quant_scale,
                quant_offset=quant_offset, group_index=torch.tensor([tokens]), activate_left=True,
                quant_mode=quant_mode)


def run_both(case, **glu):
    out = qg.npu_dequant_swiglu_quant(case["x"], **{k: v for k, v in case.items() if k != "x"}, **glu)
    return out, golden(*case.values(), **glu)


def test_case_1_mode_0_dynamic_without_activation_scale(kernel_path):
    case = a2_case(1, activation_scale=False, quant_mode=1)
    out, expected = run_both(case, swiglu_mode=0, clamp_limit=7.0, glu_alpha=1.702, glu_bias=1.0)
    assert_matches_golden(out, expected)


def test_case_2_mode_1_dynamic(kernel_path):
    case = a2_case(2, activation_scale=True, quant_mode=1)
    out, expected = run_both(case, swiglu_mode=1, clamp_limit=7.0, glu_alpha=1.702, glu_bias=1.0)
    assert_matches_golden(out, expected)


def test_case_3_mode_0_static(kernel_path):
    # Upstream passes group_index=[T] here; the seed allows group_index in dynamic mode only
    # (newer docs drop that rule: see the module docstring), so it is refused, and the same
    # single group runs as group_index=None.
    case = a2_case(3, activation_scale=True, quant_mode=0)
    with pytest.raises(ValueError, match="group_index supports only quant_mode=1"):
        run_both(case)
    case["group_index"] = None
    out, expected = run_both(case, swiglu_mode=0, clamp_limit=7.0, glu_alpha=1.702, glu_bias=1.0)
    assert_matches_golden(out, expected, check_scale=False)  # upstream compares y only here


@pytest.mark.parametrize("activate_left", [True, False])
def test_case_2_with_mode_2_as_documented(kernel_path, activate_left):
    case = {**a2_case(5, activation_scale=True, quant_mode=1), "activate_left": activate_left}
    out, expected = run_both(case, swiglu_mode=2, clamp_limit=7.0, glu_alpha=1.702, glu_bias=1.0)
    assert_matches_golden(out, expected)
    mode_0, _ = run_both(case, swiglu_mode=0)
    assert not torch.equal(out[0], mode_0[0])  # not upstream's golden's reading (plain mode 0)


def ascend950_case():
    """Case 4's inputs: int32 x [8, 4], float32 bias, no activation_scale or quant_scale, dynamic."""
    g = torch.Generator().manual_seed(4)
    return dict(x=torch.randint(-10, 10, (8, 4), generator=g, dtype=torch.int32),
                weight_scale=torch.randn(4, generator=g), activation_scale=None, bias=torch.randn(4, generator=g),
                quant_scale=None, quant_offset=None, group_index=None, activate_left=False, quant_mode=1)


def test_case_4_float8_output_is_refused(kernel_path):
    case = ascend950_case()
    with pytest.raises(NotImplementedError, match="dst_type 291 .float8_e5m2. is an Ascend950-only output"):
        qg.npu_dequant_swiglu_quant(case.pop("x"), **case, dst_type=291, round_mode=0, activate_dim=-1)


def test_case_4_inputs_with_int8_output(kernel_path):
    case = ascend950_case()
    out = qg.npu_dequant_swiglu_quant(case["x"], **{k: v for k, v in case.items() if k != "x"}, dst_type=1,
                                      round_mode=0, activate_dim=-1, swiglu_mode=0)
    assert_matches_golden(out, golden(*case.values()))
