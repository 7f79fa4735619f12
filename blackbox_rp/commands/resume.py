"""Finish a run killed at any point: replay its config from its journal (answered queries cost no call).

The run directory's config.toml is run again; every query the killed run had answered is
answered by the journal, so the run ends with exactly the result of an uninterrupted run.
A finished run is only read back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "resume a killed run from its run directory (its journal answers what was paid for)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="the run directory (holds config.toml and journal.sqlite)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from blackbox_rp.experiments.config import load
    from blackbox_rp.experiments.run import RunDirError

    from ._reprogram_run import run_and_print

    if not (args.run_dir / "config.toml").is_file():
        raise RunDirError(f"{args.run_dir} is not a run directory (no config.toml)")
    run_and_print(load(args.run_dir / "config.toml"), args.run_dir, progress=not args.no_progress)
    return 0
