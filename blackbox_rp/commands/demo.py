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

--text is the language-model demonstration: Gemma-3 270M (llama.cpp, in process)
learns the 3 words that end a discrete prompt for movie-review sentiment (MR;
the chatterbot topics when MR's archive is absent, and it says so) with greedy
edits and the token-linear readout fitted to each candidate, and prints the
three readings it must be judged against —
the hand-written prompt read zero-shot by a verbalizer, the text probe (the same
readout on the hand-written prompt, no search) and the learned prompt with its
readout — their paired gains, whether the search beat the probe or kept θ₀, and
the queries and calls spent. 398 s measured on a busy 2-core machine (load 2–3.5).
"""

from __future__ import annotations

import argparse
import sys

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


#: --text: the language-model recipe, benchmarks/text.py's best measured cell, one seed: three word slots that
#: end the prompt where the model answers (θ₀: the hand-written cue "Sentiment:"), words ranked by frequency
#: in the training reviews, greedy edits that try every word of a slot, and the token-linear readout fitted to
#: each candidate's own answers (refit "candidate": a new last word changes which tokens the model answers).
#: The run also shows the zero-shot verbalizer (class names as label words) and the text probe (the same
#: readout on the hand-written prompt, no search): the bar the learned prompt must clear.
TEXT_DEMO = {
    "task": {"data": "mr", "split": [100, 100, 200], "seed": 0},
    "oracle": {"model": "gemma3-270m", "exposure": "top20"},
    "transform": {"name": "discrete", "template": "Review: {x}\n{p0} {p1} {p2}", "init": ["", "", "Sentiment:"],
                  "candidates": "freq", "num_candidates": 40},
    "mapping": {"name": "token-linear"},
    "optimizer": {"name": "greedy", "popsize": 40},
    "budget": {"queries": 4000},
    "fit": {"batch_size": 32, "eval_every": 1, "refit": "candidate"},
    "baselines": {"linear_probe": False},  # image-only: a text model has no prompt-free input
}
TEXT_QUICK = {"task": {"split": [16, 16, 32]}, "budget": {"queries": 200}, "optimizer": {"popsize": 3},
              "fit": {"batch_size": 8}}
#: the task when MR's archive is absent: the bundled chatterbot topics, read by their names
TEXT_FALLBACK = {"task": {"data": "chatterbot-topics:coding,emotion"},
                 "transform": {"template": "Text: {x}\n{p0} {p1} {p2}", "init": ["", "", "Topic:"]}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=v.out_dir, default=None,
                   help="run directory (default runs/demo-<hash of the config>; the same command resumes it)")
    p.add_argument("--quick", action="store_true", help="a tiny run (seconds) exercising the whole path")
    p.add_argument("--seed", type=v.seed, default=0, help="seed of the split, the optimizer and the minibatches")
    p.add_argument("--budget", type=v.positive_int, default=None,
                   help=f"train + validation queries (default {DEMO['budget']['queries']}, "
                        f"--quick {QUICK['budget']['queries']})")
    p.add_argument("--text", action="store_true",
                   help="the language-model demo: Gemma-3 270M learns the words that end a prompt for MR "
                        "sentiment (greedy edits, token-linear fitted per candidate), beside zero-shot and the "
                        "text probe (about 7 minutes on 2 busy CPU cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def mr_available() -> bool:
    """Whether MR's archive is on this machine (the text demo falls back to the chatterbot topics)."""
    from blackbox_rp.data import DatasetUnavailable
    from blackbox_rp.textdata import load_text_target

    try:
        load_text_target("mr")
    except DatasetUnavailable:
        return False
    return True


def demo_config(quick: bool, seed: int = 0, budget: int | None = None, text: bool = False,
                mr: bool = True) -> "object":
    from blackbox_rp.experiments.config import from_dict

    base, small = (TEXT_DEMO, TEXT_QUICK) if text else (DEMO, QUICK)
    tree = {section: dict(values) for section, values in base.items()}
    for section, values in [*((small if quick else {}).items()), *((TEXT_FALLBACK if text and not mr else {}).items())]:
        tree[section].update(values)
    tree["task"]["seed"] = seed
    if budget is not None:
        tree["budget"]["queries"] = budget
    return from_dict(tree)


def run(args: argparse.Namespace) -> int:
    mr = True
    if args.text:
        mr = mr_available()
        if not mr:
            print("MR's archive is absent (bash scripts/setup.sh fetches it): the text demo runs on the "
                  "chatterbot topics (coding vs emotion) instead", file=sys.stderr)
    cfg = demo_config(args.quick, args.seed, args.budget, text=args.text, mr=mr)
    run_and_print(cfg, args.out or default_run_dir("demo", cfg), progress=not args.no_progress)
    return 0
