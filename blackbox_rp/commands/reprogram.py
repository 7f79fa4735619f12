"""Reprogram a query-only model to a target task: learn a prompt θ and a label mapping ω black-box.

Writes DIR/results.json (test accuracy, the no-prompt baselines — zero-shot
mapping and output-only linear probe —, the learning curve, the config, the
seed, the split sizes and the ledger per phase) and DIR/learning_curve.png.
--budget bounds train + validation queries together; test queries are charged
to the test phase and the baselines' to the baseline phase, reported apart.

Example:
  blackbox-rp reprogram --model efficientnet-lite0 --data mnist5k --transform lowdim \\
      --mapping linear --optimizer zo-adam --budget 20000 --seed 0 --out runs/rp
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import _values as v
from ._params import parse_params
from ._reprogram_run import (LOSS_CHOICES, MAPPING_CHOICES, OPTIMIZER_CHOICES, REFIT_CHOICES, TRANSFORM_CHOICES,
                             TaskSpec, print_summary, run_task)

HELP = "reprogram a model black-box to a target task (prompt + label mapping + optimizer)"


def _transform(text: str) -> str:
    """A transform name; ``none`` (registered in the library) is refused with the reason."""
    if text == "none":
        raise argparse.ArgumentTypeError(
            "invalid choice: 'none' (no prompt) has nothing to train, so it is not offered here: the no-prompt model is what "
            "the zero-shot and linear-probe baselines of every run measure; pick pad, full, lowdim or coordinator")
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="efficientnet-lite0",
                   help="bundled model (see `blackbox-rp models`), TorchScript file, or module:factory")
    p.add_argument("--data", default="mnist5k",
                   help="bundled dataset (mnist5k, fashion-mnist, digits) or a path: .npz (x, y), CSV, image folder")
    p.add_argument("--transform", default="lowdim", choices=TRANSFORM_CHOICES, metavar="T", type=_transform,
                   help="input transformation: pad, full, lowdim, coordinator (default lowdim); the library's "
                        "'none' is not offered: the no-prompt model is what the baselines measure")
    p.add_argument("--mapping", default="linear", choices=MAPPING_CHOICES, metavar="M",
                   help="label mapping: identity, rlm, flm, ilm, blm, blm+, linear (default linear)")
    p.add_argument("--optimizer", default="zo-adam", choices=OPTIMIZER_CHOICES, metavar="O",
                   help="spsa, spsa-gc, zo-sgd, zo-adam, cma, cma-subspace, random, ng:<nevergrad name> "
                        "(default zo-adam)")
    p.add_argument("--loss", default="ce", choices=LOSS_CHOICES, metavar="L",
                   help="ce, focal, hinge, neg-acc (default ce)")
    p.add_argument("--budget", type=v.positive_int, default=None,
                   help="max train + validation queries (default: unbounded; then give --steps)")
    p.add_argument("--steps", type=v.positive_int, default=None, help="max optimizer steps")
    p.add_argument("--seed", type=v.seed, default=0,
                   help="seed of the split, the optimizer and the minibatches (default 0)")
    p.add_argument("--out", type=v.out_dir, default=Path("runs/reprogram"), help="output directory")
    p.add_argument("--exposure", default="probs", type=v.exposure,
                   help="what the oracle shows: probs, logits, label, top<k> (top5), rounded<n> (default probs)")
    p.add_argument("--journal", type=v.journal_path, default=None,
                   help="SQLite journal: answered queries are kept; a killed run resumes without paying again")
    p.add_argument("--size", type=v.positive_int, default=64, help="canvas side S in pixels (default 64)")
    p.add_argument("--image-size", type=v.positive_int, default=48,
                   help="side of the target image in the canvas centre (default 48)")
    p.add_argument("--split", type=v.split, default=(0.6, 0.2, 0.2),
                   help="TRAIN,VAL,TEST fractions or counts (default 0.6,0.2,0.2)")
    p.add_argument("--batch-size", type=v.positive_int, default=64, help="images per step (default 64)")
    p.add_argument("--eval-every", type=v.positive_int, default=25, help="steps between validation points")
    p.add_argument("--val-size", type=v.positive_int, default=None, help="validation rows used for selection")
    p.add_argument("--refit", default="auto", choices=REFIT_CHOICES, metavar="R",
                   help="how the mapping follows the prompt: auto (default; epoch for linear/ILM, window for "
                        "FLM/BLM/BLM+), window, epoch, joint (linear readout trained with the prompt, no extra "
                        "queries) or none")
    p.add_argument("--probe-views", type=v.sizes, default=(),
                   help="also a linear probe on several views of each image, e.g. 48,64 (image sizes on the "
                        "canvas; one query per view and image)")
    p.add_argument("--readout-lr", type=v.positive_float, default=1e-3,
                   help="Adam step size of the joint readout (--refit joint; default 0.001)")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE",
                   help="optimizer parameter (repeatable); without any, the measured settings for the "
                        "optimizer and mapping (blackbox_rp.reprogram.RECOMMENDED_OPTIMIZER_PARAMS)")
    p.add_argument("--transform-param", action="append", metavar="KEY=VALUE", help="transform parameter")
    p.add_argument("--mapping-param", action="append", metavar="KEY=VALUE", help="mapping parameter")
    p.add_argument("--whitebox-steps", type=v.non_negative_int, default=0,
                   help="also train the white-box ceiling (same transform + mapping, backprop) for N steps "
                        "(default 0: not trained)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.budget is None and args.steps is None:
        raise ValueError("give --budget N (train + validation queries) or --steps N, or both")
    spec = TaskSpec(model=args.model, data=args.data, transform=args.transform, mapping=args.mapping,
                    optimizer=args.optimizer, budget=args.budget, seed=args.seed, out=args.out,
                    exposure=args.exposure, journal=args.journal, loss=args.loss, size=args.size,
                    image_size=args.image_size, splits=args.split, max_steps=args.steps,
                    batch_size=args.batch_size, eval_every=args.eval_every, val_size=args.val_size, refit=args.refit,
                    readout_lr=args.readout_lr, probe_views=args.probe_views,
                    transform_params=parse_params(args.transform_param, "transform"),
                    mapping_params=parse_params(args.mapping_param, "mapping"),
                    optimizer_params=parse_params(args.opt, "optimizer") if args.opt else None,
                    whitebox_steps=args.whitebox_steps, progress=not args.no_progress)
    results = run_task(spec)
    print_summary(results, args.out)
    return 0
