"""The ``quant-graph`` command line (also ``python -m quant_graph``).

    quant-graph dump examples/moe_ffn.py:make_model   # GE graph: pbtxt, summary, DOT/SVG
    quant-graph check                                 # what this machine has, what runs where
    quant-graph install-ge                            # what offline GE mode needs, installed

Exit status of dump: 0 every quant op lowered to its fused GE node; 1 a quant op did not
lower, or the model has none; 2 the command, the factory or the environment failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from . import native
from ._registry import OPS
from ._version import __version__
from .backend import npu_available
from .converters import _offline
from .ge import dump_ge_graph


class CommandError(Exception):
    """A failure reported as one line on stderr (exit status 2), not as a traceback."""


def _load_factory(target: str):
    path, _, name = target.rpartition(":")
    if not path or not name:
        raise CommandError(f"expected <file.py>:<factory>, got {target!r}")
    file = Path(path).resolve()
    if not file.is_file():
        raise CommandError(f"no file {file}")
    sys.path.insert(0, str(file.parent))  # the factory's module may import its neighbours
    spec = importlib.util.spec_from_file_location(file.stem, file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - whatever the user's module raises, say so in one line
        raise CommandError(f"importing {file.name} raised {type(err).__name__}: {err}") from err
    if not callable(getattr(module, name, None)):
        raise CommandError(f"{file.name} has no callable {name!r}")
    return getattr(module, name)


def _made_model(target: str):
    factory = _load_factory(target)
    try:
        made = factory()
    except Exception as err:  # noqa: BLE001
        raise CommandError(f"{target} raised {type(err).__name__}: {err}") from err
    if not (isinstance(made, tuple) and len(made) == 2):
        raise CommandError(f"{target} must return (model, example_args), got {type(made).__name__}")
    model, example_args = made
    return model, example_args if isinstance(example_args, tuple) else (example_args,)


def _missing_for_ge(command: str) -> str:
    lines = [f"{command}: offline GE mode needs what is missing here:"]
    for piece, pip_args in _offline.missing_pieces():
        lines.append(f"  {piece}: {sys.executable} -m pip install {' '.join(pip_args)}")
    return "\n".join(lines + ["(or all at once: quant-graph install-ge)"])


def dump(args) -> int:
    if not npu_available() and _offline.missing_pieces():
        raise CommandError(_missing_for_ge("quant-graph dump"))
    model, example_args = _made_model(args.target)
    dump_dir = Path(args.dump_dir or Path("quant_graph_dump") / Path(args.target.rpartition(":")[0]).stem)
    try:
        result = dump_ge_graph(model, *example_args, dump_dir=dump_dir)
    except Exception as err:  # noqa: BLE001 - report what TorchAir could not lower, whatever it raised
        print(f"quant-graph dump: the model did not lower to a GE graph:\n{err}", file=sys.stderr)
        return 1
    print(result.summary())
    files = [*result.pbtxt_paths, *result.proto_text_paths()]
    if not args.no_dot:
        files += result.write_dot()
        if not shutil.which("dot"):
            print("\nSVG not rendered: Graphviz's `dot` is not on PATH (install graphviz, e.g. apt-get install "
                  "graphviz); the .dot files render anywhere Graphviz runs")
    print("\nwritten:\n" + "\n".join(f"  {f}" for f in sorted(files)))
    if not result.fx_quant_ops:
        print(f"\nquant-graph dump: no quant op was captured: {args.target}'s model calls none of quant_graph's "
              f"operators ({', '.join(sorted(OPS))}), so its GE graph has no fused quant node", file=sys.stderr)
        return 1
    return 1 if result.not_lowered() else 0


def install_ge(args) -> int:
    """Install what offline GE mode lacks, with pip's own progress."""
    missing = _offline.missing_pieces()
    if not missing:
        print(f"offline GE mode is ready: TorchAir's sources in {_offline.side_install_dir()}")
        return 0
    for piece, pip_args in missing:
        command = [sys.executable, "-m", "pip", "install", *pip_args]
        print(f"installing {piece}:\n  {' '.join(command)}", flush=True)
        if subprocess.run(command).returncode != 0:
            raise CommandError(f"pip failed installing {piece}; the command above shows what it ran")
    print(f"offline GE mode is ready: TorchAir's sources in {_offline.side_install_dir()}")
    return 0


def _find_cann() -> str | None:
    roots = [os.environ.get("ASCEND_HOME_PATH"), os.environ.get("ASCEND_TOOLKIT_HOME"),
             "/usr/local/Ascend/ascend-toolkit/latest", "/usr/local/Ascend/latest"]
    roots += os.environ.get("LD_LIBRARY_PATH", "").split(":")
    for root in filter(None, roots):
        for candidate in (Path(root) / "libge_runner.so", Path(root) / "lib64" / "libge_runner.so"):
            if candidate.exists():
                return str(candidate)
    return None


def check(args) -> int:
    lib = native.library()
    has_torch_npu = importlib.util.find_spec("torch_npu") is not None
    cann = _find_cann()
    npu = npu_available()
    side = _offline.torchair_source_dir()
    offline_ready = (side / "torchair" / "__init__.py").is_file()
    rows = [
        ("torch", torch.__version__),
        ("C kernels", native.status()),
        ("torch_npu", "installed" if has_torch_npu else "not installed"),
        ("CANN", cann or "not found (no libge_runner.so)"),
        ("NPU", "available" if npu else "none"),
        ("TorchAir", "torch_npu's, with CANN" if npu else
         f"offline GE mode available (sources in {side})" if offline_ready else
         "offline GE mode unavailable; install what it needs with: quant-graph install-ge"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("\nwhat runs where:")
    if npu:
        print("  eager quant ops on npu tensors   torch_npu's fused kernels")
        print('  torch.compile(backend="quant_graph")   TorchAir: one fused GE node per quant op, on the NPU')
    print("  eager quant ops on CPU tensors   " + ("quant_graph's C kernels" if lib else "the portable torch path")
          + ("; common dynamic quant calls through C++ dispatcher kernels" if native.dispatch_library() else ""))
    if not npu:
        print('  torch.compile(backend="quant_graph")   inductor, quant ops as calls into the eager kernels'
              + ("; with dump_dir, the GE graph built offline and dumped" if offline_ready else ""))
        print("  GE graphs   " + ("built and dumped offline (quant-graph dump); not compiled or run: no CANN"
                                  if offline_ready else "unavailable: no TorchAir sources"))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="quant-graph", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"quant-graph {__version__} (torch {torch.__version__})")
    commands = parser.add_subparsers(dest="command", required=True)
    dump_parser = commands.add_parser("dump", help="build, dump and summarise a model's GE graph")
    dump_parser.add_argument("target", help="<file.py>:<factory>, the factory returning (model, example_args)")
    dump_parser.add_argument("--dump-dir", help="where to write (default: quant_graph_dump/<file stem>)")
    dump_parser.add_argument("--no-dot", action="store_true", help="skip the Graphviz DOT/SVG rendering")
    dump_parser.set_defaults(run=dump)
    check_parser = commands.add_parser("check", help="report the environment and what runs where")
    check_parser.set_defaults(run=check)
    install_parser = commands.add_parser("install-ge", help="install what offline GE mode needs (TorchAir's "
                                                            "sources beside this environment, protobuf, packaging)")
    install_parser.set_defaults(run=install_ge)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CommandError as err:
        print(f"quant-graph {args.command}: {err}" if "\n" not in str(err) else str(err), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
