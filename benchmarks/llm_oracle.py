"""Gemma-3 270M next-token queries: in process (llama.cpp) against llama.cpp's own server.

The same prompts (real texts in a template), the same exposure (top-20 token
log-probabilities), answered three ways:

* in process, ``LlamaCppOracle``, reusing the KV cache of the shared template prefix (the default);
* in process, every prompt evaluated from scratch (``reuse_prefix=False``);
* ``python -m llama_cpp.server`` on a loopback port, through ``OpenAITokenOracle`` (the official
  ``openai`` client, completions with ``logprobs=20``, ``max_tokens=1``), one prompt per request.

The server computes logits for every prompt position (it must, to return
logprobs), so it pays more per query; the table says how much. It also reports
how often the two paths agree on the top token and the largest log-probability
difference over the shared top-20 tokens.

    OMP_WAIT_POLICY=passive python benchmarks/llm_oracle.py            # 48 prompts
    OMP_WAIT_POLICY=passive python benchmarks/llm_oracle.py --quick    # 12 prompts, under 2 minutes

Prints a markdown table; the last line is one JSON object of headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before llama_cpp loads OpenMP

import numpy as np  # noqa: E402

TEMPLATES = {
    "mr": 'Review: {text}\nSentiment (positive or negative):',
    "chatterbot-topics": 'Message: "{text}"\nTopic:',
}


def prompts_for(data: str, n: int, seed: int) -> list[str]:
    from blackbox_rp.textdata import load_text_target

    d = load_text_target(data)
    idx = np.random.default_rng(seed).choice(len(d), size=min(n, len(d)), replace=False)
    template = TEMPLATES.get(data, "{text}")
    return [template.format(text=t) for t in d.x[idx]]


def timed(oracle, prompts: list[str]) -> tuple[object, float]:
    t0 = time.perf_counter()
    r = oracle(prompts)
    return r, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="12 prompts (under 2 minutes)")
    ap.add_argument("--data", default="chatterbot-topics", help="chatterbot-topics (default), mr, or a text file")
    ap.add_argument("--prompts", type=int, default=None, help="number of prompts (default 48; --quick 12)")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads, both paths (default 2)")
    ap.add_argument("--top", type=int, default=20, help="top-k exposure, both paths (<= 20)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from oracles.llama_cpp_oracle import LlamaCppOracle, LlamaVocabulary, gguf_path
    from oracles.openai_oracle import OpenAITokenOracle
    from oracles.subprocess_server import running_server

    n = args.prompts or (12 if args.quick else 48)
    prompts = prompts_for(args.data, n, args.seed)
    exposure = f"top{args.top}"
    model = str(gguf_path())
    load_before = os.getloadavg()
    rows, answers = [], {}

    t0 = time.perf_counter()
    lm = LlamaCppOracle(model, exposure=exposure, n_threads=args.threads, max_batch=8)
    load_s = time.perf_counter() - t0
    lm(["warm-up"])
    for name, reuse in (("in process, prefix reused", True), ("in process, from scratch", False)):
        lm.reuse_prefix = reuse
        before = lm.ledger.total()
        r, secs = timed(lm, prompts)
        after = lm.ledger.total()
        answers[name] = r
        rows.append((name, after.queries - before.queries, after.calls - before.calls, secs))
    lm.reuse_prefix = True

    argv = lambda port: [sys.executable, "-m", "llama_cpp.server", "--model", model,  # noqa: E731
                         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                         "--n_threads", str(args.threads)]
    t0 = time.perf_counter()
    with running_server(argv, timeout=300) as url:
        start_s = time.perf_counter() - t0
        with OpenAITokenOracle("gemma3-270m", LlamaVocabulary.from_file(model), top_logprobs=args.top,
                               base_url=url + "/v1", api_key_env=None, timeout=300, max_batch=1,
                               max_in_flight=1) as remote:
            remote(["warm-up"])
            before = remote.ledger.total()
            r, secs = timed(remote, prompts)
            after = remote.ledger.total()
    answers["server"] = r
    rows.append(("llama.cpp server (openai client)", after.queries - before.queries, after.calls - before.calls, secs))

    local, served = answers["in process, prefix reused"], answers["server"]
    top1 = float(np.mean(local.indices[:, 0] == served.indices[:, 0]))
    diffs = []
    for i in range(len(prompts)):
        shared = np.intersect1d(local.indices[i], served.indices[i])
        lp_l = dict(zip(local.indices[i].tolist(), np.log(local.scores[i])))
        lp_s = dict(zip(served.indices[i].tolist(), np.log(np.maximum(served.scores[i], 1e-38))))
        diffs.append(max(abs(lp_l[j] - lp_s[j]) for j in shared.tolist()))
    load_after = os.getloadavg()

    print(f"## Gemma-3 270M next-token queries ({exposure}): in process vs llama.cpp server\n")
    print(f"{len(prompts)} prompts from {args.data}, template {TEMPLATES.get(args.data, '{text}')!r}; "
          f"{args.threads} llama.cpp threads; model load {load_s:.1f} s in process, server start {start_s:.1f} s\n")
    print("| path | queries | calls | seconds | queries/s | calls/s | ms/query |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, q, c, s in rows:
        print(f"| {name} | {q} | {c} | {s:.2f} | {q / s:.2f} | {c / s:.2f} | {1e3 * s / q:.0f} |")
    print(f"\nagreement, in process vs server: top-1 token {100 * top1:.0f}% of prompts; largest |Δ log-prob| "
          f"over shared top-{args.top} tokens {max(diffs):.4f} (median {float(np.median(diffs)):.4f})")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} cores")
    by = {name: (q, c, s) for name, q, c, s in rows}
    headline = {
        "prompts": len(prompts), "data": args.data, "exposure": exposure, "threads": args.threads,
        "inprocess_queries_per_s": round(by["in process, prefix reused"][0] / by["in process, prefix reused"][2], 3),
        "inprocess_ms_per_query": round(1e3 * by["in process, prefix reused"][2] / len(prompts), 1),
        "inprocess_scratch_ms_per_query": round(1e3 * by["in process, from scratch"][2] / len(prompts), 1),
        "server_queries_per_s": round(by["llama.cpp server (openai client)"][0]
                                      / by["llama.cpp server (openai client)"][2], 3),
        "server_calls_per_s": round(by["llama.cpp server (openai client)"][1]
                                    / by["llama.cpp server (openai client)"][2], 3),
        "server_ms_per_query": round(1e3 * by["llama.cpp server (openai client)"][2] / len(prompts), 1),
        "top1_agreement": top1, "max_abs_logprob_diff": round(float(max(diffs)), 5),
        "load_avg_before": round(load_before[0], 2), "load_avg_after": round(load_after[0], 2), "quick": args.quick,
    }
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
