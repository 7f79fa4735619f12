"""What the oracle layer costs: ledger + cache + journal overhead per query against the bare model.

Side by side in one run, interleaved (bare, oracle, bare, oracle, ...) so that
machine noise hits both alike: EfficientNet-Lite0 on fresh inputs (every
oracle call is a journal miss, so hashing, the SQLite write and the ledger are
all paid), at batch sizes 1, 32 and 128. Also timed: answering the same batch
again from the journal (a replay, as on resume).

    python benchmarks/oracle_overhead.py            # full
    python benchmarks/oracle_overhead.py --quick    # < 1 minute

Prints a markdown table; the last line is one JSON object of headline figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small run, under a minute")
    ap.add_argument("--size", type=int, default=128, help="image side in px (default 128)")
    ap.add_argument("--model", default="efficientnet-lite0")
    args = ap.parse_args()

    import torch

    from blackbox_rp import Journal, Ledger
    from oracles import TorchOracle

    reps = {1: 40, 32: 12, 128: 4} if args.quick else {1: 200, 32: 50, 128: 15}
    rng = np.random.default_rng(0)
    rows = []
    headline = {}
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "bench.sqlite")
        oracle = TorchOracle(args.model, journal=journal, ledger=Ledger(), max_batch=128)
        channels = oracle.input_spec.channels
        warm = rng.random((8, channels, args.size, args.size), dtype=np.float32)
        oracle.forward(warm)
        oracle(warm)
        for bs, n in reps.items():
            bare, wrapped, replay = [], [], []
            for _ in range(n):
                x = rng.random((bs, channels, args.size, args.size), dtype=np.float32)
                t0 = time.perf_counter()
                oracle.forward(x)
                t1 = time.perf_counter()
                oracle(x)  # fresh inputs: a journal miss, hashed, answered, written, counted
                t2 = time.perf_counter()
                oracle(x)  # the same inputs again: replayed from the journal, no model call
                t3 = time.perf_counter()
                bare.append(t1 - t0)
                wrapped.append(t2 - t1)
                replay.append(t3 - t2)
            b, w, r = statistics.median(bare), statistics.median(wrapped), statistics.median(replay)
            pct = 100.0 * (w - b) / b
            rows.append((bs, n, 1e3 * b / bs, 1e3 * w / bs, 1e3 * (w - b) / bs, pct, 1e3 * r / bs))
            headline[f"overhead_pct_b{bs}"] = round(pct, 2)
            headline[f"replay_ms_per_query_b{bs}"] = round(1e3 * r / bs, 4)
        t = oracle.ledger.total()
        journal.close()

    print(f"## Oracle overhead: {args.model} at {args.size}px, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print("| batch | reps | bare model ms/query | oracle ms/query | overhead ms/query | overhead % | "
          "journal replay ms/query |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for bs, n, b, w, d, pct, r in rows:
        print(f"| {bs} | {n} | {b:.3f} | {w:.3f} | {d:+.3f} | {pct:+.1f}% | {r:.4f} |")
    print(f"\nledger after the run: {t.queries} queries, {t.calls} calls, {t.cache_hits} replayed from the journal")
    headline.update({"model": args.model, "size": args.size, "quick": args.quick})
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
