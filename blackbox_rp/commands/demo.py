"""The demonstration: an ImageNet classifier reprogrammed black-box to read handwritten digits.

EfficientNet-Lite0 (real ImageNet-1k weights, treated as a query-only oracle)
is reprogrammed to MNIST-5k — the original adversarial-reprogramming
demonstration (Elsayed et al., ICLR 2019), here without gradients. It prints
the no-prompt zero-shot mapping accuracy, the output-only linear probe, the
reprogrammed accuracy, the linear probe on three views of each image (32, 48
and 64 px: the one input transformation measured to beat the probe, for
three queries per image) and the queries and calls spent, and writes
results.json and learning_curve.png into --out. About 100 s on 2 quiet CPU
cores (the budget keeps it well inside five minutes on a busy machine);
--quick is a seconds-long smoke run.

The defaults are the recipe benchmarks/visual.py measured best within this
budget (see DEMO below and the project's issue notes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import _values as v
from ._reprogram_run import TaskSpec, print_summary, run_task

HELP = "reprogram EfficientNet-Lite0 (ImageNet) to MNIST black-box, under two minutes on 2 CPU cores"

#: the demo's recipe: what benchmarks/visual.py measured best within a 5-minute CPU budget
DEMO = dict(model="efficientnet-lite0", data="mnist5k", transform="lowdim", mapping="linear", optimizer="zo-adam",
            zero_shot_mapping="flm", size=64, image_size=48, splits=(3000, 1000, 1000), batch_size=64,
            budget=15000, eval_every=10, probe_views=(32, 48, 64))
#: --quick: the same path on a few hundred images and a few hundred queries
QUICK = dict(splits=(200, 100, 100), budget=1500, eval_every=2, batch_size=32, size=48, image_size=32,
             probe_views=(32, 48))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=v.out_dir, default=Path("runs/demo"), help="output directory (default runs/demo)")
    p.add_argument("--quick", action="store_true", help="a tiny run (seconds) exercising the whole path")
    p.add_argument("--seed", type=v.seed, default=0, help="seed of the split, the optimizer and the minibatches")
    p.add_argument("--budget", type=v.positive_int, default=None,
                   help=f"train + validation queries (default {DEMO['budget']}, --quick {QUICK['budget']})")
    p.add_argument("--journal", type=v.journal_path, default=None,
                   help="SQLite journal (default OUT/journal.sqlite): run again to resume a killed demo for free")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    recipe = {**DEMO, **(QUICK if args.quick else {})}
    if args.budget is not None:
        if args.budget < 1:
            raise ValueError(f"--budget must be a positive number of queries, got {args.budget}")
        recipe["budget"] = args.budget
    args.out.mkdir(parents=True, exist_ok=True)
    journal = args.journal or args.out / "journal.sqlite"
    spec = TaskSpec(seed=args.seed, out=args.out, journal=journal, progress=not args.no_progress,
                    title="blackbox-rp demo (black-box)", **recipe)
    results = run_task(spec)
    print_summary(results, args.out)
    return 0
