"""Run the product of a config's grid and seeds, each point in its own run directory; skip finished runs.

Runs go through a concurrent.futures executor: local processes by default (--workers),
or Dask's distributed scheduler (--executor dask://HOST:PORT; `pip install
'blackbox-rp[dask]'`, start `dask scheduler` and `dask worker` processes where the
runs should happen). Each run keeps its own journal, so workers never share a
SQLite file; a sweep run again (after an interruption) runs only what is missing.

example:
  blackbox-rp sweep examples/sweep_digits.toml --grid optimizer.name=spsa-gc,zo-adam \\
      --grid budget.queries=4000,8000 --seeds 3 --out runs/sweep
  blackbox-rp report runs/sweep
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run a grid x seeds of a config (local processes or a Dask cluster); finished runs are skipped"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="TOML config file (the base of every point)")
    p.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=V1,V2",
                   help="a key and its values (repeatable; the sweep is their product)")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per grid point (default 1)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a key of the base config")
    p.add_argument("--out", type=Path, default=None, help="sweep directory (default runs/sweep-<config name>)")
    p.add_argument("--executor", default="local",
                   help="local (processes, default) or dask://HOST:PORT (a Dask distributed scheduler)")
    p.add_argument("--workers", type=int, default=None, help="local processes (default: CPU count)")
    p.add_argument("--torch-threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import sys
    import time
    import tomllib

    from tqdm import tqdm

    from blackbox_rp.experiments.config import ConfigError, apply_overrides
    from blackbox_rp.experiments.sweep import expand, make_executor, parse_grid, sweep

    if args.seeds < 1:
        raise ConfigError(f"--seeds {args.seeds}: give at least 1")
    if not args.config.is_file():
        raise ConfigError(f"config file {args.config} does not exist")
    tree = apply_overrides(tomllib.loads(args.config.read_text(encoding="utf-8")), args.set)
    grid = parse_grid(args.grid)
    n = len(expand(tree, grid, args.seeds))  # every point checked before any query
    out = args.out or Path("runs") / f"sweep-{args.config.stem}"
    executor, close = (None, None) if args.executor == "local" else make_executor(args.executor, None)
    t0 = time.monotonic()
    counts = {"ran": 0, "skipped": 0}
    with tqdm(total=n, unit="run", desc="sweep", file=sys.stderr, disable=args.no_progress) as bar:
        def on_done(row: dict, skipped: bool) -> None:
            counts["skipped" if skipped else "ran"] += 1
            bar.update(1)
            bar.set_postfix(last=f"{row['run']}: {100 * row['test_accuracy']:.1f}%")

        try:
            rows = sweep(tree, out, grid, args.seeds, executor=executor, max_workers=args.workers,
                         torch_threads=args.torch_threads, on_done=on_done)
        finally:
            if close is not None:
                close()
    print(f"sweep {out}: {len(rows)} runs ({counts['ran']} run now, {counts['skipped']} already finished) in "
          f"{time.monotonic() - t0:.0f} s; `blackbox-rp report {out}` for the table")
    return 0
