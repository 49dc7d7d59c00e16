"""The CPU fast path: builds ``csrc/kernels.c`` once per machine, loads it with ctypes, and
registers each op's C-kernel implementation on the ``CPU`` dispatch key.

A straightforward torch composite of a quant formula makes seven or more passes over
memory and reaches well under a tenth of ``clone`` bandwidth on CPU; the C kernels make
one. The library is compiled with the system C compiler on first use and cached
(``_kernel_cache``: private, hash-checked, built once under a lock). Without a compiler,
with an unusable cache, or with ``QUANT_GRAPH_NATIVE=0``, nothing is registered on the CPU
key and every op runs its portable torch kernel, which gives the same results;
``status()`` says why.

In front of them, where a C++ compiler and torch's headers are at hand, ``csrc/dispatch.cpp``
puts C++ kernels on the dispatcher's ``BackendSelect`` key for the common case of the
dynamic quant ops, ``npu_quantize``, ``npu_group_quant`` and ``npu_dequant_swiglu_quant``:
a valid call on plain CPU tensors in a format a C kernel writes runs without entering Python (at decode size the
Python kernel's dispatch, validation and ctypes cost about 30x the work); any other call
goes on to the kernels registered here, which keep every rule. The same library holds every op's Autograd kernel.
Without it (no C++ compiler, ``QUANT_GRAPH_DISPATCH=0``) every CPU call takes the Python
kernels, with the same results.

This is the one place that chooses between the paths: ``enable()`` at import,
``disable()`` / ``disabled()`` to run the portable kernels on CPU (what the tests use).

Each C kernel takes one struct of named arguments. ``Kernel`` mirrors a struct in
ctypes, fills it by keyword (a missing or unknown field raises), checks that every tensor
is a contiguous CPU tensor of an expected dtype, and the library is used only if its own
description of the structs (``qg_abi_layout``) matches the mirror.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from . import _dtypes, _kernel_cache, _numerics
from ._registry import LIBS, OPS, drop_python_autograd_kernels

SOURCE = Path(__file__).parent / "csrc" / "kernels.c"
DISPATCH_SOURCE = Path(__file__).parent / "csrc" / "dispatch.cpp"

# enum qg_in_dtype in kernels.c
IN_DTYPE = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2, torch.int32: 3}

# enum qg_status in kernels.c: a kernel that returns it has written nothing
_OUT_OF_MEMORY = 1

_CTYPES = {"int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64, "float": ctypes.c_float, "double": ctypes.c_double}


# OpenMP's thread pool does not survive fork(): a child that enters a parallel region the
# parent used waits forever for threads that no longer exist. A forked child (a DataLoader
# worker, a pre-fork server) runs the kernels on its one thread instead.
_in_forked_child = False


def _after_fork_in_child() -> None:
    global _in_forked_child
    _in_forked_child = True
    for dispatch, _ in _dispatch_loaded.values():
        if dispatch is not None:
            dispatch.qg_dispatch_single_threaded()


os.register_at_fork(after_in_child=_after_fork_in_child)


# Bytes of memory a thread should have to itself before another one is worth waking: at
# decode size a parallel region costs more than the work (and stalls for milliseconds when
# the other cores are busy). ATen's grain size, 32768 elements, is about as much.
_BYTES_PER_THREAD = 1 << 16


def _threads_for(bytes_touched: int, units: int) -> int:
    """Threads for a call touching ``bytes_touched`` bytes whose kernel splits ``units``
    (rows, mostly) between its threads: a thread with no unit would only cost its wake-up."""
    if _in_forked_child:
        return 1
    return max(1, min(torch.get_num_threads(), bytes_touched // _BYTES_PER_THREAD, units))


class Kernel:
    """One C kernel and its argument struct, field by field as kernels.c declares it.

    ``fields``: ``(name, C type)`` for scalars, ``(name, C type, dtypes)`` for pointers,
    ``dtypes`` the torch dtypes the tensor may have; a pointer may be passed None (NULL).
    ``extents(args)``: the bytes the C function reads or writes through each pointer, from
    the struct's size fields; a tensor smaller than that is a bug of quant_graph's own (the
    ops validate every user input first), stopped here before C touches memory it does not own.
    ``units(args)``: how many pieces of work the kernel splits between its threads.
    """

    def __init__(self, name: str, fields: list[tuple], extents: Callable[[dict], dict[str, int]],
                 units: Callable[[dict], int] = lambda args: args["rows"]):
        self.name = name
        self.fields = fields
        self.extents = extents
        self.units = units
        self.tensor_dtypes = {f[0]: f[2] for f in fields if len(f) == 3}
        self.names = frozenset(f[0] for f in fields) - {"threads"}
        self.struct = type(f"{name}_args", (ctypes.Structure,), {
            "_fields_": [(f[0], ctypes.c_void_p if f[1].endswith("*") else _CTYPES[f[1]]) for f in fields]})
        self._function = None  # the C function, bound by enable()

    def layout(self) -> str:
        """What ``qg_abi_layout`` prints for this struct."""
        body = "".join(f" {f[0]}:{f[1]}@{getattr(self.struct, f[0]).offset}" for f in self.fields)
        return f"{self.name.upper()}_ARGS/{ctypes.sizeof(self.struct)}:{body};"

    def bind(self, lib: ctypes.CDLL) -> None:
        self._function = getattr(lib, self.name)

    def __call__(self, **args) -> None:
        if args.keys() != self.names:
            missing, unknown = self.names - args.keys(), args.keys() - self.names
            raise TypeError(f"quant_graph: {self.name} missing {sorted(missing)}, unknown {sorted(unknown)}")
        if self._function is None:
            raise RuntimeError(f"quant_graph: {self.name} called before the C kernels were loaded")
        extents = self.extents(args)
        for name, dtypes in self.tensor_dtypes.items():
            t = args[name]
            if t is None:
                continue
            if not t.is_cpu or t.dtype not in dtypes or not t.is_contiguous():
                raise ValueError(f"quant_graph: {self.name} needs {name} as a contiguous CPU tensor of "
                                 f"{dtypes}, got {t.dtype} on {t.device}, contiguous={t.is_contiguous()}")
            if t.numel() * t.element_size() < extents[name]:
                raise RuntimeError(
                    f"quant_graph internal error: {self.name} would reach {extents[name]} bytes through {name}, "
                    f"which holds {t.numel() * t.element_size()} (shape {tuple(t.shape)}, {t.dtype}): a size "
                    f"field of the struct disagrees with the tensors passed")
            args[name] = t.data_ptr()
        touched = sum(extents[name] for name in self.tensor_dtypes if args[name] is not None)
        threads = _threads_for(touched, self.units(args))
        if self._function(self.struct(threads=threads, **args)) == _OUT_OF_MEMORY:
            raise MemoryError(f"quant_graph: the C kernel {self.name} could not allocate a float32 row buffer "
                              f"for each of its {threads} thread(s); it wrote nothing")


# Bytes per element of the C kernels' inputs and outputs: in_elem_bytes and out_row_bytes in kernels.c.
_IN_BYTES = {code: 2 if dtype in (torch.float16, torch.bfloat16) else 4 for dtype, code in IN_DTYPE.items()}


def _row_bytes(kind: int, cols: int) -> int:
    return cols // 8 * 4 if kind == _dtypes.INT4.c_kind else cols * (4 if kind == _dtypes.INT32.c_kind else 1)


def _dynamic_quant_extents(a: dict) -> dict[str, int]:
    rows, cols, groups = a["rows"], a["cols"], a["groups"]
    if a["per_channel"]:
        smooth, stats = a["channel_rows"], rows // max(a["channel_rows"], 1) * cols
    else:
        smooth, stats = (groups if a["group_ends"] is not None else 1) * cols, 1 if a["per_tensor"] else rows
    return {"x": rows * cols * _IN_BYTES[a["x_dtype"]], "smooth": 4 * smooth, "group_ends": 8 * groups,
            "y": rows * _row_bytes(a["out_kind"], cols), "scale": 4 * stats, "offset": 4 * stats}


def _affine_quant_extents(a: dict) -> dict[str, int]:
    rows, cols, groups = a["rows"], a["cols"], a["groups"]
    if a["per_row"]:
        scale = zero = min(rows, a["period"])
    else:
        scale, zero = (groups if a["group_ends"] is not None else 1) * cols, 1 if a["zero_is_scalar"] else cols
    param = _IN_BYTES[a["param_dtype"]]
    return {"x": rows * cols * _IN_BYTES[a["x_dtype"]], "scale": param * scale, "zero": param * zero,
            "group_ends": 8 * groups, "y": rows * _row_bytes(a["out_kind"], cols)}


def _dequant_swiglu_quant_extents(a: dict) -> dict[str, int]:
    rows, h, last_group = a["rows"], a["h"], max(a["groups"] - 1, 0)
    return {"x": rows * 2 * h * _IN_BYTES[a["x_dtype"]], "bias": 4 * 2 * h, "float_bias": 4 * 2 * h,
            "weight_scale": 4 * (last_group * a["weight_stride"] + 2 * h), "activation_scale": 4 * rows,
            "quant_scale": 4 * (last_group * a["quant_stride"] + h),
            "quant_offset": 4 * (last_group * a["quant_stride"] + h), "group_ends": 8 * a["groups"],
            "y": rows * _row_bytes(a["out_kind"], h), "scale": 4 * rows}


_IN = tuple(IN_DTYPE)
_F32, _I64, _I32 = (torch.float32,), (torch.int64,), (torch.int32,)
_QUANT_OUT = (torch.int8, torch.uint8, torch.int32, torch.float8_e4m3fn, torch.float8_e5m2)
_FORMAT = [("out_kind", "int32_t"), ("out_lo", "double"), ("out_hi", "double")]

DYNAMIC_QUANT = Kernel("qg_dynamic_quant", [
    ("x", "const void *", _IN), ("x_dtype", "int32_t"), ("rows", "int64_t"), ("cols", "int64_t"),
    ("smooth", "const float *", _F32), ("group_ends", "const int64_t *", _I64), ("groups", "int64_t"),
    ("symmetric", "int32_t"), ("per_tensor", "int32_t"), ("per_channel", "int32_t"), ("channel_rows", "int64_t"),
    *_FORMAT, ("dst_max", "float"), ("dst_span", "float"), ("y", "void *", _QUANT_OUT), ("scale", "float *", _F32),
    ("offset", "float *", _F32), ("threads", "int32_t")], _dynamic_quant_extents,
    units=lambda a: a["cols"] if a["per_channel"] else a["rows"])  # per channel: the columns
AFFINE_QUANT = Kernel("qg_affine_quant", [
    ("x", "const void *", _IN), ("x_dtype", "int32_t"), ("rows", "int64_t"), ("cols", "int64_t"),
    ("scale", "const void *", _IN), ("zero", "const void *", _IN), ("zero_is_scalar", "int32_t"),
    ("param_dtype", "int32_t"), ("per_row", "int32_t"), ("period", "int64_t"),
    ("group_ends", "const int64_t *", _I64), ("groups", "int64_t"), *_FORMAT,
    ("y", "void *", _QUANT_OUT), ("threads", "int32_t")], _affine_quant_extents)
DEQUANT_SWIGLU_QUANT = Kernel("qg_dequant_swiglu_quant", [
    ("x", "const void *", _IN), ("x_dtype", "int32_t"), ("rows", "int64_t"), ("h", "int64_t"),
    ("bias", "const int32_t *", _I32), ("weight_scale", "const float *", _F32), ("weight_stride", "int64_t"),
    ("activation_scale", "const float *", _F32), ("float_bias", "const float *", _F32),
    ("quant_scale", "const float *", _F32), ("quant_stride", "int64_t"), ("quant_offset", "const float *", _F32),
    ("group_ends", "const int64_t *", _I64), ("groups", "int64_t"), ("activate_left", "int32_t"),
    ("swiglu_mode", "int32_t"), ("clamp_limit", "float"), ("glu_alpha", "float"), ("glu_bias", "float"),
    ("dynamic", "int32_t"), *_FORMAT, ("dst_max", "float"), ("dst_span", "float"),
    ("y", "void *", _QUANT_OUT), ("scale", "float *", _F32), ("threads", "int32_t")],
    _dequant_swiglu_quant_extents)
KERNELS = (DYNAMIC_QUANT, AFFINE_QUANT, DEQUANT_SWIGLU_QUANT)


def format_args(qd) -> dict:
    """The struct fields that name an output format (a ``_dtypes.QuantDtype``)."""
    return {"out_kind": qd.c_kind, "out_lo": qd.lo, "out_hi": qd.hi}


def _abi_mismatch(lib: ctypes.CDLL) -> str | None:
    buf = ctypes.create_string_buffer(1 << 14)
    lib.qg_abi_layout.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.qg_abi_layout.restype = ctypes.c_int
    lib.qg_abi_layout(buf, len(buf))
    theirs, ours = buf.value.decode(), "".join(k.layout() for k in KERNELS)
    return None if theirs == ours else f"argument structs differ:\n  C:      {theirs}\n  Python: {ours}"


_loaded: dict[tuple, tuple[ctypes.CDLL | None, str]] = {}
_dispatch_loaded: dict[tuple, tuple[ctypes.CDLL | None, str]] = {}


def _setting() -> tuple:
    return (os.environ.get("QUANT_GRAPH_NATIVE", "1"), os.environ.get("CC", "cc"),
            os.environ.get(_kernel_cache.SANITIZE_ENV, ""), str(_kernel_cache.cache_dir()),
            os.environ.get("QUANT_GRAPH_DISPATCH", "1"), os.environ.get("CXX", "c++"))


def library() -> ctypes.CDLL | None:
    """The loaded kernel library, or None when the portable torch path must serve. Loaded
    once per setting (QUANT_GRAPH_NATIVE, CC, QUANT_GRAPH_SANITIZE, the cache directory)."""
    setting = _setting()
    if setting not in _loaded:
        _loaded[setting] = _load(*setting[:2])
    return _loaded[setting][0]


def dispatch_library() -> ctypes.CDLL | None:
    """The loaded C++ dispatcher kernels, or None when the Python kernels serve every CPU
    call. Needs the C kernels; loaded once per setting (as ``library``, and
    QUANT_GRAPH_DISPATCH, CXX)."""
    setting = _setting()
    if setting not in _dispatch_loaded:
        _dispatch_loaded[setting] = (None, "the C kernels are unavailable") if library() is None else (
            _load_dispatch(*setting[4:]))
    return _dispatch_loaded[setting][0]


def status() -> str:
    """Which kernels serve CPU tensors, and if not the C ones, why (``quant-graph check``)."""
    library()
    lib, reason = _loaded[_setting()]
    if lib is None:
        return f"unavailable ({reason}): the portable torch path serves"
    dispatch_library()
    dispatch, why = _dispatch_loaded[_setting()]
    fast_path = (f"C++ dispatcher kernels built ({dispatch._name})" if dispatch is not None else
                 f"C++ dispatcher kernels unavailable ({why}): the Python kernels serve every call")
    return f"built ({lib._name}); {fast_path}"


def _built(what: str, compiler: str, build: Callable[[], Path]) -> tuple[ctypes.CDLL | None, str]:
    """The library ``build()`` gives, loaded, or None and why not (the cache, the compiler's
    last 2000 characters of errors, or the loader's)."""
    try:
        return ctypes.CDLL(str(build())), ""
    except _kernel_cache.CacheError as err:
        return None, str(err)
    except subprocess.CalledProcessError as err:
        return None, f"{compiler} failed: {(err.stderr or '').strip()[-2000:] or err}"
    except OSError as err:
        return None, f"loading {what} failed: {err}"


def _load(enabled: str, compiler: str) -> tuple[ctypes.CDLL | None, str]:
    if enabled == "0":
        return None, "QUANT_GRAPH_NATIVE=0"
    if shutil.which(compiler) is None:
        return None, f"no C compiler {compiler!r} on PATH (set CC to choose one)"
    lib, problem = _built("the kernels", compiler, lambda: _kernel_cache.build(SOURCE, compiler))
    if lib is not None:
        problem = _abi_mismatch(lib)
    if problem:
        warnings.warn(f"quant_graph: C kernels unavailable, using the portable torch path: {problem}", stacklevel=3)
        return None, problem
    for kernel in KERNELS:
        fn = getattr(lib, kernel.name)
        fn.argtypes = [ctypes.POINTER(kernel.struct)]
        fn.restype = ctypes.c_int
    return lib, ""


def _dispatch_build_flags() -> list[str]:
    """dispatch.cpp against the running torch: its headers, its C++ ABI, its libraries."""
    root = Path(torch.__file__).parent
    return ["-O2", "-std=c++20", "-shared", "-fPIC", f"-I{root / 'include'}",
            f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}", f"-L{root / 'lib'}",
            f"-Wl,-rpath,{root / 'lib'}", *_kernel_cache.sanitizer_flags()]


