#!/usr/bin/env bash
# Create .venv beside this repo and install blackbox-rp with every extra (models, remote, dev).
#
# torch: we pin the release our CI runs (TORCH_SPEC, default torch==2.13.0). Where pip's
# find-links holds the CPU wheel of that release (as on our CI machines), pip takes that file
# instead of pulling a multi-GB CUDA build; elsewhere it is the ordinary wheel from PyPI.
# The package itself only asks for torch>=2.2, so `pip install blackbox-rp` keeps any torch you have.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --disable-pip-version-check -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install --disable-pip-version-check -q -e ".[all]"
.venv/bin/python -m pip check
echo "blackbox-rp installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
