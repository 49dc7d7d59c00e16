"""Building ``csrc/kernels.c`` and ``csrc/dispatch.cpp`` once per machine and caching the
shared objects safely.

A shared object is code that runs in the user's process, so the cache only ever loads one
that this user built and nobody else can have changed:

* the cache directory (``$QUANT_GRAPH_CACHE_DIR``, default ``~/.cache/quant_graph``) is
  created owner-only (0700) and refused if another user owns it or others can write it;
* each object is named by a hash of the source and its headers, the compiler, the flags,
  the CPU (and for dispatch.cpp the torch it is compiled against), and
  has beside it the SHA-256 of its bytes; it is loaded only if it and that record are
  owned by this user, writable by nobody else, and the bytes still hash to the record.
  A truncated, corrupt or foreign object is rebuilt;
* a build runs under a file lock, into a temporary file renamed into place, so processes
  starting together build once and never load a half-written object.

``QUANT_GRAPH_SANITIZE=address,undefined`` builds the kernels (C and C++) with those
sanitizers (a separate cache entry); the process must then preload the sanitizer runtimes
(``sanitizer_preload``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import stat
import subprocess
import tempfile
from pathlib import Path

# -ffp-contract=off: an FMA would round differently from torch's separate mul and add.
# -fno-trapping-math: nothing reads the floating-point exception flags, and without it GCC
# keeps SwiGLU's exp loops scalar (their NaN and range selects might raise a flag), about 3x
# slower; like -fno-math-errno it changes no value.
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fopenmp",
         "-shared", "-fPIC"]
SANITIZE_ENV = "QUANT_GRAPH_SANITIZE"


class CacheError(Exception):
    """Why the cache cannot give a trustworthy shared object."""


def cache_dir() -> Path:
    return Path(os.environ.get("QUANT_GRAPH_CACHE_DIR", Path.home() / ".cache" / "quant_graph"))


def flags() -> list[str]:
    return FLAGS + sanitizer_flags()


def sanitizer_flags() -> list[str]:
    """What ``QUANT_GRAPH_SANITIZE`` adds to every build, the C++ dispatcher kernels' too."""
    sanitizers = os.environ.get(SANITIZE_ENV, "")
    return [f"-fsanitize={sanitizers}", "-fno-omit-frame-pointer", "-g"] if sanitizers else []


def sanitizer_preload(sanitizers: str, compiler: str = "cc") -> list[str]:
    """The runtime libraries a process must LD_PRELOAD to load a build with ``sanitizers``
    (as ``QUANT_GRAPH_SANITIZE`` names them)."""
    names = {"address": "libasan.so", "undefined": "libubsan.so"}
    wanted = [names[s] for s in sanitizers.split(",") if s in names]
    return [subprocess.run([compiler, f"-print-file-name={name}"], capture_output=True, text=True,
                           check=True).stdout.strip() for name in wanted]


def _cpu_signature() -> str:
    """What -march=native compiles for: the CPU's model and feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "".join(sorted({line for line in lines if line.startswith(("model name", "flags", "Features"))}))


def _owned_and_private(path: Path) -> str | None:
    """Why ``path`` cannot be trusted, or None."""
    info = path.stat()
    if info.st_uid != os.getuid():
        return f"{path} is owned by uid {info.st_uid}, not by you (uid {os.getuid()})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by others (mode {stat.filemode(info.st_mode)})"
    return None


def _private_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise CacheError(f"cannot create the kernel cache {path}: {err}") from err
    problem = _owned_and_private(path)
    if problem:
        raise CacheError(f"the kernel cache is not private: {problem}")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _intact(so: Path, record: Path) -> bool:
    """``so`` and its hash record exist, are ours and private, and agree."""
    try:
        if _owned_and_private(so) or _owned_and_private(record):
            return False
        return record.read_text().strip() == _digest(so)
    except OSError:
        return False


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(source: Path, compiler: str, build_flags: list[str] | None = None, libraries: tuple[str, ...] = ("-lm",),
          *, key: str = "") -> Path:
    """The path of an intact shared object built from ``source`` (and the headers beside it)
    with ``build_flags`` (default ``flags()``); builds it if needed. ``key``: anything else
    the object depends on (the torch it is compiled against). Raises CacheError (an
    unusable cache) or subprocess.CalledProcessError (the compiler)."""
    build_flags = flags() if build_flags is None else build_flags
    headers = b"".join(header.read_bytes() for header in sorted(source.parent.glob("*.h")))
    digest = hashlib.sha256(source.read_bytes() + headers + " ".join(
        [compiler, *build_flags, *libraries, platform.machine(), _cpu_signature(), key]).encode()).hexdigest()[:16]
    directory = cache_dir()
    _private_dir(directory)
    so, record = directory / f"{source.stem}-{digest}.so", directory / f"{source.stem}-{digest}.so.sha256"
    if _intact(so, record):
        return so
    try:
        with _locked(directory / f"{source.stem}-{digest}.lock"):
            if _intact(so, record):  # another process built it while this one waited
                return so
            with tempfile.TemporaryDirectory(dir=directory) as tmp:
                built = Path(tmp) / so.name
                subprocess.run([compiler, *build_flags, str(source), "-o", str(built), *libraries], check=True,
                               capture_output=True, text=True)
                built.chmod(0o700)
                (Path(tmp) / record.name).write_text(_digest(built) + "\n")
                os.replace(built, so)
                os.replace(Path(tmp) / record.name, record)
    except OSError as err:
        raise CacheError(f"cannot write the kernel cache {directory}: {err}") from err
    return so