def _load_dispatch(enabled: str, compiler: str) -> tuple[ctypes.CDLL | None, str]:
    if enabled == "0":
        return None, "QUANT_GRAPH_DISPATCH=0"
    if shutil.which(compiler) is None:
        return None, f"no C++ compiler {compiler!r} on PATH (set CXX to choose one)"
    lib, problem = _built("the dispatcher kernels", compiler, lambda: _kernel_cache.build(
        DISPATCH_SOURCE, compiler, _dispatch_build_flags(), ("-lc10", "-ltorch_cpu"),
        key=f"torch {torch.__version__} {torch.version.git_version}"))
    if lib is not None:
        lib.qg_dispatch_bind.argtypes = [*[ctypes.c_void_p] * 4, ctypes.c_int32, ctypes.c_double, ctypes.c_double,
                                         *[ctypes.c_int64] * 5]
        lib.qg_dispatch_bind.restype = None
        lib.qg_dispatch_bind_format.argtypes = [ctypes.c_int32, ctypes.c_int64, ctypes.c_int32, ctypes.c_double,
                                                ctypes.c_double, ctypes.c_int32]
        lib.qg_dispatch_bind_format.restype = None
        lib.qg_dispatch_register.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
        lib.qg_dispatch_register.restype = ctypes.c_int
        lib.qg_dispatch_register_autograd.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
        lib.qg_dispatch_register_autograd.restype = ctypes.c_int
        lib.qg_dispatch_threads_for.argtypes = [ctypes.c_int64, ctypes.c_int64]
        lib.qg_dispatch_threads_for.restype = ctypes.c_int
        lib.qg_dispatch_unregister.restype = lib.qg_dispatch_single_threaded.restype = None
        return lib, ""
    warnings.warn(f"quant_graph: C++ dispatcher kernels unavailable, CPU calls take the Python kernels: {problem}",
                  stacklevel=3)
    return None, problem


