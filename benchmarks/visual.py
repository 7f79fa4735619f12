"""Visual reprogramming on the bundled ImageNet model: prompts × label mappings × optimizers, beside the
no-prompt baselines and the white-box ceiling of the same transform and mapping — a sweep of the
experiments package (``blackbox-rp sweep`` + ``blackbox-rp report``), so the same grid runs on a user's task.

The script writes one base config and a grid (datasets × transforms × mappings × optimizers × budgets,
and directions / refits when asked) and runs it with :func:`blackbox_rp.experiments.sweep.sweep`, one
run directory per point and seed under ``--out``. Every run measures, on its own seed's split, the
zero-shot FLM mapping (no prompt), the output-only linear probe (no prompt, logistic regression on the
returned probabilities), the same mapping without a prompt, the multi-view probe (``--probe-views``)
and the white-box ceiling (backprop, NOT black-box) of its transform × mapping. The table is
:func:`blackbox_rp.experiments.report.write_report`'s: test accuracy mean ± sd over seeds, how many runs
kept θ₀ (selection found no prompt better than none), each baseline and the gain over it paired by
seed. The last line is one JSON object of headline figures.

The full grid (3 transforms × 5 mappings × 3 optimizers × 3 budgets × 3 seeds × 2 datasets) is days of
CPU; pass the subset you can afford:

    python benchmarks/visual.py --quick                       # < 2 minutes
    python benchmarks/visual.py --datasets mnist5k --transforms lowdim \\
        --mappings blm+,linear --optimizers zo-adam --budgets 20000 --seeds 0 --whitebox-steps 300

**Resumable**: a run finished under ``--out`` is read back, not run again; started again after a kill,
the cut-off run replays its journal (no model call for an answered query) and reaches the same numbers.
A grid run in pieces (other seeds, budgets, optimizers) into one ``--out`` is reported as one.
``--executor dask://HOST:PORT`` sends the runs to a Dask cluster. ``--write-config FILE`` writes the base
config and prints the equivalent ``blackbox-rp sweep`` / ``report`` commands instead of running.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from _common import csv_list
from blackbox_rp.commands._params import parse_params
from blackbox_rp.experiments.config import ConfigError, dumps_toml, from_dict
from blackbox_rp.experiments.report import write_report
from blackbox_rp.experiments.stats import mean_sd
from blackbox_rp.experiments.sweep import make_executor, sweep

QUICK = dict(datasets="mnist5k", transforms="lowdim", mappings="blm+,linear", optimizers="zo-adam", budgets="2000",
             seeds="0", whitebox_steps=10, split="200,100,100", size=48, image_size=32, eval_every=3,
             probe_views="24,32", out=Path("runs/visual-quick"))

#: the baselines every run measures, by the names the experiments layer gives them
ZERO_SHOT, PROBE, MULTIVIEW = "no prompt + flm mapping", "no prompt + linear probe", "no prompt + linear probe on "


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small grid in under two minutes (into runs/visual-quick)")
    p.add_argument("--model", default="efficientnet-lite0")
    p.add_argument("--datasets", default="mnist5k,fashion-mnist")
    p.add_argument("--transforms", default="pad,lowdim,coordinator")
    p.add_argument("--mappings", default="flm,ilm,blm,blm+,linear")
    p.add_argument("--optimizers", default="spsa-gc,zo-adam,cma")
    p.add_argument("--budgets", default="10000,50000,200000", help="train + validation queries per run")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--whitebox-steps", type=int, default=300, help="0 skips the white-box ceiling")
    p.add_argument("--probe-views", default="",
                   help="also a multi-view linear probe: image sizes on the canvas, e.g. 48,64 (K queries/image)")
    p.add_argument("--whitebox-readout", default="refit", choices=("refit", "joint"),
                   help="white-box linear readout: refitted as the prompt moves, or trained with it by Adam")
    p.add_argument("--whitebox-lr", type=float, default=None,
                   help="white-box prompt learning rate (default 0.001 with the linear readout, 0.05 otherwise)")
    p.add_argument("--split", default="3000,1000,1000", help="train,validation,test sizes")
    p.add_argument("--size", type=int, default=64, help="canvas side")
    p.add_argument("--image-size", type=int, default=48, help="target image side inside the canvas")
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--transform-param", action="append", metavar="KEY=VALUE",
                   help="transform option for every run and the white-box ceiling, e.g. background=0.5 (repeatable)")
    p.add_argument("--directions", default="default",
                   help="directions per step to compare, e.g. default,2,8 (optimizer.directions_per_step: q of "
                        "SPSA-GC/ZO-Adam, popsize of CMA-ES)")
    p.add_argument("--optimizer-param", action="append", metavar="KEY=VALUE",
                   help="optimizer option over the recommended ones, for every run, e.g. lr=0.003 (repeatable)")
    p.add_argument("--refits", default="auto",
                   help="how the mapping follows the prompt, compared: e.g. auto,joint (fit.refit)")
    p.add_argument("--out", type=Path, default=None,
                   help="sweep directory, one run directory per point and seed (default runs/visual; "
                        "runs/visual-quick with --quick); finished runs in it are not run again")
    p.add_argument("--executor", default="local", help="local (processes) or dask://HOST:PORT")
    p.add_argument("--workers", type=int, default=None, help="local processes (default: CPU count)")
    p.add_argument("--torch-threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--plot", type=Path, default=None, help="also copy the report's PNG here (it is always written "
                   "to OUT/report.png)")
    p.add_argument("--write-config", type=Path, default=None, metavar="FILE",
                   help="write the base config to FILE, print the blackbox-rp sweep/report commands, run nothing")
    args = p.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            if k != "out" or args.out is None:
                setattr(args, k, v)
    args.out = args.out or Path("runs/visual")
    return args


def base_and_grid(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, list[Any]], list[int]]:
    """The base config tree, the grid (key → values) and the seeds the arguments ask for.

    The five axes of the benchmark are always grid keys (so a run's directory name says its cell and a
    grid extended later reuses the runs it has); directions and refits become keys only when compared."""
    if not csv_list(args.optimizers):
        raise ConfigError("--optimizers is empty: every run of the sweep fits a prompt (the baselines and the "
                          "white-box ceiling come with each run); give one optimizer, e.g. --optimizers zo-adam")
    split = [int(s) for s in csv_list(args.split)]
    transform = {"name": csv_list(args.transforms)[0], "size": args.size, "image_size": args.image_size,
                 **parse_params(args.transform_param, "--transform-param")}
    extra = parse_params(args.optimizer_param, "--optimizer-param")
    base: dict[str, Any] = {
        "task": {"data": csv_list(args.datasets)[0], "split": split, "seed": 0},
        "oracle": {"model": args.model, "max_batch": 256},
        "transform": transform,
        "mapping": {"name": csv_list(args.mappings)[0]},
        "optimizer": {"name": csv_list(args.optimizers)[0], **extra},
        "budget": {"queries": int(csv_list(args.budgets)[0])},
        "fit": {"eval_every": args.eval_every},
        "baselines": {"no_prompt_mapping": "flm", "linear_probe": True,
                      "probe_views": [int(v) for v in csv_list(args.probe_views)],
                      "whitebox_steps": args.whitebox_steps, "whitebox_readout": args.whitebox_readout},
    }
    if args.whitebox_lr is not None:
        base["baselines"]["whitebox_lr"] = args.whitebox_lr
    grid: dict[str, list[Any]] = {
        "task.data": csv_list(args.datasets), "transform.name": csv_list(args.transforms),
        "mapping.name": csv_list(args.mappings), "optimizer.name": csv_list(args.optimizers),
        "budget.queries": [int(b) for b in csv_list(args.budgets)],
    }
    directions = [None if d == "default" else int(d) for d in csv_list(args.directions)]
    if directions != [None]:
        grid["optimizer.directions_per_step"] = directions
    refits = csv_list(args.refits)
    if refits != ["auto"]:
        grid["fit.refit"] = refits
    return base, grid, [int(s) for s in csv_list(args.seeds)]


def commands(config: Path, grid: dict[str, list[Any]], seeds: list[int], out: Path) -> list[str]:
    """The ``blackbox-rp sweep`` and ``report`` commands that run this grid (seeds 0..N-1 there)."""
    gridargs = " ".join(f"--grid {shlex.quote(k + '=' + ','.join('null' if v is None else str(v) for v in vs))}"
                        for k, vs in grid.items())
    note = "" if seeds == list(range(len(seeds))) else \
        f"  # the CLI runs seeds 0..{max(seeds)}; this grid's are {','.join(map(str, seeds))}"
    return [f"blackbox-rp sweep {config} {gridargs} --seeds {max(seeds) + 1} --out {out}{note}",
            f"blackbox-rp report {out}"]


def cell_name(config: dict[str, Any]) -> str:
    """A group's recipe as the benchmark has always named it: transform/mapping/optimizer/budget (+ options)."""
    name = "/".join(str(config[k]) for k in ("transform.name", "mapping.name", "optimizer.name", "budget.queries"))
    if config.get("optimizer.directions_per_step") is not None:
        name += f" ({config['optimizer.directions_per_step']} directions/step)"
    if config.get("fit.refit", "auto") != "auto":
        name += f", refit {config['fit.refit']}"
    return name


