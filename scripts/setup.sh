#!/usr/bin/env bash
# Creates .venv with the pinned toolchain and quant_graph installed in editable mode, then
# `quant-graph install-ge` puts TorchAir's Python sources (from the torch_npu wheel) beside it
# for offline GE mode. Prints a line per step; pip shows its own progress.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv ($(python3 --version))"
    python3 -m venv .venv
fi
echo "setup: installing the pinned toolchain into .venv (requirements-dev.txt: torch 2.13.0 CPU, pytest, ...)"
.venv/bin/pip install --disable-pip-version-check --progress-bar on -r requirements-dev.txt
echo "setup: installing quant_graph (editable) into .venv"
.venv/bin/pip install --disable-pip-version-check -q --no-deps -e .
# Not into .venv: installed there, torch_npu makes `import torch` fail without CANN.
echo "setup: offline GE mode"
.venv/bin/quant-graph install-ge
echo "setup: done; the CLI is .venv/bin/quant-graph (or: source .venv/bin/activate)"
