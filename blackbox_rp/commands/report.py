"""Tabulate finished runs under a directory: mean ± sd over seeds, paired gains, queries to a target; CSV + PNG.

Writes DIR/report.md (the table printed here), DIR/runs.csv (one row per run),
DIR/summary.csv (one row per group and baseline) and DIR/report.png (validation
curves with seed bands; test accuracy beside the baselines).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "report on the runs under a directory (table, CSV, PNG)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=Path, help="a sweep directory (or any directory holding run directories)")
    p.add_argument("--target", type=float, default=None,
                   help="validation accuracy (0-1) whose first crossing is reported in queries, e.g. 0.5")
    p.add_argument("--out", type=Path, default=None, help="where to write the files (default DIR)")


def run(args: argparse.Namespace) -> int:
    from blackbox_rp.experiments.report import write_report

    if args.target is not None and not 0 < args.target <= 1:
        raise ValueError(f"--target {args.target}: give an accuracy between 0 and 1 (0.5 for 50%)")
    rep = write_report(args.dir, args.out, args.target)
    print(rep["table"])
    print(f"{rep['runs']} runs in {len(rep['rows'])} groups; files: {rep['out']}/report.md, runs.csv, summary.csv, "
          f"report.png")
    return 0