# dispatch.cpp's enum FormatList, in order: the op rule whose dtype codes each list holds
_FORMAT_LISTS = (("npu_dynamic_quant", "DST_CODES"), ("npu_quantize", "MUL_CODES"), ("npu_quantize", "DIV_CODES"))


def _register_dispatch(dispatch: ctypes.CDLL, lib: ctypes.CDLL) -> None:
    int8, swiglu = _dtypes.INT8, OPS["npu_dequant_swiglu_quant"].rule_values

    def code(dtype):
        return _dtypes.torch_npu_code("quant_graph", "dtype", dtype)

    def address(function):
        return ctypes.cast(function, ctypes.c_void_p)

    dispatch.qg_dispatch_bind(address(lib.qg_dynamic_quant), address(lib.qg_affine_quant),
                              address(lib.qg_dequant_swiglu_quant), address(lib.qg_widen), int8.c_kind, int8.lo,
                              int8.hi, code(torch.int8), code(torch.qint8), swiglu["GROUPED_MAX_H"],
                              swiglu["GROUPED_H_ALIGN"], _BYTES_PER_THREAD)
    # each list of dispatch.cpp's enum FormatList: the formats an op rule's codes name that a
    # C kernel writes unpacked
    for index, (op, rule) in enumerate(_FORMAT_LISTS):
        for dtype_code in OPS[op].rule_values[rule]:
            qd = _dtypes.quant_dtype(_dtypes.resolve_code(op, "dtype", dtype_code))
            if qd.c_kind is not None and qd.per_element == 1:
                dispatch.qg_dispatch_bind_format(index, dtype_code, qd.c_kind, qd.lo, qd.hi, code(qd.storage))
    if _in_forked_child:
        dispatch.qg_dispatch_single_threaded()
    # the kernels instantiate one slot per namespace: quant_graph's and npu's
    for slot, namespace in enumerate(("quant_graph", "npu")):
        if namespace in LIBS:
            _registered(f"the C++ dispatcher kernels for {namespace}",
                        lambda message: dispatch.qg_dispatch_register(slot, namespace.encode(), message, len(message)))