def headline(rows: list[dict[str, Any]], runs: list[dict[str, Any]], dataset: str) -> dict[str, Any]:
    """The figures of the first dataset: the baselines (one value per seed: every run of a seed measures the
    same ones), the best black-box recipe among those run on the most seeds (one lucky seed does not win),
    its white-box ceiling and its gain over the probe paired by seed."""
    mine = [r for r in runs if r["split"]["dataset"] == dataset]

    def baseline(name_or_prefix: str) -> tuple[str | None, float | None, dict[int, float]]:
        by_seed: dict[int, float] = {}
        found = None
        for r in mine:
            for b in r["baselines"]:
                if (b["name"] == name_or_prefix or (name_or_prefix == MULTIVIEW and b["name"].startswith(MULTIVIEW))) \
                        and b["accuracy"] is not None:
                    found = b["name"]
                    by_seed.setdefault(r["seed"], b["accuracy"])
        return found, mean_sd(by_seed.values())[0], by_seed

    def frac(v: float | None) -> float | None:
        return None if v is None else round(v, 4)

    _, zero, _ = baseline(ZERO_SHOT)
    _, probe, probe_by_seed = baseline(PROBE)
    groups = [g for g in rows if g["config"].get("task.data") == dataset]
    best = max(groups, key=lambda g: (g["n"], g["test_mean"])) if groups else None
    head: dict[str, Any] = {"dataset": dataset, "zero_shot_acc": frac(zero), "linear_probe_acc": frac(probe),
                            "best_blackbox_acc": None, "best_blackbox": None, "whitebox_acc": None,
                            "best_minus_probe": None, "best_above_probe_seeds": None, "best_kept_theta0": None}
    if best is not None:
        gain = best["baselines"].get(PROBE)
        wb = best.get("whitebox") or {}
        head.update(best_blackbox_acc=frac(best["test_mean"]), best_blackbox=cell_name(best["config"]),
                    whitebox_acc=frac(wb.get("mean")), best_kept_theta0=f"{best['kept_theta0']}/{best['n']}")
        if gain and gain["n"]:
            head.update(best_minus_probe=frac(gain["gain_mean"]), best_above_probe_seeds=f"{gain['above']}/{gain['n']}")
    views, acc, by_seed = baseline(MULTIVIEW)
    if views is not None:  # the multi-view probe (no prompt; K queries per image) minus the probe, by seed
        paired = [by_seed[s] - probe_by_seed[s] for s in by_seed if s in probe_by_seed]
        head.update(multiview_probe=views, multiview_probe_acc=frac(acc),
                    multiview_minus_probe=frac(mean_sd(paired)[0]))
    if head["best_blackbox_acc"] is not None and head["whitebox_acc"]:
        head["blackbox_over_whitebox"] = round(head["best_blackbox_acc"] / head["whitebox_acc"], 4)
    return head


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        return run(args)
    except ConfigError as e:  # a bad option or a point that cannot run: said before any query
        print(f"benchmarks/visual.py: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Check the grid, run what is not finished, print the report and the headline."""
    base, grid, seeds = base_and_grid(args)
    from_dict(base)  # a bad option is refused here, naming the key, before anything is written
    if args.write_config is not None:
        args.write_config.write_text(dumps_toml(from_dict(base)), encoding="utf-8")
        print("\n".join(commands(args.write_config, grid, seeds, args.out)))
        return 0
    t0 = time.monotonic()
    executor, close = (None, None) if args.executor == "local" else make_executor(args.executor, None)
    done = {"ran": 0, "kept": 0}

    def on_done(row: dict[str, Any], skipped: bool) -> None:
        done["kept" if skipped else "ran"] += 1
        print(f"{'kept' if skipped else 'ran '} {row['run']}: test {100 * row['test_accuracy']:.1f}%",
              file=sys.stderr)

    try:
        rows = sweep(base, args.out, grid, seeds, executor=executor, max_workers=args.workers,
                     torch_threads=args.torch_threads, on_done=on_done)
    finally:
        if close is not None:
            close()
    rep = write_report(args.out, only=[r["run"] for r in rows])
    if args.plot is not None:
        args.plot.write_bytes((args.out / "report.png").read_bytes())
    seconds = time.monotonic() - t0
    print(f"\nmodel {args.model}; split {args.split} (train, validation, test); canvas {args.size} px, image "
          f"{args.image_size} px; transform options {args.transform_param or '-'}; seeds {args.seeds}; "
          f"{done['ran']} runs now, {done['kept']} kept from {args.out}; {seconds:.0f} s; "
          f"load average {os.getloadavg()[0]:.2f}\n")
    print(rep["table"])
    print(f"\nfiles: {args.out}/report.md, runs.csv, summary.csv, report.png (the same as `blackbox-rp report "
          f"{args.out}`)\n")
    head = headline(rep["rows"], rep["results"], csv_list(args.datasets)[0])
    head["runs"] = len(rows)
    head["seconds"] = round(seconds, 1)
    print(json.dumps(head))
    return 0


if __name__ == "__main__":
    sys.exit(main())
