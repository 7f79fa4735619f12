"""Our optimizers against nevergrad's on the same functions at equal query budgets, in one run.

Ours: SPSA, SPSA-GC, ZO-Adam (RGE), CMA-ES (pycma), subspace CMA-ES (BBT) and
random search, all with their untuned defaults; nevergrad's own SPSA, CMA,
NGOpt and OnePlusOne through the ``ng:`` adapter (same start x0, same budget,
nevergrad's defaults). Functions: sphere, rotated ellipsoid (condition 1e3)
and Rosenbrock (``blackbox_rp.optim.functions``) in d = 10, 100, 1000, several
seeds. Reported per row: the median over seeds of the best loss found, and the
median number of evaluations to reach the target (10% of the starting loss;
">B" when the median run does not reach it). The verdict columns compare each
of ours with nevergrad's implementation of the same algorithm (SPSA vs
ng:SPSA, CMA-ES vs ng:CMA): "yes" when ours has the lower median, or when
both solved the problem to 1e-4 of the start loss (below that, two runs of
the same algorithm differ by seed noise only; the losses are printed anyway).

Also timed: the toolkit's own overhead per ask/tell step (µs) at d = 1000 and
10 000, next to one fmnist-cnn forward of a 64-image batch.

    OMP_NUM_THREADS=1 python benchmarks/optimizers.py            # full (~10 min)
    OMP_NUM_THREADS=1 python benchmarks/optimizers.py --quick    # < 1 minute

Prints markdown tables; the last line is one JSON object of headline figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
import warnings
from typing import Any

import numpy as np

from blackbox_rp.optim import make, minimize
from blackbox_rp.optim.functions import make_function

OURS = ["spsa", "spsa-gc", "zo-adam", "cma", "cma-subspace", "random"]
THEIRS = ["ng:SPSA", "ng:CMA", "ng:NGOpt", "ng:OnePlusOne"]
COUNTERPARTS = {"spsa": "ng:SPSA", "cma": "ng:CMA"}


def run_one(name: str, fn: str, dim: int, budget: int, seed: int) -> dict[str, Any]:
    f = make_function(fn, dim)
    target = 0.1 * f(f.x0)
    t0 = time.perf_counter()
    res = minimize(f, make(name, dim, seed=seed, x0=f.x0), budget=budget)
    seconds = time.perf_counter() - t0
    reached = next((h["queries"] for h in res.history if h["best"] <= target), None)
    return {"fun": res.fun, "reached": reached, "seconds": seconds}


def overhead(dims: list[int], steps: int) -> dict[str, dict[int, tuple[float, int]]]:
    """(µs per ask+tell step, queries per step) of each optimizer; the losses are random numbers,
    so only the toolkit (and the library under it: pycma, nevergrad) is timed."""
    out: dict[str, dict[int, tuple[float, int]]] = {}
    rng = np.random.default_rng(0)
    for name in OURS + ["ng:OnePlusOne"]:
        out[name] = {}
        for d in dims:
            opt = make(name, d, seed=0)
            q = opt.queries_per_step
            for _ in range(3):
                opt.tell(opt.ask(), rng.random(q))
            t0 = time.perf_counter()
            for _ in range(steps):
                opt.tell(opt.ask(), rng.random(q))
            out[name][d] = ((time.perf_counter() - t0) / steps * 1e6, q)
    return out


def model_call_us(reps: int) -> float:
    import torch

    from oracles.models import load_model

    model = load_model("fmnist-cnn")
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(reps):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def fmt_loss(v: float) -> str:
    return f"{v:.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small run, under a minute")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 3, quick 2)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")

    if args.quick:
        dims = {10: 1000, 100: 2000}
        fns = ["sphere", "rosenbrock"]
        names = OURS + THEIRS
        seeds = args.seeds or 2
    else:
        dims = {10: 2000, 100: 10000, 1000: 10000}
        fns = ["sphere", "ellipsoid", "rosenbrock"]
        names = OURS + THEIRS
        seeds = args.seeds or 3

    rows = []
    verdicts: dict[str, list[bool]] = {k: [] for k in COUNTERPARTS}
    seconds: dict[str, float] = {n: 0.0 for n in names}
    for dim, budget in dims.items():
        for fn in fns:
            cell: dict[str, dict[str, Any]] = {}
            for name in names:
                runs = [run_one(name, fn, dim, budget, s) for s in range(seeds)]
                seconds[name] += sum(r["seconds"] for r in runs)
                reach = [r["reached"] if r["reached"] is not None else float("inf") for r in runs]
                cell[name] = {"median": statistics.median(r["fun"] for r in runs),
                              "reach": statistics.median(reach)}
            row = {"dim": dim, "fn": fn, "budget": budget, "cell": cell}
            solved = 1e-4 * make_function(fn, dim)(make_function(fn, dim).x0)
            for ours, theirs in COUNTERPARTS.items():
                # "at least as good": a lower median, or both solved to 1e-4 of the start loss (a tie:
                # below that the medians of two runs of the same algorithm differ by seed noise only)
                ok = cell[ours]["median"] <= cell[theirs]["median"] or \
                    max(cell[ours]["median"], cell[theirs]["median"]) <= solved
                verdicts[ours].append(ok)
                row[f"{ours}>=ng"] = ok
            rows.append(row)

    f0 = {(d, fn): make_function(fn, d)(make_function(fn, d).x0) for d in dims for fn in fns}
    print(f"## Median best loss over {seeds} seeds at equal budgets (start loss in brackets)\n")
    print("| d | function | budget | " + " | ".join(names) + " | SPSA ≥ ng:SPSA | CMA ≥ ng:CMA |")
    print("|---|---|---|" + "---|" * len(names) + "---|---|")
    for r in rows:
        cells = " | ".join(fmt_loss(r["cell"][n]["median"]) for n in names)
        print(f"| {r['dim']} | {r['fn']} ({f0[(r['dim'], r['fn'])]:.3g}) | {r['budget']} | {cells} | "
              f"{'yes' if r['spsa>=ng'] else 'NO'} | {'yes' if r['cma>=ng'] else 'NO'} |")
    print("\n## Median evaluations to reach 10% of the start loss\n")
    print("| d | function | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for r in rows:
        cells = " | ".join(str(int(r["cell"][n]["reach"])) if np.isfinite(r["cell"][n]["reach"])
                           else f">{r['budget']}" for n in names)
        print(f"| {r['dim']} | {r['fn']} | {cells} |")

    odims = [1000] if args.quick else [1000, 10000]
    ovh = overhead(odims, steps=20 if args.quick else 100)
    model_us = model_call_us(10 if args.quick else 50)
    print(f"\n## Toolkit overhead per ask+tell step (µs), vs one fmnist-cnn forward of 64 images: "
          f"{model_us:.0f} µs\n")
    print("| optimizer | " + " | ".join(f"d={d}: queries/step, µs/step, µs/query" for d in odims) + " |")
    print("|---|" + "---|" * len(odims))
    for name, per in ovh.items():
        print(f"| {name} | " + " | ".join(f"{per[d][1]}, {per[d][0]:.0f}, {per[d][0] / per[d][1]:.0f}"
                                          for d in odims) + " |")
    print("\n## Wall time per optimizer over all cells (s)\n")
    print(" | ".join(f"{n}: {s:.1f}" for n, s in seconds.items()))

    headline = {
        "seeds": seeds,
        "rows": len(rows),
        "spsa_at_least_ng_spsa": f"{sum(verdicts['spsa'])}/{len(rows)}",
        "cma_at_least_ng_cma": f"{sum(verdicts['cma'])}/{len(rows)}",
        "model_forward_64_us": round(model_us),
        "overhead_us_per_query_d1000": {n: round(ovh[n][1000][0] / ovh[n][1000][1]) for n in ovh},
        "median_loss": {f"{r['fn']}-{r['dim']}": {n: float(f"{r['cell'][n]['median']:.4g}") for n in names}
                        for r in rows},
    }
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
