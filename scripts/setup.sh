#!/usr/bin/env bash
# Creates .venv with the pinned toolchain and quant_graph installed in editable mode, and
# puts TorchAir's Python sources (from the torch_npu wheel) beside it for offline GE mode.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q -r requirements-dev.txt
.venv/bin/pip install -q --no-deps -e .
# Not into .venv: installed there, torch_npu makes `import torch` fail without CANN.
TORCH_NPU_DIR="${QUANT_GRAPH_TORCH_NPU_DIR:-$HOME/.cache/quant_graph/torch_npu}"
if [ ! -f "$TORCH_NPU_DIR/torch_npu/dynamo/torchair/__init__.py" ]; then
    .venv/bin/pip install -q --no-deps --target "$TORCH_NPU_DIR" torch-npu==2.13.0
fi
