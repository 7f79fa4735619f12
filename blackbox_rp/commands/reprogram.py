"""Reprogram a query-only model to a target task: learn a prompt θ and a label mapping ω black-box.

The flags build the same config a TOML file gives `blackbox-rp run` (one code
path). The run directory (--out) holds the resolved config.toml, the journal,
results.json (schema in the README), theta.npy, mapping.npz and
learning_curve.png; the same command again resumes an unfinished run from its
journal without paying again. --budget bounds train + validation queries
together and is planned before the first query (a budget that cannot pay for a
validated step is refused); test queries are charged to the test phase and the
baselines' to the baseline phase, reported apart. Baselines the exposure cannot
support are skipped and said so.

Example:
  blackbox-rp reprogram --model efficientnet-lite0 --data mnist5k --transform lowdim \\
      --mapping linear --optimizer zo-adam --budget 20000 --seed 0 --out runs/rp
"""

from __future__ import annotations

import argparse

from . import _values as v
from ._params import parse_params
from ._reprogram_run import (LOSS_CHOICES, MAPPING_CHOICES, OPTIMIZER_CHOICES, REFIT_CHOICES, TRANSFORM_CHOICES,
                             default_run_dir, run_and_print)

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
                   help="bundled model (see `blackbox-rp models`), TorchScript file, module:factory, or the URL "
                        "of a `blackbox-rp serve` server (default efficientnet-lite0)")
    p.add_argument("--api-key-env", default=None,
                   help="NAME of the environment variable holding the API key of a remote --model")
    p.add_argument("--data", default="mnist5k",
                   help="bundled dataset (mnist5k, fashion-mnist, digits) or a path: .npz (x, y), CSV, image folder "
                        "(default mnist5k)")
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
    p.add_argument("--out", type=v.out_dir, default=None,
                   help="run directory (default runs/reprogram-<hash of the config>); the same command again "
                        "resumes it")
    p.add_argument("--exposure", default="probs", type=v.exposure,
                   help="what the oracle shows: probs, logits, label, top<k> (top5), rounded<n> (default probs)")
    p.add_argument("--size", type=v.positive_int, default=None,
                   help="canvas side S in pixels (default: the model's input size if fixed, else 64)")
    p.add_argument("--image-size", type=v.positive_int, default=None,
                   help="side of the target image in the canvas centre (default: 3/4 of the canvas)")
    p.add_argument("--split", type=v.split, default=(0.6, 0.2, 0.2),
                   help="TRAIN,VAL,TEST fractions or counts (default 0.6,0.2,0.2)")
    p.add_argument("--batch-size", type=v.positive_int, default=64, help="images per step (default 64)")
    p.add_argument("--eval-every", type=v.positive_int, default=25, help="steps between validation points")
    p.add_argument("--val-size", type=v.positive_int, default=None, help="validation rows used for selection")
    p.add_argument("--refit", default="auto", choices=REFIT_CHOICES, metavar="R",
                   help="how the mapping follows the prompt: auto (default; epoch for linear/ILM, window for "
                        "FLM/BLM/BLM+), window, epoch, joint (linear readout trained with the prompt, no extra "
                        "queries), candidate (the mapping fitted to each candidate's own answers, cross-fitted on "
                        "the minibatch, and refitted on the training split at each validated θ: for discrete "
                        "prompts, whose candidates change which tokens the model answers) or none")
    p.add_argument("--candidate-folds", type=v.positive_int, default=4,
                   help="folds of each candidate's minibatch with --refit candidate (default 4)")
    p.add_argument("--probe-views", type=v.sizes, default=(),
                   help="also a linear probe on several views of each image, e.g. 48,64 (image sizes on the "
                        "canvas; one query per view and image)")
    p.add_argument("--readout-lr", type=v.positive_float, default=1e-3,
                   help="Adam step size of the joint readout (--refit joint; default 0.001)")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE",
                   help="optimizer parameter (repeatable), laid over the measured settings for the optimizer and "
                        "mapping (blackbox_rp.reprogram.RECOMMENDED_OPTIMIZER_PARAMS)")
    p.add_argument("--transform-param", action="append", metavar="KEY=VALUE", help="transform parameter")
    p.add_argument("--mapping-param", action="append", metavar="KEY=VALUE", help="mapping parameter")
    p.add_argument("--whitebox-steps", type=v.non_negative_int, default=0,
                   help="also train the white-box ceiling (same transform + mapping, backprop) for N steps "
                        "(default 0: not trained)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> "object":
    """The :class:`~blackbox_rp.experiments.config.RunConfig` the flags describe (checked like a file's)."""
    from blackbox_rp.experiments.config import from_dict

    if args.budget is None and args.steps is None:
        raise ValueError("give --budget N (train + validation queries) or --steps N, or both")
    tree = {
        "task": {"data": args.data, "split": list(args.split), "seed": args.seed},
        "oracle": {"model": args.model, "exposure": args.exposure,
                   **({"api_key_env": args.api_key_env} if args.api_key_env else {})},
        "transform": {"name": args.transform, **({"size": args.size} if args.size else {}),
                      **({"image_size": args.image_size} if args.image_size else {}),
                      **parse_params(args.transform_param, "transform")},
        "mapping": {"name": args.mapping, **parse_params(args.mapping_param, "mapping")},
        "optimizer": {"name": args.optimizer, **parse_params(args.opt, "optimizer")},
        "loss": {"name": args.loss},
        "budget": {k: v for k, v in (("queries", args.budget), ("max_steps", args.steps)) if v is not None},
        "fit": {"batch_size": args.batch_size, "eval_every": args.eval_every, "refit": args.refit,
                "readout_lr": args.readout_lr, "candidate_folds": args.candidate_folds,
                **({"val_size": args.val_size} if args.val_size else {})},
        "baselines": {"probe_views": list(args.probe_views), "whitebox_steps": args.whitebox_steps},
    }
    return from_dict(tree)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    run_and_print(cfg, args.out or default_run_dir("reprogram", cfg), progress=not args.no_progress)
    return 0
