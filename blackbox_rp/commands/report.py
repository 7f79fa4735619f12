"""Tabulate finished runs under a directory: mean ± sd over seeds, paired gains, queries to a target; CSV + PNG.

Writes DIR/report.md (the table printed here), DIR/runs.csv (one row per run),
DIR/summary.csv (one row per group and baseline) and DIR/report.png (validation
curves with seed bands; test accuracy beside the baselines). --mlflow URI also
logs every run to MLflow (config as parameters, figures and the validation
curve as metrics, the run's files as artifacts).
"""

from __future__ import annotations

import argparse

from . import _values as v
HELP = "report on the runs under a directory (table, CSV, PNG)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=v.existing_dir, help="a sweep directory (or any directory holding run directories)")
    p.add_argument("--target", type=v.number(0.0, 1.0, what="an accuracy (a fraction)"), default=None,
                   help="validation accuracy (0-1) whose first crossing is reported in queries, e.g. 0.5")
    p.add_argument("--out", type=v.out_dir, default=None, help="where to write the files (default DIR)")
    p.add_argument("--mlflow", default=None, metavar="URI",
                   help="also log every run to this MLflow tracking URI (http://..., sqlite:///..., file:///...; "
                        "pip install 'blackbox-rp[mlflow]'); a run logged already is skipped")
    p.add_argument("--mlflow-experiment", default="blackbox-rp", help="MLflow experiment name (default blackbox-rp)")


def run(args: argparse.Namespace) -> int:
    from blackbox_rp.experiments.report import write_report

    if args.target is not None and not 0 < args.target <= 1:
        raise ValueError(f"--target {args.target}: give an accuracy between 0 and 1 (0.5 for 50%)")
    rep = write_report(args.dir, args.out, args.target)
    print(rep["table"])
    print(f"{rep['runs']} runs in {len(rep['rows'])} groups; files: {rep['out']}/report.md, runs.csv, summary.csv, "
          f"report.png")
    if args.mlflow is not None:
        from blackbox_rp.experiments.mlflow_log import log_runs

        n = log_runs(rep["results"], args.dir, args.mlflow, args.mlflow_experiment)
        print(f"MLflow {args.mlflow}, experiment {args.mlflow_experiment}: {n['logged']} runs logged, "
              f"{n['skipped']} logged before")
    return 0
