"""Run one experiment from a TOML config in its own run directory.

The config names the task, the oracle (any model spec: bundled, TorchScript,
module:factory, a `blackbox-rp serve` URL, an OpenAI-compatible endpoint), the
transform, mapping, optimizer, loss, budget and baselines; see the README's
"Experiments" section and examples/. Every key and value is checked before any
query; --set overrides a key (values read as JSON where they parse).

example:
  blackbox-rp run examples/sweep_digits.toml --set optimizer.lr=0.01 --set task.seed=1 --out runs/one
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._reprogram_run import default_run_dir, run_and_print

HELP = "run one experiment from a TOML config (--set SECTION.KEY=VALUE overrides)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="TOML config file")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config key, e.g. optimizer.lr=0.01 (repeatable)")
    p.add_argument("--out", type=Path, default=None,
                   help="run directory (default runs/<config name>-<hash of the config>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from blackbox_rp.experiments.config import load

    cfg = load(args.config, args.set)
    run_and_print(cfg, args.out or default_run_dir(args.config.stem, cfg), progress=not args.no_progress)
    return 0
