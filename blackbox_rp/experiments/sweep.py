"""A sweep: the product of a config's grid and seeds, each point a run in its own directory.

Runs go through any :class:`concurrent.futures.Executor`: local processes by default, or Dask's
distributed scheduler (``distributed.Client(address).get_executor()``) for users who outgrow one
machine — no home-made scheduler. Each run owns its directory and its SQLite journal, so no two
workers ever write one file; a finished run (its ``results.json`` exists) is skipped, so an
interrupted sweep started again only runs what is missing.

Example::

    >>> from blackbox_rp.experiments.sweep import expand
    >>> [name for name, _ in expand({"task": {"data": "digits"}}, {"optimizer.name": ["spsa", "cma"]}, seeds=2)]
    ['optimizer.name=spsa,seed=0', 'optimizer.name=spsa,seed=1', 'optimizer.name=cma,seed=0', 'optimizer.name=cma,seed=1']
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .config import ConfigError, apply_overrides, from_dict

logger = logging.getLogger(__name__)

__all__ = ["expand", "parse_grid", "run_point", "sweep", "make_executor", "row_of"]


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["optimizer.name=spsa,cma", "budget.queries=4000,8000"]`` → ``{key: [values]}`` (JSON where it parses)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key or not raw:
            raise ConfigError(f"--grid takes SECTION.KEY=V1,V2,..., got {item!r}")
        if key in grid:
            raise ConfigError(f"--grid names {key} twice")
        values = []
        for v in raw.split(","):
            try:
                values.append(json.loads(v))
            except json.JSONDecodeError:
                values.append(v)
        grid[key] = values
    return grid


def _slug(v: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", str(v))


def expand(tree: Mapping[str, Any], grid: Mapping[str, Sequence[Any]], seeds: int | Sequence[int] = 1
           ) -> list[tuple[str, dict[str, Any]]]:
    """Every (run name, config tree) of the grid × seeds, each checked as a config (before any query)."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ConfigError("--seeds must be at least 1")
    keys = list(grid)
    out = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        for seed in seed_list:
            sets = dict(zip(keys, combo))
            sets["task.seed"] = seed
            name = ",".join(f"{k}={_slug(v)}" for k, v in sets.items() if k != "task.seed") + \
                (f",seed={seed}" if keys else f"seed={seed}")
            if any(name == n for n, _ in out):
                raise ConfigError(f"the grid names point {name} twice; give each value once (two runs of one "
                                  f"point would share a run directory and its journal)")
            t = apply_overrides(tree, sets)
            from_dict(t)  # a bad grid value is refused now, naming the key
            out.append((name, t))
    return out


def row_of(results: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The flat row a sweep returns for one run (what the report tabulates; no wall time)."""
    row = {"run": name, "seed": results["seed"], "test_accuracy": results["test_accuracy"],
           "val_accuracy": results["val_accuracy"], "kept_theta0": results["kept_theta0"],
           "steps": results["steps"], "queries": results["queries"], "calls": results["calls"]}
    for b in results["baselines"]:
        row[b["name"]] = b["accuracy"]
    return row


def run_point(tree: dict[str, Any], run_dir: str, name: str, torch_threads: int | None = 1) -> dict[str, Any]:
    """One sweep point in a worker process (module-level so executors can pickle it)."""
    from .run import run

    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    results = run(from_dict(tree), Path(run_dir), progress=False, echo=lambda s: logger.info("%s: %s", name, s))
    return row_of(results, name)


def check_points(points: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Build every point's run without a query (oracle, data, components, budget plan), once per config
    up to the seed: a point that cannot run is refused, naming it, before any run starts."""
    from .run import prepare

    seen = set()
    for name, t in points:
        key = json.dumps({k: v for k, v in t.items() if k != "task"} | {"task": {**t.get("task", {}), "seed": 0}},
                         sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        try:
            prepare(from_dict(t), None)
        except (ValueError, TypeError, RuntimeError) as e:
            raise ConfigError(f"sweep point {name} cannot run: {e}") from None


def _check_same_config(run_dir: Path, tree: Mapping[str, Any]) -> None:
    """A finished run is reused only if it ran this point's config: a sweep directory started again with
    another base (another split, canvas, model) must not mix the old results into the new table."""
    from .config import load

    if load(run_dir / "config.toml") != from_dict(tree):
        raise ConfigError(f"{run_dir} holds a finished run of another config than this sweep's point of the same "
                          f"name (compare {run_dir / 'config.toml'}); give another --out, or remove that run")


def make_executor(spec: str | None, max_workers: int | None) -> tuple[Executor, Callable[[], None]]:
    """``None``/``local`` → processes; ``dask://HOST:PORT`` → a Dask distributed client's executor."""
    if spec in (None, "local"):
        import multiprocessing

        ex = ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"))
        return ex, lambda: ex.shutdown(wait=True, cancel_futures=True)
    if spec.startswith("dask://") or spec.startswith("tcp://"):
        try:
            from distributed import Client
        except ImportError:
            raise ImportError("--executor dask://... needs Dask's distributed: pip install 'blackbox-rp[dask]'") from None
        addr = "tcp://" + spec.split("://", 1)[1]
        client = Client(addr, timeout=10)

        def close() -> None:
            client.close()

        return client.get_executor(), close
    raise ConfigError(f"--executor {spec!r} is not accepted; expected local or dask://HOST:PORT")


def sweep(tree: Mapping[str, Any], out: str | Path, grid: Mapping[str, Sequence[Any]], seeds: int | Sequence[int] = 1,
          *, executor: Executor | None = None, max_workers: int | None = None, torch_threads: int | None = 1,
          on_done: Callable[[dict[str, Any], bool], None] | None = None) -> list[dict[str, Any]]:
    """Run every point not finished yet; returns one row per point (skipped ones read from their results).

    ``executor`` None: a local process pool of ``max_workers``. ``on_done(row, skipped)`` is called as
    points finish (the CLI's progress bar).
    """
    from .run import is_finished, read_results

    out = Path(out)
    points = expand(tree, grid, seeds)
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for name, t in points:
        d = out / name
        if is_finished(d):
            _check_same_config(d, t)
            rows[name] = row_of(read_results(d), name)
            if on_done:
                on_done(rows[name], True)
        else:
            todo.append((name, t))
    check_points(todo)
    out.mkdir(parents=True, exist_ok=True)
    close = None
    if todo:
        if executor is None:
            executor, close = make_executor(None, max_workers)
        try:
            futures = {executor.submit(run_point, t, str(out / name), name, torch_threads): name for name, t in todo}
            for fut in as_completed(futures):
                rows[futures[fut]] = fut.result()
                if on_done:
                    on_done(rows[futures[fut]], False)
        finally:
            if close is not None:
                close()
    return [rows[name] for name, _ in points]
