"""Apply what a run learned (prompt θ and mapping ω) to new inputs: predictions as CSV, with the queries spent.

The inputs are a dataset spec like --data of `reprogram` (a bundled name, .npz, CSV
or image folder; their labels, when real, give an accuracy line). --model sends
the queries to another oracle holding the same model (e.g. a `blackbox-rp serve` URL).

example:
  blackbox-rp apply runs/one --data new_images/ --out predictions.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "apply a finished run's prompt and mapping to new inputs (predictions CSV, queries spent)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a finished run directory")
    p.add_argument("--data", required=True, help="inputs: bundled dataset name, .npz, CSV or image folder")
    p.add_argument("--out", type=Path, default=None, help="predictions CSV (default RUN_DIR/predictions.csv)")
    p.add_argument("--model", default=None, help="another oracle spec holding the run's model (default: the run's)")
    p.add_argument("--api-key-env", default=None, help="NAME of the variable holding the key of a remote --model")
    p.add_argument("--limit", type=int, default=None, help="only the first N inputs")


def run(args: argparse.Namespace) -> int:
    import csv

    import numpy as np

    from blackbox_rp.data import load_target
    from blackbox_rp.experiments.apply import apply_run

    data = load_target(args.data)
    if args.limit is not None:
        if args.limit < 1:
            raise ValueError(f"--limit {args.limit}: give a positive number of inputs")
        data = data.subset(np.arange(min(args.limit, len(data))))
    r = apply_run(args.run_dir, data, model=args.model, api_key_env=args.api_key_env)
    out = args.out or args.run_dir / "predictions.csv"
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "prediction", "class", "label"])
        for i, (pr, y) in enumerate(zip(r["pred"], data.y)):
            w.writerow([i, int(pr), r["classes"][int(pr)], int(y)])
    acc = "" if r["accuracy"] is None else f"; accuracy against the given labels {100 * r['accuracy']:.1f}%"
    print(f"{len(r['pred'])} predictions -> {out}; spent {r['queries']} queries / {r['calls']} calls on "
          f"{r['oracle']}{acc}")
    return 0
