"""Reports over run directories: a markdown table, CSV files and a PNG, computed from ``results.json`` alone.

Runs are grouped by their config without the seed; a group is labelled by the config keys that
differ between groups. For each group: test accuracy mean ± sd over seeds, the queries spent,
the queries its validation curve needed to reach a target accuracy, and the gain over each
no-prompt baseline *paired by seed* (the prompt and the baseline of the same seed share the
split, so their difference is what the prompt added; its sd is over seeds).
"""

from __future__ import annotations

import csv
import json
import statistics
import warnings
from pathlib import Path
from typing import Any, Sequence

from .stats import mean_sd

__all__ = ["collect", "summarize", "markdown", "write_report", "plot_report"]


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, list) else v
    return out


def collect(root: str | Path, only: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every finished run under ``root`` (its results plus ``run_dir``), in a stable order; ``only``: just the
    run directories of these names (a sweep's points, when the directory holds others too)."""
    from .run import read_results

    runs = []
    root = Path(root)
    paths = sorted(root.rglob("results.json")) if only is None else \
        [root / name / "results.json" for name in only if (root / name / "results.json").is_file()]
    for path in paths:
        r = read_results(path.parent)
        r["run_dir"] = str(path.parent.relative_to(root)) or "."
        runs.append(r)
    if not runs:
        raise FileNotFoundError(f"no finished run (results.json) under {root}")
    return runs


def _reach(curve: list[dict[str, Any]], target: float) -> int | None:
    for c in curve:
        if c["val_accuracy"] >= target:
            return int(c["queries"])
    return None


def _configs_and_varying_keys(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Each run's flattened config without the seed, and the keys whose values differ between runs."""
    flats = []
    for r in runs:
        f = _flat(r["config"])
        f.pop("task.seed", None)
        flats.append(f)
    keys = sorted({k for f in flats for k in f})
    return flats, [k for k in keys if len({json.dumps(f.get(k)) for f in flats}) > 1]


def summarize(runs: list[dict[str, Any]], target: float | None = None) -> list[dict[str, Any]]:
    """One row per group (config without the seed), in first-seen order."""
    flats, varying = _configs_and_varying_keys(runs)
    groups: dict[str, list[int]] = {}
    for i, f in enumerate(flats):
        groups.setdefault(json.dumps({k: f.get(k) for k in sorted(f)}, sort_keys=True), []).append(i)
    rows = []
    for members in groups.values():
        rs = [runs[i] for i in members]
        f = flats[members[0]]
        label = ", ".join(f"{k}={f.get(k)}" for k in varying) or "all runs"
        acc_m, acc_sd = mean_sd([r["test_accuracy"] for r in rs])
        row: dict[str, Any] = {
            "group": label, "config": f, "seeds": sorted(r["seed"] for r in rs), "n": len(rs),
            "budget": rs[0]["budget"]["queries"],
            "test_mean": acc_m, "test_sd": acc_sd,
            "queries_mean": statistics.fmean(r["queries"] for r in rs),
            "kept_theta0": sum(bool(r["kept_theta0"]) for r in rs),
        }
        if target is not None:
            reached = [_reach(r["curve"], target) for r in rs]
            hit = [q for q in reached if q is not None]
            row["reach_target"] = target
            row["reach_runs"] = len(hit)
            row["reach_queries_mean"] = statistics.fmean(hit) if hit else None
        names = []
        for r in rs:
            names += [b["name"] for b in r["baselines"] if b["name"] not in names]
        row["baselines"] = {}
        for name in names:
            accs, gains = [], []
            for r in rs:
                b = next((b for b in r["baselines"] if b["name"] == name), None)
                if b is not None and b["accuracy"] is not None:
                    accs.append(b["accuracy"])
                    gains.append(r["test_accuracy"] - b["accuracy"])
            bm, bsd = mean_sd(accs)
            gm, gsd = mean_sd(gains)
            row["baselines"][name] = {"mean": bm, "sd": bsd, "gain_mean": gm, "gain_sd": gsd, "n": len(accs),
                                      "above": sum(g > 0 for g in gains)}
        if any("whitebox" in r for r in rs):  # the ceiling of the same transform + mapping (NOT black-box)
            accs = [r["whitebox"].get("test_accuracy") for r in rs if "whitebox" in r]
            wm, wsd = mean_sd(accs)
            skipped = next((r["whitebox"]["skipped"] for r in rs if "skipped" in r.get("whitebox", {})), None)
            row["whitebox"] = {"mean": wm, "sd": wsd, "n": sum(a is not None for a in accs), "skipped": skipped}
        rows.append(row)
    return rows


def _pct(m: float | None, sd: float | None = None, signed: bool = False) -> str:
    if m is None:
        return "n/a"
    s = f"{100 * m:+.1f}" if signed else f"{100 * m:.1f}"
    return s + (f" ± {100 * sd:.1f}" if sd is not None else "")


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table a person reads: accuracy in %, mean ± sd over seeds, paired gains in points."""
    names = []
    for r in rows:
        names += [n for n in r["baselines"] if n not in names]
    head = ["group", "seeds", "budget", "test acc % (mean ± sd)", "queries", "kept θ₀"]
    if rows and "reach_target" in rows[0]:
        head.append(f"queries to {100 * rows[0]['reach_target']:.0f}% val")
    for n in names:
        head += [f"{n} %", f"gain over it (paired, points; seeds above)"]
    whitebox = any("whitebox" in r for r in rows)
    if whitebox:
        head.append("white-box ceiling % (NOT black-box)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["group"], str(r["n"]), str(r["budget"]), _pct(r["test_mean"], r["test_sd"]),
                 f"{r['queries_mean']:.0f}", f"{r['kept_theta0']}/{r['n']}"]
        if "reach_target" in r:
            cells.append("not reached" if r["reach_queries_mean"] is None else
                         f"{r['reach_queries_mean']:.0f} ({r['reach_runs']}/{r['n']} runs)")
        for n in names:
            b = r["baselines"].get(n)
            cells += ["n/a", "n/a"] if b is None or b["n"] == 0 else \
                [_pct(b["mean"], b["sd"]), f"{_pct(b['gain_mean'], b['gain_sd'], signed=True)}; "
                                           f"{b.get('above', 0)}/{b['n']}"]
        if whitebox:
            w = r.get("whitebox")
            cells.append("not run" if w is None else _pct(w["mean"], w["sd"]) if w["n"] else w["skipped"] or "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_report(runs: list[dict[str, Any]], rows: list[dict[str, Any]], path: Path) -> None:
    """Validation accuracy against queries per group (mean line, ±sd band over seeds) and test accuracy
    per group with the baselines, on two labelled panels; y stays in [0, 100]%."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4), dpi=110, gridspec_kw={"width_ratios": [3, 2]})
    by_group: dict[str, list[dict[str, Any]]] = {}
    labels = summarize_labels(runs, rows)
    for r, label in zip(runs, labels):
        by_group.setdefault(label, []).append(r)
    for i, (label, rs) in enumerate(by_group.items()):
        color = f"C{i % 10}"
        hi = max(max((c["queries"] for c in r["curve"]), default=0) for r in rs)
        grid = np.linspace(0, hi, 50) if hi else np.array([0.0])
        ys = []
        for r in rs:
            q = [c["queries"] for c in r["curve"]]
            v = [100 * c["val_accuracy"] for c in r["curve"]]
            if q:
                ys.append(np.interp(grid, q, v, left=np.nan, right=v[-1]))
        if not ys:
            continue
        ys = np.array(ys)
        with warnings.catch_warnings():  # grid points before a run's first validation are NaN on purpose
            warnings.simplefilter("ignore", RuntimeWarning)
            m = np.nanmean(ys, axis=0)
            sd = np.nanstd(ys, axis=0)
        ax.plot(grid, m, color=color, label=f"{label} (n={len(rs)})")
        ax.fill_between(grid, np.clip(m - sd, 0, 100), np.clip(m + sd, 0, 100), color=color, alpha=0.2)
    ax.set_xlabel("train + validation queries")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_ylim(0, 102)
    ax.set_title("validation curves (mean ± sd over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    names = [r["group"] for r in rows]
    y = np.arange(len(rows))[::-1]
    bx.barh(y, [100 * (r["test_mean"] or 0) for r in rows], xerr=[100 * (r["test_sd"] or 0) for r in rows],
            color=[f"C{i % 10}" for i in range(len(rows))], alpha=0.8, label="prompt (test)")
    markers = iter("dos^v<>p")
    seen = set()
    for name in [n for r in rows for n in r["baselines"]]:
        if name in seen:
            continue
        seen.add(name)
        xs = [100 * r["baselines"][name]["mean"] if name in r["baselines"] and r["baselines"][name]["mean"]
              is not None else np.nan for r in rows]
        bx.plot(xs, y, linestyle="none", marker=next(markers, "x"), color="k", ms=5, label=name)
    wx = [100 * r["whitebox"]["mean"] if (r.get("whitebox") or {}).get("mean") is not None else np.nan for r in rows]
    if not np.all(np.isnan(wx)):
        bx.plot(wx, y, linestyle="none", marker="*", color="tab:red", ms=9, label="white-box ceiling (NOT black-box)")
    bx.set_yticks(y, names, fontsize=6)
    bx.set_xlim(0, 100)
    bx.set_xlabel("test accuracy (%)")
    bx.set_title("test: prompt (bars, ± sd) and baselines (markers)", fontsize=10)
    bx.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summarize_labels(runs: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """The group label of each run (as :func:`summarize` names it)."""
    flats, varying = _configs_and_varying_keys(runs)
    return [", ".join(f"{k}={f.get(k)}" for k in varying) or "all runs" for f in flats]


def write_report(root: str | Path, out: str | Path | None = None, target: float | None = None,
                 only: Sequence[str] | None = None) -> dict[str, Any]:
    """``report.md``, ``runs.csv`` (one row per run), ``summary.csv`` (one per group) and ``report.png``
    (``only``: see :func:`collect`)."""
    runs = collect(root, only)
    rows = summarize(runs, target)
    out = Path(out or root)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows)
    (out / "report.md").write_text(table + "\n", encoding="utf-8")
    labels = summarize_labels(runs, rows)
    with open(out / "runs.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        names = []
        for r in runs:
            names += [b["name"] for b in r["baselines"] if b["name"] not in names]
        w.writerow(["group", "run_dir", "seed", "test_accuracy", "val_accuracy", "kept_theta0", "steps", "queries",
                    "calls", *names, "whitebox_test_accuracy"])
        for r, label in zip(runs, labels):
            acc = {b["name"]: b["accuracy"] for b in r["baselines"]}
            w.writerow([label, r["run_dir"], r["seed"], r["test_accuracy"], r["val_accuracy"], r["kept_theta0"],
                        r["steps"], r["queries"], r["calls"], *[acc.get(n) for n in names],
                        r.get("whitebox", {}).get("test_accuracy")])
    with open(out / "summary.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["group", "n", "budget", "test_mean", "test_sd", "queries_mean", "kept_theta0", "baseline",
                    "baseline_mean", "gain_mean", "gain_sd", "seeds_above", "whitebox_mean", "whitebox_sd"])
        for r in rows:
            wb = r.get("whitebox") or {}
            for name, b in (r["baselines"].items() or [("", {})]):
                w.writerow([r["group"], r["n"], r["budget"], r["test_mean"], r["test_sd"], r["queries_mean"],
                            r["kept_theta0"], name, b.get("mean"), b.get("gain_mean"), b.get("gain_sd"),
                            b.get("above"), wb.get("mean"), wb.get("sd")])
    plot_report(runs, rows, out / "report.png")
    return {"rows": rows, "table": table, "runs": len(runs), "out": str(out), "results": runs}
