"""Build GE graphs with TorchAir's backend, dump them, and read them back as GraphDef protos."""

from __future__ import annotations

from pathlib import Path

from . import load_torchair

DUMP_PREFIX = "dynamo_original_graph_"


def npu_backend(*, dump_dir: str | Path | None = None, config=None, offline: bool | None = None):
    """TorchAir's torch.compile backend with quant_graph's converters registered.

    On an Ascend host this is TorchAir's backend as configured. In offline GE mode (no
    CANN) it builds the GE graph with TorchAir's real code, dumps it when ``dump_dir`` is
    given, then runs the FX graph eagerly on quant_graph's fallbacks (TorchAir's
    ``debug.run_eagerly``), since nothing here can compile or run a GE graph.
    """
    torchair, is_offline = load_torchair(offline=offline)
    from torchair.configs.compiler_config import CompilerConfig

    config = CompilerConfig() if config is None else config
    if is_offline:
        config.debug.run_eagerly = True
    if dump_dir is not None:
        Path(dump_dir).mkdir(parents=True, exist_ok=True)
        # protobuf text: exact to read back; read_graphs() writes TorchAir's pbtxt beside it
        config.debug.graph_dump.type = "txt"
        config.debug.graph_dump.path = str(dump_dir)
    return torchair.get_npu_backend(compiler_config=config)


def read_graphs(dump_dir: str | Path, skip=frozenset()) -> list[tuple[Path, object]]:
    """The GE graphs dumped in ``dump_dir``, oldest first, as ``(pbtxt path, GraphDef)``,
    leaving out the dumps (``*.txt`` paths) in ``skip``; writes each as TorchAir's readable
    pbtxt the first time it is read."""
    load_torchair()
    from google.protobuf import text_format
    from torchair._ge_concrete_graph.ge_ir_pb2 import GraphDef
    from torchair._ge_concrete_graph.utils import convert_to_pbtxt

    graphs = []
    dumps = set(Path(dump_dir).glob(f"{DUMP_PREFIX}*.txt")) - set(skip)
    for txt in sorted(dumps, key=lambda p: p.stat().st_mtime_ns):
        graph = text_format.Parse(txt.read_text(), GraphDef())
        pbtxt = txt.with_suffix(".pbtxt")
        if not pbtxt.exists():
            pbtxt.write_text(convert_to_pbtxt(graph))
        graphs.append((pbtxt, graph))
    return graphs


def ge_dtype_names() -> dict[int, str]:
    """GE DataType values (as attrs such as dst_type hold them) to their names."""
    load_torchair()
    from torchair.ge import DataType

    return {value: name for name, value in vars(DataType).items() if name.startswith("DT_")}


def ge_input_names(op_type: str) -> list[str]:
    """A GE operator's inputs in order, from its generated raw op's signature (the
    parameters before the keyword-only attrs); empty for an operator TorchAir lacks."""
    load_torchair()
    import inspect

    from torchair._ge_concrete_graph import ge_apis

    raw_op = getattr(ge_apis, op_type, None)
    if raw_op is None:
        return []
    params = inspect.signature(raw_op).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