def _register_cpp_autograd_kernels(dispatch: ctypes.CDLL) -> None:
    """Once per process: the C++ Autograd kernels replace the Python ones; they serve every
    device, so ``disable()`` keeps them."""
    global _cpp_autograd
    if _cpp_autograd:
        return
    drop_python_autograd_kernels()
    for namespace in LIBS:
        for name in OPS:
            _registered(f"the C++ Autograd kernel of {namespace}::{name}", lambda message: (
                dispatch.qg_dispatch_register_autograd(namespace.encode(), name.encode(), message, len(message))))
    _cpp_autograd = True


_cpp_autograd = False


def _registered(what: str, register: Callable[[ctypes.Array], int]) -> None:
    message = ctypes.create_string_buffer(1024)
    if register(message):
        raise RuntimeError(f"quant_graph: registering {what} failed: {message.value.decode()}")


_cpu_registrations: list[torch.library.Library] = []
_dispatch_registrations: list[ctypes.CDLL] = []  # the dispatcher library whose kernels are registered


def enable() -> bool:
    """Register every op's C-kernel implementation on the CPU key, in each namespace the op
    is defined in, and the C++ dispatcher kernels in front of them (each if its library
    loads); returns whether the C kernels serve CPU tensors now."""
    lib = library()
    if not _cpu_registrations and lib is not None:
        for kernel in KERNELS:
            kernel.bind(lib)
        for namespace in LIBS:
            registrations = torch.library.Library(namespace, "IMPL")
            for op in OPS.values():
                if op.cpu_kernel is not None:
                    registrations.impl(op.name, op.cpu_kernel, "CPU")
            _cpu_registrations.append(registrations)
        dispatch = dispatch_library()
        if dispatch is not None:
            _register_cpp_autograd_kernels(dispatch)
            _register_dispatch(dispatch, lib)
            _dispatch_registrations.append(dispatch)
    return enabled()


