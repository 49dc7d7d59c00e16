"""GE graphs of compiled models: build and dump them (``dump``), summarise them
(``summary``) and render them (``render``). TorchAir itself is reached only through
``quant_graph.converters``."""

from .dump import GeDump, dump_ge_graph

__all__ = ["GeDump", "dump_ge_graph"]
