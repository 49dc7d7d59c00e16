import pytest
from hypothesis import settings

from quant_graph import native

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.load_profile("ci")


@pytest.fixture(params=["native", "portable"])
def kernel_path(request, monkeypatch):
    """Run a test on the C kernels and on the portable torch path, which must agree."""
    if request.param == "native":
        assert native.library() is not None, "the C kernels did not build; is a C compiler installed?"
    else:
        monkeypatch.setattr(native, "library", lambda: None)
    return request.param