def disable() -> None:
    """Remove the CPU registrations and the dispatcher kernels: CPU tensors take the
    portable torch kernels."""
    while _dispatch_registrations:
        _dispatch_registrations.pop().qg_dispatch_unregister()
    while _cpu_registrations:
        _cpu_registrations.pop()._destroy()


@contextlib.contextmanager
def without_dispatch():
    """Run CPU calls on the Python kernels alone, without the C++ dispatcher kernels in
    front of them (the tests hold the two to the same bits)."""
    registered = list(_dispatch_registrations)
    while _dispatch_registrations:
        _dispatch_registrations.pop().qg_dispatch_unregister()
    try:
        yield
    finally:
        for dispatch in registered:
            _register_dispatch(dispatch, library())
            _dispatch_registrations.append(dispatch)


def dispatch_enabled() -> bool:
    """Whether the C++ dispatcher kernels serve the common calls now."""
    return bool(_dispatch_registrations)


def enabled() -> bool:
    return bool(_cpu_registrations)


@contextlib.contextmanager
def disabled():
    """Run the ops on their portable torch kernels, as on a machine without the C kernels."""
    was_enabled = enabled()
    disable()
    try:
        yield
    finally:
        if was_enabled:
            enable()


def affine_quant(x2d, scale, zero, *, per_row, period=1, ends=None, qd, out):
    """The C twin of ``_numerics.affine_quant`` (same arguments); a format without a C writer
    (HiF8) takes the portable twin."""
    if qd.c_kind is None:
        _numerics.affine_quant(x2d, scale, zero, per_row=per_row, period=period, ends=ends, qd=qd, out=out)
        return
    rows, cols = x2d.shape
    AFFINE_QUANT(x=x2d, x_dtype=IN_DTYPE[x2d.dtype], rows=rows, cols=cols, scale=scale, zero=zero,
                 zero_is_scalar=int(not per_row and zero is not None and zero.numel() == 1),
                 param_dtype=IN_DTYPE[scale.dtype], per_row=per_row, period=period, group_ends=ends,
                 groups=0 if ends is None else ends.numel(), **format_args(qd), y=out)
