"""The CPU fast path: builds ``csrc/kernels.c`` once per machine and loads it with ctypes.

A straightforward torch composite of a quant formula makes seven or more passes over
memory and reaches well under a tenth of ``clone`` bandwidth on CPU; the C kernels make
one. The library is compiled with the system C compiler on first use and cached under
``$QUANT_GRAPH_CACHE_DIR`` (default ``~/.cache/quant_graph``), keyed by the source, the
flags and the machine. Without a compiler, or with ``QUANT_GRAPH_NATIVE=0``, ``library()``
returns None and every op uses its portable torch path, which gives identical results.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).parent / "csrc" / "kernels.c"
# -ffp-contract=off: an FMA would round differently from torch's separate mul and add.
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC"]

# enum qg_in_dtype / qg_out_kind in kernels.c
IN_DTYPE = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2, torch.int32: 3}
OUT_INT8, OUT_INT4, OUT_UINT8, OUT_INT32 = 0, 1, 2, 3
# by the target dtype a user names
OUT_KIND = {torch.int8: OUT_INT8, torch.qint8: OUT_INT8, torch.quint4x2: OUT_INT4, torch.quint8: OUT_UINT8,
            torch.qint32: OUT_INT32}

_i64, _int, _f32, _ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_float, ctypes.c_void_p
_SIGNATURES = {
    "qg_dynamic_quant": [_ptr, _int, _i64, _i64, _ptr, _ptr, _i64, _int, _int, _int, _f32, _f32,
                         _ptr, _ptr, _ptr, _int],
    "qg_affine_quant": [_ptr, _int, _i64, _i64, _ptr, _ptr, _int, _i64, _ptr, _i64, _int, _ptr, _int],
    "qg_dequant_swiglu_quant": [_ptr, _int, _i64, _i64, _ptr, _ptr, _i64, _ptr, _ptr, _i64, _ptr, _ptr, _i64,
                                _int, _int, _ptr, _ptr, _int],
}


def cache_dir() -> Path:
    return Path(os.environ.get("QUANT_GRAPH_CACHE_DIR", Path.home() / ".cache" / "quant_graph"))


def _cpu_signature() -> str:
    """What -march=native compiles for: the CPU's model and feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "".join(sorted({line for line in lines if line.startswith(("model name", "flags", "Features"))}))


def _build(compiler: str) -> Path:
    key = hashlib.sha256(
        SOURCE.read_bytes() + " ".join([compiler, *FLAGS, platform.machine(), _cpu_signature()]).encode()
    ).hexdigest()[:16]
    target = cache_dir() / f"kernels-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: concurrent first uses never load a half-written file.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(built), "-lm"], check=True,
                       capture_output=True, text=True)
        os.replace(built, target)
    return target


@functools.cache
def library() -> ctypes.CDLL | None:
    """The loaded kernel library, or None when the portable torch path must serve."""
    if os.environ.get("QUANT_GRAPH_NATIVE", "1") == "0":
        return None
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        return None
    try:
        lib = ctypes.CDLL(str(_build(compiler)))
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or err
        warnings.warn(f"quant_graph: C kernels unavailable, using the portable torch path: {detail}",
                      stacklevel=2)
        return None
    for name, argtypes in _SIGNATURES.items():
        getattr(lib, name).argtypes = argtypes
        getattr(lib, name).restype = None
    return lib


def serves(*tensors: torch.Tensor | None) -> bool:
    """Whether the C kernels can take these tensors (all on CPU) on this machine."""
    return all(t is None or t.device.type == "cpu" for t in tensors) and library() is not None


def ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def threads() -> int:
    return torch.get_num_threads()
