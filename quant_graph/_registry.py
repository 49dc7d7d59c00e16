"""The ``quant_graph`` op namespace and the one registry of its operators.

Each op module under ``quant_graph/ops/`` declares its operator once with ``define``; every
list of operators (the package's exports, converter registration, GE summaries, the tests'
op sets) is read from ``OPS``. Per operator the registry holds:

* its schema (``LIB.define``) and the fused GE operator type(s) it lowers to;
* its kernels, one per dispatch key, each chosen once at registration:
  the fake kernel (``register_fake``), the portable torch kernel for every device
  (``CompositeExplicitAutograd``), the C kernel for CPU tensors (registered on the ``CPU``
  key by ``quant_graph.native`` when the C library builds) and, on ``PrivateUse1`` (npu),
  a call into torch_npu's fused op of the same name; and on ``Autograd`` a kernel that
  runs the op below autograd, since quantization has no gradient: outputs never require
  grad, so nothing pretends to be differentiable (a Python kernel, which ``native``
  replaces with its C++ twin where that builds);
* its public function (torch_npu's name and signature) and the op module's name, which is
  also the name of its converter module under ``quant_graph/converters/``;
* optionally its decomposition: the eager kernel's formula in torch ops, bit for bit, which
  the ``quant_graph`` compile backend traces in place of the op on its inductor path
  (``backend.py``) so that inductor fuses it; it returns ``NotImplemented`` for the modes
  it does not cover, which stay calls into the eager kernel.

Where torch_npu is not in the process (``_host``), every op is defined a second time as
``npu::<name>`` with the same schema (torch_npu's, verbatim) and the same kernels, so
``torch.ops.npu.<name>`` and ``torch.ops.quant_graph.<name>`` are one operator under two
names.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import _host

LIB = torch.library.Library("quant_graph", "DEF")
# FRAGMENT: the namespace is torch_npu's; quant_graph only fills it where torch_npu is absent
NPU_LIB = torch.library.Library("npu", "FRAGMENT") if _host.defines_npu_namespace() else None
LIBS = {"quant_graph": LIB} | ({"npu": NPU_LIB} if NPU_LIB is not None else {})
# The ops' Python Autograd kernels, apart, so that native can replace them with its C++ ones
_PYTHON_AUTOGRAD = {ns: torch.library.Library(ns, "IMPL") for ns in LIBS}


@dataclass
class QuantOp:
    name: str
    ge_types: tuple[str, ...]
    module: str
    public: Callable | None = None
    cpu_kernel: Callable | None = None
    decomposition: Callable | None = None
    # the values of the op's rules that csrc/dispatch.cpp's fast path checks too (native
    # hands them over), named as the op module names them
    rule_values: dict[str, int | tuple[int, ...]] = dataclasses.field(default_factory=dict)

    @property
    def overload(self):
        """``torch.ops.quant_graph.<name>.default``: what FX graphs and converters name."""
        return getattr(torch.ops.quant_graph, self.name).default

    def overloads(self) -> dict[str, torch._ops.OpOverload]:
        """The op's overload in each namespace quant_graph defines it in."""
        return {ns: getattr(getattr(torch.ops, ns), self.name).default for ns in LIBS}

    def public_function(self, fn: Callable) -> Callable:
        self.public = fn
        return fn

    def fake(self, fn: Callable) -> Callable:
        checked = _breaks_dynamo_graph_on_invalid_call(self.name, fn)
        for ns, lib in LIBS.items():
            torch.library.register_fake(f"{ns}::{self.name}", lib=lib)(checked)
        return fn

    def portable(self, fn: Callable) -> Callable:
        for lib in LIBS.values():
            torch.library.impl(lib, self.name, "CompositeExplicitAutograd")(_kernel(fn))
        return fn

    def cpu(self, fn: Callable) -> Callable:
        """The C-kernel implementation; ``quant_graph.native`` registers it on the CPU key."""
        self.cpu_kernel = _kernel(fn)
        return fn

    def decompose(self, fn: Callable) -> Callable:
        """The op's formula in torch ops, called with the op's arguments; see the module docstring."""
        self.decomposition = fn
        return fn


OPS: dict[str, QuantOp] = {}


def given_arguments(**arguments) -> dict:
    """The keyword arguments that are not None, the ones a public wrapper passes on to its op:
    at decode size each keyword costs the dispatcher's argument parser about 0.4 us, a tenth of
    the C++ kernel's whole call."""
    return {name: value for name, value in arguments.items() if value is not None}


def define(name: str, schema: str, *, ge_types: tuple[str, ...], module: str) -> QuantOp:
    """Define ``quant_graph::<name><schema>`` and its npu kernel; ``module`` is the op
    module's ``__name__``."""
    if name in OPS:
        raise RuntimeError(f"quant_graph: operator {name} is defined twice")
    op = QuantOp(name, tuple(ge_types), module.rpartition(".")[2])
    for ns, lib in LIBS.items():
        lib.define(name + schema)
        _PYTHON_AUTOGRAD[ns].impl(name, _kernel(_below_autograd(ns, name)), "Autograd")
    torch.library.impl(LIB, name, "PrivateUse1")(_kernel(_torch_npu_kernel(name)))
    OPS[name] = op
    return op


