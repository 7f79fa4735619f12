"""The demonstration: an ImageNet classifier reprogrammed black-box to read handwritten digits.

EfficientNet-Lite0 (real ImageNet-1k weights, treated as a query-only oracle)
is reprogrammed to MNIST-5k — the original adversarial-reprogramming
demonstration (Elsayed et al., ICLR 2019), here without gradients. It prints
the no-prompt zero-shot mapping accuracy, the output-only linear probe, the
reprogrammed accuracy, the linear probe on three views of each image (32, 48
and 64 px: the one input transformation measured to beat the probe, for
three queries per image) and the queries and calls spent, and writes a run
directory (results.json, learning_curve.png, the journal) into --out. About
100 s on 2 quiet CPU cores, 6.5 minutes measured on a busy 2-core machine
(load ~4); --quick is a seconds-long smoke run.

The defaults are the recipe benchmarks/visual.py measured best within this
budget (see DEMO below and the project's issue notes).
"""

from __future__ import annotations

import argparse

from . import _values as v
from ._reprogram_run import default_run_dir, run_and_print

HELP = "reprogram EfficientNet-Lite0 (ImageNet) to MNIST black-box (about 100 s on 2 quiet CPU cores)"

#: the demo's recipe as a config tree: what benchmarks/visual.py measured best within a 5-minute CPU budget
DEMO = {
    "task": {"data": "mnist5k", "split": [3000, 1000, 1000], "seed": 0},
    "oracle": {"model": "efficientnet-lite0", "exposure": "probs"},
    "transform": {"name": "lowdim", "size": 64, "image_size": 48},
    "mapping": {"name": "linear"},
    "optimizer": {"name": "zo-adam"},
    "budget": {"queries": 15000},
    "fit": {"batch_size": 64, "eval_every": 10},
    "baselines": {"no_prompt_mapping": "flm", "probe_views": [32, 48, 64]},
}
#: --quick: the same path on a few hundred images and a few hundred queries
QUICK = {"task": {"split": [200, 100, 100]}, "budget": {"queries": 1500}, "fit": {"eval_every": 2, "batch_size": 32},
         "transform": {"size": 48, "image_size": 32}, "baselines": {"probe_views": [32, 48]}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=v.out_dir, default=None,
                   help="run directory (default runs/demo-<hash of the config>; the same command resumes it)")
    p.add_argument("--quick", action="store_true", help="a tiny run (seconds) exercising the whole path")
    p.add_argument("--seed", type=v.seed, default=0, help="seed of the split, the optimizer and the minibatches")
    p.add_argument("--budget", type=v.positive_int, default=None,
                   help=f"train + validation queries (default {DEMO['budget']['queries']}, "
                        f"--quick {QUICK['budget']['queries']})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def demo_config(quick: bool, seed: int = 0, budget: int | None = None) -> "object":
    from blackbox_rp.experiments.config import from_dict

    tree = {section: dict(values) for section, values in DEMO.items()}
    for section, values in (QUICK if quick else {}).items():
        tree[section].update(values)
    tree["task"]["seed"] = seed
    if budget is not None:
        tree["budget"]["queries"] = budget
    return from_dict(tree)


def run(args: argparse.Namespace) -> int:
    cfg = demo_config(args.quick, args.seed, args.budget)
    run_and_print(cfg, args.out or default_run_dir("demo", cfg), progress=not args.no_progress)
    return 0
