"""Visual reprogramming on the bundled ImageNet model: prompts × label mappings × optimizers, beside the
no-prompt baselines and the white-box ceiling of the same transform and mapping.

For each target dataset and seed: the zero-shot FLM mapping (no prompt), the
output-only linear probe (no prompt, logistic regression on the returned
log-probabilities), then every {transform} × {mapping} × {optimizer} cell
black-box at each query budget (train + validation queries; test reported
apart), and the white-box ceiling (backprop, NOT black-box) of each
{transform} × {mapping}. Prints a markdown table (mean ± sd over seeds) and,
as its last line, a JSON object with the headline figures.

The full grid (3 transforms × 5 mappings × 3 optimizers × 3 budgets × 3 seeds
× 2 datasets) is days of CPU; pass the subset you can afford:

    python benchmarks/visual.py --quick                       # < 1 minute
    python benchmarks/visual.py --datasets mnist5k --transforms lowdim \\
        --mappings blm+,linear --optimizers zo-adam --budgets 20000 --seeds 0 --whitebox-steps 300

Long grids: ``--json-out FILE`` is rewritten after every cell, and a run
started again with the same file keeps its rows and runs only the cells not
in it; with ``--journal FILE`` as well, the cell that was cut off replays the
queries it had answered (no model call) and reaches the same numbers. ``--directions 2,4,8`` repeats each black-box cell with that many
directions per step (``q`` of SPSA-GC and ZO-Adam, ``popsize`` of CMA-ES) at
the same budget: fewer, better-informed steps against more, noisier ones.
``--refits auto,joint`` compares a linear readout refitted each epoch with one
trained together with the prompt. A grid run in pieces is reported as one:
``--from-json a.json b.json --plot acc.png`` merges saved rows (no query is
sent) and draws test accuracy against queries with the baselines beside it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from blackbox_rp import Budget, Ledger
from blackbox_rp.baselines import canvas_options, multiview_probe, output_only
from blackbox_rp.commands._params import parse_params
from blackbox_rp.data import load_target, split_dataset
from blackbox_rp.mapping import make_mapping
from blackbox_rp.reprogram import Reprogrammer, recommended_optimizer_params
from blackbox_rp.transforms import make_transform
from blackbox_rp.whitebox import WhiteboxConfig, whitebox_fit

QUICK = dict(datasets="mnist5k", transforms="lowdim", mappings="blm+,linear", optimizers="zo-adam", budgets="2000",
             seeds="0", whitebox_steps=10, split="200,100,100", size=48, image_size=32, eval_every=3,
             probe_views="24,32")


def _csv(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = list(values)
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small grid in under a minute")
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
                   help="transform option for every cell and the white-box runs, e.g. background=0.5 (repeatable)")
    p.add_argument("--directions", default="default",
                   help="directions per step to compare, e.g. default,2,8 (q of SPSA-GC/ZO-Adam, popsize of CMA-ES)")
    p.add_argument("--optimizer-param", action="append", metavar="KEY=VALUE",
                   help="optimizer option over the recommended ones, for every cell, e.g. lr=0.003 (repeatable)")
    p.add_argument("--refits", default="auto",
                   help="how the mapping follows the prompt, compared: e.g. auto,joint (see ReprogramConfig.refit)")
    p.add_argument("--journal", type=Path, default=None,
                   help="SQLite journal to keep (default: a temporary one); a re-run replays its answers")
    p.add_argument("--json-out", type=Path, default=None, help="also write every row to this JSON file, "
                   "rewritten after each cell")
    p.add_argument("--from-json", type=Path, nargs="+", default=None, metavar="FILE",
                   help="report (and plot) the rows saved by earlier --json-out runs instead of running; "
                        "with --json-out, also write the merged rows there")
    p.add_argument("--plot", type=Path, default=None, help="also draw test accuracy against queries to this PNG")
    args = p.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    logging.basicConfig(level=logging.WARNING)
    t0 = time.monotonic()
    if args.from_json:
        rows = merge_rows([json.loads(f.read_text()) for f in args.from_json])
        title = f"rows of {', '.join(str(f) for f in args.from_json)}"
        if args.json_out is not None:  # the merged rows, one file to keep
            args.json_out.write_text(json.dumps(rows, indent=1))
    else:
        rows = run_grid(args)
        title = (f"model {args.model}; split {args.split} (train, validation, test); canvas {args.size} px, image "
                 f"{args.image_size} px; transform options {args.transform_param or '-'}; seeds {args.seeds}; "
                 f"{time.monotonic() - t0:.0f} s")
    head = report(rows, title)
    if args.plot is not None:
        plot(rows, args.plot)
    head["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(head))
    return 0


#: the method name of the single-view output-only probe, the bar every row is paired with
PROBE = "linear probe (no prompt)"
KEY = ("dataset", "seed", "method", "transform", "mapping", "optimizer", "budget")


def merge_rows(parts: list[list[dict]]) -> list[dict]:
    """Rows of several runs as one; a row repeated (the same baseline of one split) counts once, the first
    kept. Runs of another setup (model, split, canvas, validation interval) are not comparable and are
    refused; a repeated row whose result differs (float noise: other thread counts, other batch
    compositions) is reported on stderr with the largest difference."""
    everything = list(itertools.chain.from_iterable(parts))
    check_same_setup(everything, "--from-json")
    seen: dict[tuple, dict] = {}
    differ: list[float] = []
    for r in everything:
        key = tuple(r[k] for k in KEY)
        if key in seen and seen[key]["test"] != r["test"]:
            differ.append(abs(seen[key]["test"] - r["test"]))
        seen.setdefault(key, r)
    if differ:
        print(f"--from-json: {len(differ)} repeated row(s) differ between the files (largest difference "
              f"{max(differ):.4f}); the first of each is kept", file=sys.stderr)
    return list(seen.values())


#: what must agree for rows of several runs to be compared
SETUP_FIELDS = ("model", "split", "size", "canvas", "eval_every")


def check_same_setup(rows: list[dict], who: str) -> None:
    """Refuse rows of different setups (see :data:`SETUP_FIELDS`), naming the field that differs."""
    for field in SETUP_FIELDS:
        values = {json.dumps((r.get("setup") or {}).get(field), sort_keys=True) for r in rows}
        if len(values) > 1:
            raise SystemExit(f"{who}: rows run with different {field} ({sorted(values)}); report each setup "
                             f"on its own")


def _directions_key(optimizer: str) -> str:
    """The parameter that sets candidates per step: ``popsize`` for population methods, else ``q``."""
    from blackbox_rp.optim import REGISTRY

    cls = REGISTRY.get(optimizer)
    fields = getattr(getattr(cls, "Config", None), "__dataclass_fields__", {})
    return "popsize" if "popsize" in fields or optimizer.startswith("ng:") else "q"


def run_grid(args: argparse.Namespace) -> list[dict]:
    """Every baseline, black-box cell and white-box ceiling the arguments ask for, one row each.

    Every cell is built once before the first query, so a combination that cannot run (a joint refit
    with a statistical mapping, an option an optimizer lacks) is refused before hours are spent. With
    ``--json-out`` naming a file that exists, its rows are kept and their cells not run again."""
    from oracles import TorchOracle

    split = tuple(int(s) for s in _csv(args.split))
    canvas = {"image_size": args.image_size, **parse_params(args.transform_param, "--transform-param")}
    extra = parse_params(args.optimizer_param, "--optimizer-param")
    setup = {"model": args.model, "split": list(split), "size": args.size, "canvas": canvas,
             "eval_every": args.eval_every}
    rows: list[dict] = []
    if args.json_out is not None and args.json_out.exists():
        rows = json.loads(args.json_out.read_text())
        check_same_setup(rows + [{"setup": json.loads(json.dumps(setup))}], f"--json-out {args.json_out}")
        print(f"{args.json_out}: {len(rows)} rows kept from an earlier run; their cells are not run again",
              file=sys.stderr)
    done = {tuple(r[k] for k in KEY) for r in rows}
    # an empty --optimizers runs the baselines and the white-box ceilings only
    cells = list(itertools.product(_csv(args.transforms), _csv(args.mappings), _csv(args.optimizers),
                                   (int(b) for b in _csv(args.budgets)), _csv(args.directions), _csv(args.refits)))
    pairs = list(itertools.product(_csv(args.transforms), _csv(args.mappings)))

    def add(row: dict) -> None:
        row["setup"] = setup
        rows.append(row)
        done.add(tuple(row[k] for k in KEY))
        if args.json_out is not None:
            args.json_out.write_text(json.dumps(rows, indent=1))

    def build(oracle, cell, train, seed) -> tuple[Reprogrammer, str]:
        tname, mname, oname, budget, dirs, refit = cell
        params = {**recommended_optimizer_params(oname, mname), **extra}
        if dirs != "default":
            params[_directions_key(oname)] = int(dirs)
        rp = Reprogrammer.build(tname, oracle, mname, oname, train, out_size=args.size, seed=seed,
                                transform_params=canvas, eval_every=args.eval_every, optimizer_params=params,
                                refit=refit)
        label = oname if dirs == "default" else f"{oname} ({rp.optimizer.queries_per_step}/step)"
        label += ("" if refit == "auto" else f", refit {refit}") + "".join(f", {k}={v}" for k, v in extra.items())
        return rp, label

    with tempfile.TemporaryDirectory() as tmp:
        # one journal per run of the benchmark: the no-prompt answers are shared by the baselines and θ₀
        oracle = TorchOracle(args.model, journal=args.journal or Path(tmp) / "journal.sqlite", max_batch=256)
        for ds in _csv(args.datasets):
            data = load_target(ds)
            for cell in cells:  # refuse what cannot run before any query
                try:
                    build(oracle, cell, split_dataset(data, split, 0)[0], 0)
                except ValueError as e:
                    raise SystemExit(f"cell {'/'.join(map(str, cell))} cannot run: {e}") from None
            for seed in (int(s) for s in _csv(args.seeds)):
                train, val, test = split_dataset(data, split, seed)
                for name, mapping in (("zero-shot FLM (no prompt)", "flm"), (PROBE, "linear")):
                    if (ds, seed, name, "none", mapping, "-", 0) in done:
                        continue
                    oracle.ledger = Ledger()
                    r = output_only(oracle, mapping, train, test, out_size=args.size, seed=seed, canvas=canvas)
                    add(dict(dataset=ds, seed=seed, method=name, transform="none", mapping=mapping,
                             optimizer="-", budget=0, test=r["accuracy"], queries=len(train),
                             calls=oracle.ledger.counts("baseline").calls, black_box=True))
                sizes = [int(v) for v in _csv(args.probe_views)]
                name = f"linear probe, {len(sizes)} views ({'+'.join(map(str, sizes))} px, no prompt)"
                if sizes and (ds, seed, name, "none", "linear", "-", 0) not in done:
                    oracle.ledger = Ledger()
                    r = multiview_probe(oracle, train, test, out_size=args.size, seed=seed,
                                        views=[{**canvas_options(canvas), "image_size": v} for v in sizes])
                    add(dict(dataset=ds, seed=seed, method=name, transform="none", mapping="linear", optimizer="-",
                             budget=0, test=r["accuracy"], queries=r["train_queries"],
                             calls=oracle.ledger.counts("baseline").calls, black_box=True))
                for cell in cells:
                    tname, mname, oname, budget, dirs, refit = cell
                    oracle.ledger = Ledger(Budget(max_queries=budget, phases=("train", "validation")))
                    rp, label = build(oracle, cell, train, seed)
                    if (ds, seed, "black-box", tname, mname, label, budget) in done:
                        continue
                    fit = rp.fit(train, val)
                    ev = rp.evaluate(test)
                    led = oracle.ledger
                    add(dict(dataset=ds, seed=seed, method="black-box", transform=tname, mapping=mname,
                             optimizer=label, budget=budget, test=ev["accuracy"], val=fit.val_accuracy,
                             steps=fit.steps, per_step=rp.optimizer.queries_per_step,
                             queries=led.counts("train").queries + led.counts("validation").queries,
                             calls=led.counts("train").calls + led.counts("validation").calls,
                             black_box=True))
                for tname, mname in pairs:
                    lr = args.whitebox_lr or (0.001 if mname == "linear" else 0.05)
                    label = "backprop (Adam)" if args.whitebox_lr is None and args.whitebox_readout == "refit" \
                        else f"backprop (Adam, lr {lr}, {args.whitebox_readout} readout)"
                    if not args.whitebox_steps or (ds, seed, "white-box ceiling", tname, mname, label, 0) in done:
                        continue
                    t = make_transform(tname, in_shape=tuple(train.x.shape[1:]), out_size=args.size,
                                       channels=oracle.input_spec.channels or 3, seed=seed, **canvas)
                    m = make_mapping(mname, oracle.num_classes, train.num_classes, seed=seed)
                    wb = whitebox_fit(t, oracle, m, train, val, test,
                                      WhiteboxConfig(steps=args.whitebox_steps, seed=seed, lr=lr,
                                                     readout=args.whitebox_readout))
                    add(dict(dataset=ds, seed=seed, method="white-box ceiling", transform=tname, mapping=mname,
                             optimizer=label, budget=0, test=wb["test_accuracy"],
                             val=wb["val_accuracy"], steps=args.whitebox_steps, queries=0, calls=0,
                             black_box=False))
    return rows


def report(rows: list[dict], title: str) -> dict:
    """Print the markdown table (mean ± sd over seeds, gain over the same seed's probe); the headline dict."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"], r["transform"], r["mapping"], r["optimizer"], r["budget"]),
                          []).append(r)
    probe = {(r["dataset"], r["seed"]): r["test"] for r in rows if r["method"] == PROBE}
    print(f"\n{title}\n")
    print("| dataset | method | transform | mapping | optimizer | budget | test acc % (mean ± sd) | "
          "minus probe, same seed (mean ± sd; seeds above) | train+val queries | calls | black-box |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    summary: dict[tuple, float] = {}
    gains: dict[tuple, list[float]] = {}
    for key, rs in groups.items():
        summary[key] = mean_sd(100 * r["test"] for r in rs)[0]
        # paired with the probe of the same split; a seed whose probe row is missing (a killed run) is left out
        gains[key] = [100 * (r["test"] - probe[r["dataset"], r["seed"]]) for r in rs
                      if (r["dataset"], r["seed"]) in probe]
        ds, method, tname, mname, oname, budget = key
        acc = mean_sd(100 * r["test"] for r in rs)
        gain = mean_sd(gains[key]) if gains[key] else None
        paired = "n/a" if gain is None else \
            f"{gain[0]:+.1f} ± {gain[1]:.1f}; {sum(g > 0 for g in gains[key])}/{len(gains[key])}"
        print(f"| {ds} | {method} | {tname} | {mname} | {oname} | {budget or '-'} | {acc[0]:.1f} ± {acc[1]:.1f} | "
              f"{paired} | "
              f"{int(statistics.mean(r['queries'] for r in rs))} | {int(statistics.mean(r['calls'] for r in rs))} | "
              f"{'yes' if rs[0]['black_box'] else 'NO'} |")
    first = rows[0]["dataset"]
    bb = {k: v for k, v in summary.items() if k[0] == first and k[1] == "black-box"}
    # the best black-box recipe among those run on the most seeds (one lucky seed does not win)
    best_key = max(bb, key=lambda k: (len(groups[k]), bb[k])) if bb else None
    wb_key = (first, "white-box ceiling", best_key[2], best_key[3], "backprop (Adam)", 0) if best_key else None

    def frac(key: tuple | None) -> float | None:
        return round(summary[key] / 100, 4) if key in summary else None

    best_gains = gains.get(best_key) or []
    head = {
        "dataset": first,
        "zero_shot_acc": frac((first, "zero-shot FLM (no prompt)", "none", "flm", "-", 0)),
        "linear_probe_acc": frac((first, PROBE, "none", "linear", "-", 0)),
        "best_blackbox_acc": frac(best_key),
        "best_blackbox": None if best_key is None else "/".join(map(str, best_key[2:])),
        "whitebox_acc": frac(wb_key),
        "best_minus_probe": round(statistics.mean(best_gains) / 100, 4) if best_gains else None,
        "best_above_probe_seeds": f"{sum(g > 0 for g in best_gains)}/{len(best_gains)}" if best_gains else None,
    }
    views = {k: v for k, v in summary.items() if k[0] == first and k[1].startswith("linear probe, ")}
    if views:  # the best multi-view probe (no prompt; K queries per image)
        best_views = max(views, key=views.get)
        head.update(multiview_probe=best_views[1], multiview_probe_acc=frac(best_views),
                    multiview_minus_probe=round(statistics.mean(gains[best_views]) / 100, 4))
    if head["best_blackbox_acc"] is not None and head["whitebox_acc"]:
        head["blackbox_over_whitebox"] = round(head["best_blackbox_acc"] / head["whitebox_acc"], 4)
    return head


def plot(rows: list[dict], path: Path) -> None:
    """Test accuracy (mean ± sd over seeds) against train + validation queries, a column per dataset: a line
    per black-box recipe, the no-prompt baselines as horizontal lines, white-box ceilings as stars; the
    lower row zooms in around the linear probe, the bar a prompt has to clear."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(2, len(datasets), figsize=(6.5 * len(datasets), 8), squeeze=False)
    for col, ds in enumerate(datasets):
        mine = [r for r in rows if r["dataset"] == ds]
        probe = [100 * r["test"] for r in mine if r["method"] == PROBE]
        for row, ax in enumerate(axes[:, col]):
            _draw(ax, mine)
            ax.set_title(ds if row == 0 else f"{ds}: around the linear probe")
            if row == 1 and probe:
                ax.set_ylim(statistics.mean(probe) - 3, statistics.mean(probe) + 3)
                ax.get_legend().remove()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _draw(ax, rows: list[dict]) -> None:
    lines: dict[tuple, dict[int, list[float]]] = {}
    for r in rows:
        if r["method"] == "black-box":
            lines.setdefault((r["transform"], r["mapping"], r["optimizer"]), {}).setdefault(
                r["budget"], []).append(100 * r["test"])
    for (tname, mname, oname), by_budget in sorted(lines.items()):
        xs = sorted(by_budget)
        stats = [mean_sd(by_budget[x]) for x in xs]
        ax.errorbar(xs, [m for m, _ in stats], yerr=[sd for _, sd in stats], marker="o", capsize=3,
                    label=f"{tname} + {mname}, {oname}")
    multiview = sorted({r["method"] for r in rows if r["method"].startswith("linear probe, ")})
    for method, style, color in ((PROBE, "--", "black"), ("zero-shot FLM (no prompt)", ":", "black"),
                                 *((m, "-.", c) for m, c in zip(multiview, ("tab:purple", "tab:olive", "tab:cyan",
                                                                            "tab:brown")))):
        accs = [100 * r["test"] for r in rows if r["method"] == method]
        if accs:
            ax.axhline(statistics.mean(accs), color=color, linestyle=style, linewidth=1,
                       label=f"{method}: {statistics.mean(accs):.1f}")
    right = 1.25 * max((r["budget"] for r in rows if r["method"] == "black-box"), default=1)
    ceilings = [r for r in rows if r["method"] == "white-box ceiling"]
    for cell in sorted({(r["transform"], r["mapping"], r["optimizer"]) for r in ceilings}):
        accs = [100 * r["test"] for r in ceilings if (r["transform"], r["mapping"], r["optimizer"]) == cell]
        how = "" if cell[2] == "backprop (Adam)" else f", {cell[2].removeprefix('backprop (Adam, ').rstrip(')')}"
        ax.plot([right], [statistics.mean(accs)], marker="*", markersize=11, linestyle="none",
                label=f"white-box {cell[0]} + {cell[1]}{how} (not black-box)")
    ax.set_xscale("log")
    ax.set_xlabel("train + validation queries (budget)")
    ax.set_ylabel("test accuracy %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


if __name__ == "__main__":
    sys.exit(main())