def _kernel(fn: Callable) -> Callable:
    """A kernel the dispatcher runs, out of Dynamo's reach. Where Dynamo cannot put a call
    into its graph (an invalid call, see ``_breaks_dynamo_graph_on_invalid_call``) the op runs
    eagerly at a graph break, and Dynamo would otherwise try to compile the kernel's Python
    frames too, warning about the C++ objects they use (0.7 us a call)."""
    return torch.compiler.disable(fn)


def _breaks_dynamo_graph_on_invalid_call(name: str, fake_kernel: Callable) -> Callable:
    """``fake_kernel``, whose validation errors (a TypeError or ValueError naming the op)
    become a graph break when Dynamo is tracing the call: Dynamo would wrap them in a
    TorchRuntimeError with pages of context, while at a graph break the call runs eagerly,
    so a compiled function raises eager's error itself. With ``fullgraph=True`` Dynamo
    reports the break, whose explanation is the error's message."""

    @functools.wraps(fake_kernel)
    def checked_fake_kernel(*args, **kwargs):
        try:
            return fake_kernel(*args, **kwargs)
        except (TypeError, ValueError) as err:
            if not str(err).startswith(f"{name}:") or not _dynamo_is_tracing():
                raise
            from torch._dynamo.exc import unimplemented

            message = _with_traced_sizes(str(err))
            unimplemented(gb_type="quant_graph operator called with invalid arguments", context=name,
                          explanation=message, hints=["Eager mode raises the same error for this call."],
                          from_exc=err)

    return checked_fake_kernel


def _with_traced_sizes(message: str) -> str:
    """``message`` with each symbolic size (``s27``) replaced by the size Dynamo traced it
    at, as eager prints it."""
    shape_env = getattr(torch._guards.detect_fake_mode(), "shape_env", None)
    if shape_env is None:
        return message
    sizes = {str(symbol): str(value) for symbol, value in shape_env.backed_var_to_val.items()}
    return re.sub(r"\bs\d+\b", lambda symbol: sizes.get(symbol[0], symbol[0]), message)


def _dynamo_is_tracing() -> bool:
    """Dynamo is tracing a frame (not AOTAutograd, export's non-strict mode or make_fx, which
    also run fake kernels; torch.compiler.is_compiling() says True for them all)."""
    from torch._dynamo import symbolic_convert

    # the translator Dynamo is running, per thread; unset in a thread Dynamo never ran in
    return getattr(symbolic_convert.tls, "current_tx", None) is not None


def _below_autograd(namespace: str, name: str) -> Callable:
    """The Autograd kernel of a non-differentiable op: PyTorch's documented pattern
    (AutoDispatchBelowAutograd, then the op again), which opcheck checks for."""

    def autograd_kernel(*args, **kwargs):
        with torch._C._AutoDispatchBelowAutograd():
            return getattr(getattr(torch.ops, namespace), name).default(*args, **kwargs)

    return autograd_kernel


def drop_python_autograd_kernels() -> None:
    """Unregister the Python Autograd kernels: ``quant_graph.native`` registers C++ ones in
    their place (the dispatcher warns when a kernel replaces a registered one)."""
    while _PYTHON_AUTOGRAD:
        _PYTHON_AUTOGRAD.popitem()[1]._destroy()


def _torch_npu_kernel(name: str) -> Callable:
    """A thin hand-over to torch_npu's own fused kernel, which validates and computes on
    the device. No machine of this project has an NPU, so this path is never run here."""

    def npu_kernel(*args, **kwargs):
        try:
            torch_npu = importlib.import_module("torch_npu")
        except ImportError as err:  # pragma: no cover - an npu tensor without torch_npu
            raise RuntimeError(
                "quant_graph: a tensor is on an 'npu' device but torch_npu cannot be imported; "
                "install torch_npu with the CANN toolkit to run the fused kernels") from err
        return getattr(torch_npu, name)(*args, **kwargs)

    return npu_kernel


def fused_ge_types() -> tuple[str, ...]:
    """Every fused GE operator type some quant_graph op lowers to."""
    return tuple(dict.fromkeys(t for op in OPS.values() for t in op.ge_types))


class _QuietValidationErrors(logging.Filter):
    """FakeTensorMode logs every TypeError raised inside it with its whole traceback (34
    lines per error, since a TypeError there is usually a bug in a fake kernel) before it
    re-raises it. A dtype rule of a quant_graph op is not a bug, and Dynamo's own error
    already carries its message, so that log record is dropped for those errors alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        err = record.exc_info[1] if record.exc_info else None
        return not (isinstance(err, TypeError) and str(err).split(":", 1)[0] in OPS)


logging.getLogger("torch._subclasses.fake_tensor").addFilter(_QuietValidationErrors())
