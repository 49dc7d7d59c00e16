"""Generic tests over every op of the sample registry (samples.py): bit-exact against the
reference on both kernel paths, opcheck, fake kernel metadata against the output formula,
and every invalid sample raising its error in eager and (unless eager-only) under
FakeTensorMode. An op in ``torch.ops.quant_graph`` without an entry fails here."""

import pytest
import torch
from helpers import assert_identical
from reference import EXP_OF_PATH
from samples import OPS, invalid_samples, sample_id, valid_samples
from torch._subclasses.fake_tensor import FakeTensorMode

VALID = valid_samples()
INVALID = invalid_samples()


def registered_ops():
    """Every op the quant_graph namespace defines, from the dispatcher."""
    names = torch._C._dispatch_get_all_op_names()
    return {n.split("::", 1)[1].split(".")[0] for n in names if n.startswith("quant_graph::")}


def test_every_op_has_an_entry():
    assert registered_ops() == set(OPS), "each op in torch.ops.quant_graph needs samples in tests/samples.py"
    for info in OPS.values():
        assert any(s.expected is not None for s in info.samples), f"{info.name}: no hand-computed sample"
        assert info.invalid, f"{info.name}: no invalid samples"
        assert any(not s.eager_only for s in info.invalid), info.name


def as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


@pytest.mark.parametrize("pair", VALID, ids=sample_id)
def test_matches_reference_bit_for_bit(kernel_path, pair):
    info, sample = pair
    out = info.public(*sample.args, **sample.kwargs)
    expected = info.reference(sample.args, sample.kwargs, EXP_OF_PATH[kernel_path])
    assert_identical(as_tuple(out), as_tuple(expected))
    if sample.expected is not None:
        assert_identical(as_tuple(out), as_tuple(sample.expected))


@pytest.mark.parametrize("pair", [p for p in VALID if p[1].expected is not None], ids=sample_id)
def test_reference_gives_the_hand_computed_outputs(pair):
    """The reference itself is right where a sample was worked out by hand."""
    info, sample = pair
    for exp in EXP_OF_PATH.values():
        assert_identical(as_tuple(info.reference(sample.args, sample.kwargs, exp)), as_tuple(sample.expected))


def small(sample, limit=20_000):
    return all(t.numel() <= limit for t in (*sample.args, *sample.kwargs.values()) if isinstance(t, torch.Tensor))


def has_nan(pair):
    """opcheck compares eager with traced outputs without equal_nan: leave out NaN outputs."""
    info, sample = pair
    return any(t.is_floating_point() and bool(t.float().isnan().any())
               for t in as_tuple(info.reference(sample.args, sample.kwargs, torch.exp)))


@pytest.mark.parametrize("pair", [p for p in VALID if small(p[1]) and not has_nan(p)], ids=sample_id)
def test_opcheck(pair):
    info, sample = pair
    torch.library.opcheck(info.op, sample.args, sample.kwargs)


def fake_call(op, args, kwargs, mode):
    def fake(v):
        return mode.from_tensor(v) if isinstance(v, torch.Tensor) else v

    with mode:
        return op(*(fake(a) for a in args), **{k: fake(v) for k, v in kwargs.items()})


@pytest.mark.parametrize("pair", VALID, ids=sample_id)
def test_fake_kernel_metadata_is_the_formula(pair):
    info, sample = pair
    out = as_tuple(fake_call(info.op, sample.args, sample.kwargs, FakeTensorMode()))
    assert [(tuple(t.shape), t.dtype) for t in out] == info.output_meta(sample.args, sample.kwargs)


def check_message(info, sample, err):
    message = str(err)
    for word in (info.name, *sample.words):
        assert word in message, (word, message)


@pytest.mark.parametrize("pair", INVALID, ids=sample_id)
def test_invalid_raises_in_eager(pair):
    info, sample = pair
    with pytest.raises(sample.error) as caught:
        info.public(*sample.args, **sample.kwargs)
    check_message(info, sample, caught.value)


@pytest.mark.parametrize("pair", [p for p in INVALID if not p[1].public_only], ids=sample_id)
def test_invalid_raises_in_the_fake_kernel(pair):
    """No eager kernel runs under FakeTensorMode: shape and dtype rules live in the fake
    kernel. A value rule (eager-only) cannot, and the fake kernel accepts its call."""
    info, sample = pair
    if sample.eager_only:
        out = as_tuple(fake_call(info.op, sample.args, sample.kwargs, FakeTensorMode()))
        assert [(tuple(t.shape), t.dtype) for t in out] == info.output_meta(sample.args, sample.kwargs)
        return
    with pytest.raises(sample.error) as caught:
        fake_call(info.op, sample.args, sample.kwargs, FakeTensorMode())
    check_message(info, sample, caught.value)
