import pytest
from hypothesis import settings

from quant_graph import native
from quant_graph.converters import _offline

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.load_profile("ci")


def pytest_sessionstart(session):
    """Many tests build GE graphs offline: without what that needs, say so once, up front,
    instead of dozens of failures (CI installs it: scripts/setup.sh runs quant-graph install-ge)."""
    missing = _offline.missing_pieces()
    if missing:
        pytest.exit("the tests need offline GE mode, which lacks: " + "; ".join(piece for piece, _ in missing)
                    + ". Install it with: quant-graph install-ge (or bash scripts/setup.sh)", returncode=4)


@pytest.fixture(scope="session")
def sanitized_cache(tmp_path_factory):
    """One kernel cache for the tests that run the kernels under sanitizers: the sanitized
    C++ dispatcher kernels take most of a minute to build, once."""
    return tmp_path_factory.mktemp("sanitized") / "cache"


@pytest.fixture(params=["native", "portable"])
def kernel_path(request):
    """Run a test on the C kernels and on the portable torch path, which must agree."""
    if request.param == "native":
        assert native.enabled(), "the C kernels did not build; is a C compiler installed?"
        yield request.param
    else:
        with native.disabled():
            yield request.param
