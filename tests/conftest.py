import pytest
from hypothesis import settings

from quant_graph import native

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.load_profile("ci")


@pytest.fixture(params=["native", "portable"])
def kernel_path(request):
    """Run a test on the C kernels and on the portable torch path, which must agree."""
    if request.param == "native":
        assert native.enabled(), "the C kernels did not build; is a C compiler installed?"
        yield request.param
    else:
        with native.disabled():
            yield request.param
