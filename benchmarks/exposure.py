"""Robustness under API limits: one reprogramming task against probability, top-5, top-1, label-only,
rounded-score and noisy-score exposures.

The task: the bundled small CNN (``fmnist-cnn``, trained on Fashion-MNIST)
reprogrammed black-box to MNIST digits (``mnist5k``), a ``lowdim`` frame prompt
around the digit, ZO-Adam, the same query budget and split for every exposure,
with two mappings: the ``linear`` readout on the returned scores (needs top-k:
refused under label-only, and the table says so) and the Bayesian ``blm``
(works from labels alone, so every exposure runs the very same task). Only the
exposure changes. Test accuracy and queries (spent, and spent when the selected
validation point was reached) as mean ± sd over seeds; the no-prompt mapping
under each exposure beside it.

    python benchmarks/exposure.py --quick            # < 2 minutes
    python benchmarks/exposure.py --rows runs/exposure.jsonl   # 3 seeds, resumable

The last line is a JSON object of headline figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import statistics
import sys
import time
from pathlib import Path

from _common import append_row, csv_list as _csv, mean_sd, read_rows
from blackbox_rp.baselines import output_only
from blackbox_rp.data import load_target, split_dataset
from blackbox_rp.exposure import parse_exposure
from blackbox_rp.studies.exposure_study import DEFAULT_EXPOSURES, ExposureStudy, run_exposure_study
from oracles import TorchOracle

QUICK = dict(seeds="0", budget=3000, split="500,300,500")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--model", default="fmnist-cnn")
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--exposures", default=",".join(DEFAULT_EXPOSURES))
    p.add_argument("--mappings", default="linear,blm")
    p.add_argument("--transform", default="lowdim")
    p.add_argument("--optimizer", default="zo-adam")
    p.add_argument("--budget", type=int, default=20000, help="train + validation queries per run")
    p.add_argument("--split", default="2000,500,1000")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--size", type=int, default=28, help="the model's input side (the canvas)")
    p.add_argument("--rows", type=Path, default=None, help="JSON-lines file of finished runs (resumable)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    print(f"# benchmarks/exposure.py {' '.join(argv if argv is not None else sys.argv[1:])}  "
          f"({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)")
    exposures = [parse_exposure(e).key() for e in _csv(args.exposures)]
    rows: list[dict] = read_rows(args.rows)
    data = load_target(args.data)
    sizes = tuple(int(v) for v in _csv(args.split))
    mappings = _csv(args.mappings)
    for seed in map(int, _csv(args.seeds)):
        todo = [(m, e) for m in mappings for e in exposures
                if not any(r["mapping"] == m and r["exposure"] == e and r["seed"] == seed and r["budget"] == args.budget
                           for r in rows)]
        if not todo:
            continue
        train, val, test = split_dataset(data, sizes, seed)
        for mapping, e in todo:
            study = ExposureStudy(exposures=(e,), transform=args.transform, mapping=mapping,
                                  optimizer=args.optimizer, budget=args.budget, seed=seed,
                                  out_size=args.size)
            oracle_of = lambda exposure, ledger: TorchOracle(args.model, exposure=exposure, ledger=ledger,  # noqa: E731
                                                             max_batch=1024)
            t0 = time.monotonic()
            row = run_exposure_study(oracle_of, train, val, test, study)[0]
            if row["status"] == "ok":
                zs = output_only(TorchOracle(args.model, exposure=e), mapping, train, test, out_size=args.size, seed=seed)
                row["zero_shot_accuracy"] = zs["accuracy"]
            row.update(budget=args.budget, seconds=time.monotonic() - t0)
            rows.append(row)
            print(f"  seed {seed} {mapping} {e}: {row.get('status')} test {100 * row.get('test_accuracy', float('nan')):.1f}% "
                  f"({row.get('queries')} queries, {row['seconds']:.0f} s)", file=sys.stderr, flush=True)
            append_row(args.rows, row)
    seeds = set(map(int, _csv(args.seeds)))
    rows = [r for r in rows if r["seed"] in seeds and r["budget"] == args.budget and r["exposure"] in exposures]
    print(f"\n{args.model} → {args.data}, transform {args.transform}, optimizer {args.optimizer}, "
          f"budget {args.budget} train+validation queries, split {args.split}\n")
    print("| mapping | exposure | seeds | test accuracy % | no prompt, same mapping % | queries spent "
          "| queries at selected point | calls |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    head: dict = {"budget": args.budget}
    for mapping, e in [(m, e) for m in mappings for e in exposures]:
        g = [r for r in rows if r["mapping"] == mapping and r["exposure"] == e and r.get("status") == "ok"]
        if not g:
            refused = [r for r in rows if r["mapping"] == mapping and r["exposure"] == e]
            if refused:
                print(f"| {mapping} | {e} | – | refused: {refused[0].get('reason', '')} | | | | |")
            continue
        a, s = mean_sd(100 * r["test_accuracy"] for r in g)
        z, zs = mean_sd(100 * r["zero_shot_accuracy"] for r in g)
        q = statistics.mean(r["queries"] for r in g)
        qb = statistics.mean(r.get("queries_at_best", r["queries"]) for r in g)
        c = statistics.mean(r["calls"] for r in g)
        print(f"| {mapping} | {e} | {len(g)} | {a:.1f} ± {s:.1f} | {z:.1f} ± {zs:.1f} | {q:.0f} | {qb:.0f} | {c:.0f} |")
        head[f"acc_{mapping}_{e}"] = a / 100
    print(json.dumps(head))
    return 0


if __name__ == "__main__":
    sys.exit(main())
