"""The ``quant-graph`` command line (also ``python -m quant_graph``).

    quant-graph dump examples/moe_ffn.py:make_model   # GE graph: pbtxt, summary, DOT/SVG
    quant-graph check                                 # what this machine has, what runs where
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import torch

from . import native
from ._version import __version__
from .backend import npu_available
from .converters import _offline
from .ge import dump_ge_graph


def _load_factory(target: str):
    path, _, name = target.rpartition(":")
    if not path or not name:
        raise SystemExit(f"quant-graph dump: expected <file.py>:<factory>, got {target!r}")
    file = Path(path).resolve()
    if not file.is_file():
        raise SystemExit(f"quant-graph dump: no file {file}")
    sys.path.insert(0, str(file.parent))  # the factory's module may import its neighbours
    spec = importlib.util.spec_from_file_location(file.stem, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, name, None)):
        raise SystemExit(f"quant-graph dump: {file.name} has no callable {name!r}")
    return getattr(module, name)


def dump(args) -> int:
    made = _load_factory(args.target)()
    if not (isinstance(made, tuple) and len(made) == 2):
        raise SystemExit("quant-graph dump: the factory must return (model, example_args)")
    model, example_args = made
    example_args = example_args if isinstance(example_args, tuple) else (example_args,)
    dump_dir = Path(args.dump_dir or Path("quant_graph_dump") / Path(args.target.rpartition(":")[0]).stem)
    try:
        result = dump_ge_graph(model, *example_args, dump_dir=dump_dir)
    except Exception as err:  # noqa: BLE001 - report what TorchAir could not lower, whatever it raised
        print(f"quant-graph dump: the model did not lower to a GE graph:\n{err}", file=sys.stderr)
        return 1
    print(result.summary())
    files = [*result.pbtxt_paths, *([] if args.no_dot else result.write_dot())]
    print("\nwritten:\n" + "\n".join(f"  {f}" for f in files))
    return 1 if result.not_lowered() else 0


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
        ("C kernels", f"built ({lib._name})" if lib else "unavailable: eager ops use the portable torch path"),
        ("torch_npu", "installed" if has_torch_npu else "not installed"),
        ("CANN", cann or "not found (no libge_runner.so)"),
        ("NPU", "available" if npu else "none"),
        ("TorchAir", "torch_npu's, with CANN" if npu else
         f"offline GE mode available (sources in {side})" if offline_ready else
         "offline GE mode unavailable; install its sources with: "
         + _offline.INSTALL_COMMAND.format(dir=_offline.side_install_dir())),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("\nwhat runs where:")
    if npu:
        print("  eager quant ops on npu tensors   torch_npu's fused kernels")
        print('  torch.compile(backend="quant_graph")   TorchAir: one fused GE node per quant op, on the NPU')
    print("  eager quant ops on CPU tensors   " + ("quant_graph's C kernels" if lib else "the portable torch path"))
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
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
