"""List the optimizers and their parameters, or try one on a standard test function.

    blackbox-rp optimize --list                      # names, queries per step, parameters and defaults
    blackbox-rp optimize spsa-gc --function rosenbrock --dim 10 --budget 2000 --param q=3
    blackbox-rp optimize ng:NGOpt --function ellipsoid --dim 50 --budget 5000 --json

Parameters are given as --param NAME=VALUE (VALUE parsed as JSON when it can be, e.g. 0.1,
null, true, [0, 1]; else taken as a string); unknown names are refused with the accepted ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from . import _values as v
from ._params import parse_params

HELP = "list the zeroth-order optimizers, or run one on a test function (sphere, ellipsoid, rosenbrock)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("optimizer", nargs="?", help="optimizer name (see --list), e.g. spsa-gc or ng:NGOpt")
    p.add_argument("--list", action="store_true", help="list the optimizers with their parameters")
    p.add_argument("--function", default="sphere", help="sphere, ellipsoid or rosenbrock (default sphere)")
    p.add_argument("--dim", type=v.positive_int, default=10, help="dimension (default 10)")
    p.add_argument("--budget", type=v.positive_int, default=2000, help="objective evaluations (default 2000)")
    p.add_argument("--seed", type=v.seed, default=0, help="seed of the optimizer (default 0)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="optimizer parameter")
    p.add_argument("--json", action="store_true", help="print JSON")


def _listing() -> list[dict[str, object]]:
    from blackbox_rp.optim import REGISTRY, make
    from blackbox_rp.optim.base import PREFIX_KINDS
    from blackbox_rp.space import SearchSpace

    rows = []
    for name, cls in sorted(REGISTRY.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        params = {f.name: f.default for f in dataclasses.fields(cls.Config)}
        # d = 100: a box, or 100 categorical slots (of 10 options) for optimizers that search only those
        space = SearchSpace.box(100) if "continuous" in cls.accepts else SearchSpace.categorical((10,) * 100)
        rows.append({"name": name, "queries_per_step_d100": make(name, space).queries_per_step, "about": doc,
                     "accepts": sorted(cls.accepts), "params": params, "presets": sorted(cls.Config.PRESETS)})
    rows.append({"name": "ng:<name>", "queries_per_step_d100": "num_workers", "accepts": sorted(PREFIX_KINDS["ng"]),
                 "about": "any nevergrad optimizer by name (ng:NGOpt, ng:OnePlusOne, ng:CMA, ng:DE, ...)",
                 "params": {"budget": None, "num_workers": 1, "sigma": None}, "presets": []})
    return rows


def run(args: argparse.Namespace) -> int:
    if args.list or not args.optimizer:
        rows = _listing()
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
            return 0
        for r in rows:
            presets = f"  presets: {', '.join(r['presets'])}" if r["presets"] else ""
            print(f"{r['name']:<14} {r['about']}{presets}")
            print(f"{'':<14} searches {'/'.join(r['accepts'])} θ; queries/step (d=100): {r['queries_per_step_d100']}; "
                  + ", ".join(f"{k}={v}" for k, v in r["params"].items()))
        return 0

    from blackbox_rp.optim import make, minimize
    from blackbox_rp.optim.functions import make_function

    f = make_function(args.function, args.dim)
    opt = make(args.optimizer, args.dim, seed=args.seed, x0=f.x0, **parse_params(args.param, "optimizer"))
    try:
        res = minimize(f, opt, budget=args.budget)
    finally:
        opt.close()
    out = {"optimizer": opt.name, "function": args.function, "dim": args.dim, "start_loss": f(f.x0),
           "best_loss": res.fun, "loss_at_recommendation": f(res.recommendation), "queries": res.queries,
           "steps": res.steps, "stop_reason": res.stop_reason, "seed": args.seed}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            print(f"{key:>22}: {value}")
    return 0
