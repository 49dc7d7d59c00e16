"""The C kernels' cache loads only an intact object of this user's, rebuilds anything else,
builds once when processes start together, and without it the portable path serves and
says why. And the kernels run clean under AddressSanitizer and UBSan."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from quant_graph import _kernel_cache, native


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("QUANT_GRAPH_CACHE_DIR", str(directory))
    return directory


def build():
    return _kernel_cache.build(native.SOURCE, os.environ.get("CC", "cc"))


def test_first_build_is_private_and_recorded(cache):
    so = build()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert not so.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    record = so.with_name(so.name + ".sha256")
    assert record.read_text().strip() == _kernel_cache._digest(so)
    mtime = so.stat().st_mtime_ns
    assert build() == so and so.stat().st_mtime_ns == mtime  # found, not rebuilt


@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "writable by others", "no record"])
def test_a_damaged_object_is_rebuilt_never_loaded(cache, damage):
    so = build()
    good = so.read_bytes()
    if damage == "truncate":
        so.write_bytes(good[: len(good) // 2])
    elif damage == "flip a byte":
        so.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])
    elif damage == "writable by others":
        so.chmod(0o722)
    else:
        so.with_name(so.name + ".sha256").unlink()
    assert not _kernel_cache._intact(so, so.with_name(so.name + ".sha256"))
    assert build() == so
    assert so.read_bytes() == good and not so.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def test_an_object_owned_by_someone_else_is_not_trusted(cache, monkeypatch):
    so = build()
    monkeypatch.setattr(os, "getuid", lambda: os.stat(so).st_uid + 1)
    assert not _kernel_cache._intact(so, so.with_name(so.name + ".sha256"))
    with pytest.raises(_kernel_cache.CacheError, match="not by you"):
        build()


def test_a_cache_others_can_write_is_refused(cache):
    cache.mkdir(mode=0o700)
    cache.chmod(0o777)
    with pytest.raises(_kernel_cache.CacheError, match="writable by others"):
        build()


def test_processes_starting_together_build_once_and_all_load_it(cache):
    code = "import quant_graph; print(quant_graph.native.status())"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1 and outs[0][0].startswith("built (")
    assert len(list(cache.glob("kernels-*.so"))) == 1 and not list(cache.glob("tmp*"))


@pytest.mark.parametrize("env,reason", [
    ({"CC": "no-such-compiler"}, "no C compiler 'no-such-compiler' on PATH"),
    ({"CC": "false"}, "false failed"),
    ({"QUANT_GRAPH_CACHE_DIR": "/dev/null/cache"}, "cannot create the kernel cache /dev/null/cache"),
    ({"QUANT_GRAPH_NATIVE": "0"}, "QUANT_GRAPH_NATIVE=0"),
])
def test_without_the_c_kernels_the_portable_path_serves_and_check_says_why(env, reason):
    result = subprocess.run([sys.executable, "-m", "quant_graph", "check"], capture_output=True, text=True,
                            env={**os.environ, **env}, check=True)
    line = next(line for line in result.stdout.splitlines() if line.startswith("C kernels"))
    assert f"unavailable ({reason}" in line and "the portable torch path serves" in line
    assert "eager quant ops on CPU tensors   the portable torch path" in result.stdout


def test_the_kernels_run_clean_under_address_and_undefined_behaviour_sanitizers(tmp_path, sanitized_cache):
    """The registry's samples, the native-vs-portable and the dispatcher-vs-Python property
    tests, in a process whose C and C++ kernels are built with -fsanitize=address,undefined
    (a crash or report fails it)."""
    # the reports go to files: pytest's fd capture in the child would lose them at the abort
    env = {**os.environ, _kernel_cache.SANITIZE_ENV: "address,undefined",
           "QUANT_GRAPH_CACHE_DIR": str(sanitized_cache),
           "ASAN_OPTIONS": f"detect_leaks=0:log_path={tmp_path / 'asan'}",
           "UBSAN_OPTIONS": f"halt_on_error=1:print_stacktrace=1:log_path={tmp_path / 'ubsan'}"}
    env["LD_PRELOAD"] = " ".join(_kernel_cache.sanitizer_preload("address,undefined"))
    tests = Path(__file__).parent
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(tests / "test_registry.py"),
         str(tests / "test_strided_parameters.py"), str(tests / "test_dynamic_quant.py"),
         str(tests / "test_dequant_swiglu_quant.py"), str(tests / "test_dispatch.py")],
        capture_output=True, text=True, env=env, cwd=tests.parent)
    reports = "".join(p.read_text() for p in [*tmp_path.glob("asan.*"), *tmp_path.glob("ubsan.*")])
    assert result.returncode == 0 and not reports, (reports or result.stdout + result.stderr)[-4000:]
    assert sanitized_cache.exists() and list(sanitized_cache.glob("kernels-*.so"))
