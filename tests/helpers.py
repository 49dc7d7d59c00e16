import torch
from torch._dynamo.testing import CompileCounterWithBackend
from torch._subclasses.fake_tensor import FakeTensorMode

from quant_graph import native

# Run the ops on their portable torch path, as on a machine without the C kernels.
portable_path = native.disabled


def call_on_fakes(op, *args, **kwargs):
    """op with every tensor argument replaced by a FakeTensor: what its fake kernel returns."""
    with FakeTensorMode() as mode:
        def fake(v):
            return mode.from_tensor(v) if isinstance(v, torch.Tensor) else v
        return op(*(fake(a) for a in args), **{k: fake(v) for k, v in kwargs.items()})


def assert_same_metadata(fake, eager):
    """Shapes and dtypes of (tuples of) tensors agree."""
    fake, eager = (fake, eager) if isinstance(eager, tuple) else ((fake,), (eager,))
    for f, e in zip(fake, eager, strict=True):
        assert (f.shape, f.dtype) == (e.shape, e.dtype)


def assert_identical(actual, expected):
    """Same dtype, shape and bits (NaN where NaN; -0.0 is not 0.0)."""
    if isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            assert_identical(a, e)
        return
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if actual.dtype.is_floating_point and actual.element_size() == 1:
        actual, expected = actual.view(torch.uint8), expected.view(torch.uint8)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0, equal_nan=True)
    if actual.dtype.is_floating_point:
        numbers = ~expected.isnan()
        assert torch.equal(actual.signbit()[numbers], expected.signbit()[numbers]), "signs of zero differ"


def compile_once_across_tokens(fn, make_args, token_counts=(1, 7, 64, 1000)):
    """Compile ``fn`` with inductor (dynamic, fullgraph), run it for each token count with
    the token dim unbacked (so 1 does not specialise), check compiled == eager and return
    the number of compiles."""
    torch._dynamo.reset()  # parametrized tests share fn's code object
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(fn, backend=counter, dynamic=True, fullgraph=True)
    for tokens in token_counts:
        args, token_dims = make_args(tokens)
        for arg, dim in token_dims:
            torch._dynamo.decorators.mark_unbacked(arg, dim)
        assert_identical(compiled(*args), fn(*args))
    return counter.frame_count
