"""One run in its own directory: everything checked before the first query, everything kept after.

A run directory holds:

* ``config.toml`` — the resolved config (what ``blackbox-rp resume`` reads back);
* ``environment.json`` — package versions, torch threads, Python, machine;
* ``journal.sqlite`` — every answered query (the SQLite journal of the oracle);
* ``results.json`` — written last, atomically: its presence means the run finished
  (schema: :data:`RESULTS_SCHEMA`, documented in the README);
* ``theta.npy``, ``mapping.npz`` — what the run learned (``blackbox-rp apply`` uses them);
* ``learning_curve.png`` — validation accuracy against queries, the test baselines on their own panel.

**Resume is replay.** Every random choice of a run comes from its seed, and the fit's
bookkeeping (the budget counts replayed answers as queries) does not depend on whether an
answer came from the model or the journal. So a run killed at any point and started again in
the same directory sends the same queries in the same order; the journal answers every one
already paid for without a call, and the run ends with the θ, ω and accuracy an uninterrupted
run reaches. No checkpoint of the optimizer is needed, and none can disagree with the journal.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import RunConfig, dumps_toml, load
from .preflight import RunPlan, plan_run
from .text_baselines import KIND as HAND_PROMPT, run_text_baselines, text_baselines

logger = logging.getLogger(__name__)

__all__ = ["RESULTS_SCHEMA", "RESULTS_VERSION", "Prepared", "prepare", "run", "resume", "is_finished",
           "read_results", "summary_lines", "plot_curve", "environment", "canvas_for", "RunTransform",
           "run_transform", "run_modality"]

RESULTS_SCHEMA = "blackbox-rp/results"
RESULTS_VERSION = 1
PHASES = ("train", "validation", "test", "baseline")


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (another config, not a run directory)."""


def environment() -> dict[str, Any]:
    """What produced a result: versions, threads, machine (never environment variables: keys live there)."""
    from importlib import metadata

    import torch

    versions = {}
    for pkg in ("blackbox-rp", "numpy", "torch", "scikit-learn", "nevergrad", "cma", "httpx", "distributed"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "packages": versions,
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def canvas_for(cfg: RunConfig, spec: Any, model: str) -> tuple[int, int]:
    """(canvas side, image side): the canvas follows the model unless the config names one it accepts."""
    fixed = spec.height if spec.height is not None and spec.height == spec.width else None
    size = cfg.transform.size
    if size is None:
        size = fixed or max(64, spec.min_size)
    elif fixed is not None and size != fixed:
        raise ValueError(f"transform.size = {size} (--size) but model {model} takes exactly {fixed} px; "
                         f"leave it out (the canvas follows the model) or give {fixed}")
    elif size < spec.min_size:
        raise ValueError(f"transform.size = {size} (--size) is below what model {model} takes "
                         f"(at least {spec.min_size} px)")
    image = cfg.transform.image_size if cfg.transform.image_size is not None else max(1, round(size * 0.75))
    if image > size:
        raise ValueError(f"transform.image_size = {image} (--image-size) does not fit the {size} px canvas; "
                         f"give at most {size}")
    return int(size), int(image)


@dataclass(frozen=True)
class RunTransform:
    """I_θ as a run builds it: the transform, the canvas side (None for text) and the parameters it was
    built with (the canvas's image size and the config's own, recorded in results)."""

    transform: Any
    size: int | None
    params: dict[str, Any]


def run_modality(cfg: RunConfig) -> str:
    """"image" or "text": the kind of target inputs the run's transform takes."""
    from ..transforms import TRANSFORMS

    return TRANSFORMS.lookup(cfg.transform.name).modality


def run_transform(cfg: RunConfig, oracle: Any, train: Any) -> RunTransform:
    """The run's I_θ, built through the transform protocol from its training split and the oracle's input
    spec. The one place a run's transform is made: ``run`` fits it, ``apply`` rebuilds it from the same
    split, so a text prompt ranks the same candidate words and an image prompt gets the same canvas."""
    from ..transforms import build_transform

    if run_modality(cfg) == "text":  # no canvas: the transform's parameters are the prompt's (template, slots, ...)
        size, params = None, dict(cfg.transform.params)
        built = build_transform(cfg.transform.name, train, oracle, seed=cfg.task.seed, **params)
    else:
        size, image = canvas_for(cfg, oracle.input_spec, cfg.oracle.model)
        params = {"image_size": image, **cfg.transform.params}
        built = build_transform(cfg.transform.name, train, oracle, seed=cfg.task.seed, out_size=size, **params)
    return RunTransform(built, size, params)


@dataclass
class Prepared:
    """Everything a run needs, built and checked without a query."""

    cfg: RunConfig
    run_dir: Path | None
    oracle: Any
    data: Any
    train: Any
    val: Any
    test: Any
    size: int | None  # None: a text run (no canvas)
    canvas: dict[str, Any]
    rp: Any
    plan: RunPlan
    baselines: list[dict[str, Any]] = field(default_factory=list)  # name, kind, mapping, skipped


def _baselines(cfg: RunConfig, oracle: Any, train: Any) -> list[dict[str, Any]]:
    """The no-prompt baselines, named for what they are; those the exposure cannot support are skipped."""
    from ..exposure import ExposureError
    from ..mapping import make_mapping

    def named(m: str) -> str:
        return "no prompt + linear probe" if m == "linear" else f"no prompt + {m} mapping"

    wanted: list[tuple[str, str, str]] = [(named(cfg.mapping.name), "no-prompt", cfg.mapping.name)]
    zs = cfg.baselines.no_prompt_mapping
    if zs is not None and zs != cfg.mapping.name:
        wanted.append((named(zs), "no-prompt", zs))
    if cfg.baselines.linear_probe and "linear" not in (cfg.mapping.name, zs):
        wanted.append(("no prompt + linear probe", "no-prompt", "linear"))
    if cfg.baselines.probe_views:
        views = "+".join(map(str, cfg.baselines.probe_views))
        wanted.append((f"no prompt + linear probe on {len(cfg.baselines.probe_views)} views ({views} px)",
                       "multiview-probe", "linear"))
    out = []
    for name, kind, mapping in wanted:
        skipped = None
        try:
            make_mapping(mapping, oracle.num_classes, train.num_classes).check(oracle)
        except ExposureError:
            need = make_mapping(mapping, oracle.num_classes, train.num_classes).needs
            skipped = (f"skipped: it needs {need} outputs and the exposure {oracle.exposure.key()} "
                       f"gives {oracle.level}")
        out.append({"name": name, "kind": kind, "mapping": mapping, "skipped": skipped})
    return out


def _journal_path(run_dir: Path) -> Path:
    return run_dir / "journal.sqlite"


def _claim(cfg: RunConfig, run_dir: Path) -> None:
    """Write config.toml, or check that the one there is this run's (a directory holds one run)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a file; give a directory for the run (--out)")
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.toml"
    text = dumps_toml(cfg)
    if path.exists():
        if load(path) != cfg:
            raise RunDirError(f"{run_dir} holds a run of another config ({path}); give another directory, "
                              f"or `blackbox-rp resume {run_dir}` to finish that run")
        return
    if any(run_dir.iterdir()):
        raise RunDirError(f"{run_dir} is not empty and is not a run directory (no config.toml); give a new or "
                          f"empty directory")
    path.write_text(text, encoding="utf-8")


def prepare(cfg: RunConfig, run_dir: Path | None) -> Prepared:
    """Resolve the oracle, load and split the data, build the reprogrammer and plan the budget: no query.

    ``run_dir`` None only checks (nothing is written; a sweep checks every point this way first)."""
    from ..data import load_target, split_dataset
    from ..ledger import Budget, Ledger
    from ..reprogram import Reprogrammer
    from ..textdata import load_text_target
    from oracles.resolve import resolve_oracle

    from ..cache import Journal

    budgets = [Budget(max_queries=cfg.budget.queries, phases=("train", "validation"))] \
        if cfg.budget.queries is not None else []
    budgets += [Budget(max_queries=n, phases=(p,)) for p, n in (("baseline", cfg.budget.baseline),
                                                               ("test", cfg.budget.test)) if n is not None]
    o = cfg.oracle
    oracle = resolve_oracle(o.model, exposure=o.exposure, ledger=Ledger(budgets or None),
                            journal=None, max_batch=o.max_batch, api_key_env=o.api_key_env,
                            wire=o.wire, openai=o.openai, timeout=o.timeout, seed=cfg.task.seed,
                            max_in_flight=o.max_in_flight)
    kind = _check_modality(cfg, oracle)
    data = load_text_target(cfg.task.data) if kind == "text" else load_target(cfg.task.data)
    train, val, test = split_dataset(data, cfg.task.split, cfg.task.seed)
    built = run_transform(cfg, oracle, train)
    size, canvas = built.size, built.params
    opt_params = cfg.optimizer.resolved_params(cfg.mapping.name)
    f = cfg.fit
    rp = Reprogrammer.build(built.transform, oracle, cfg.mapping.name, cfg.optimizer.name, train,
                            seed=cfg.task.seed, mapping_params=dict(cfg.mapping.params),
                            optimizer_params=opt_params, loss=cfg.loss.name, loss_params=dict(cfg.loss.params),
                            max_steps=cfg.budget.max_steps, batch_size=f.batch_size, eval_every=f.eval_every,
                            val_size=f.val_size, refit=f.refit, readout_lr=f.readout_lr,
                            candidate_folds=f.candidate_folds)
    plan = plan_run(rp, cfg.budget.queries, cfg.budget.max_steps, len(train), len(val))
    # only a run that passed every check claims its directory (a refused one leaves nothing behind)
    if run_dir is not None:
        _claim(cfg, run_dir)
        oracle.journal = Journal(_journal_path(run_dir))
    else:
        _close(oracle)
    baselines = text_baselines(cfg, oracle, train) if kind == "text" else _baselines(cfg, oracle, train)
    return Prepared(cfg, run_dir, oracle, data, train, val, test, size, canvas, rp, plan, baselines)


def _check_modality(cfg: RunConfig, oracle: Any) -> str:
    """The model's input kind, refused in one line when the transform makes the other kind of input."""
    kind = oracle.input_spec.kind
    made = run_modality(cfg)
    model = cfg.oracle.model
    if kind not in ("image", "text"):
        raise ValueError(f"model {model} takes {oracle.input_spec.describe()}; runs reprogram image or text models")
    if made != kind:
        other = ("discrete (a text prompt) or soft (soft prompt embeddings)" if kind == "text"
                 else "pad, full, lowdim or coordinator (image prompts)")
        raise ValueError(f"transform {cfg.transform.name} makes {made} inputs but model {model} takes "
                         f"{oracle.input_spec.describe()}; use transform {other}")
    if kind == "text":
        for key in ("size", "image_size"):
            if getattr(cfg.transform, key) is not None:
                raise ValueError(f"transform.{key} (--{key.replace('_', '-')}) sets an image canvas but model "
                                 f"{model} takes text; leave it out")
    return kind


def _ledger_dict(snapshot: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    zero = {"queries": 0, "calls": 0, "cache_hits": 0, "cost": 0.0}
    out = {p: {**zero, **snapshot.get(p, {})} for p in PHASES}
    out["total"] = {**zero, **snapshot.get("total", {})}
    return out


def _save_mapping(mapping: Any, path: Path) -> None:
    """ω's state; a token mapping's also names the vocabulary its ids index (``apply`` checks it)."""
    from ..mapping.tokens import TokenMapping
    from ..vocab import fingerprint

    state = mapping.state_dict()
    if isinstance(mapping, TokenMapping) and mapping.vocabulary is not None:
        state["vocabulary"] = fingerprint(mapping.vocabulary)
    arrays = {f"array_{k}": v for k, v in state.pop("arrays").items()}
    np.savez(path, meta=np.array(json.dumps(state, default=float)), **arrays)


def load_mapping_state(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        state = json.loads(str(z["meta"]))
        state["arrays"] = {k[len("array_"):]: z[k] for k in z.files if k.startswith("array_")}
    return state


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _progress(enabled: bool, total: int | None) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="q", desc="baselines", file=sys.stderr, disable=not enabled, dynamic_ncols=True)


#: below this many examples, a split's accuracy is too coarse to read alone: the run says so
SMALL_SPLIT = 30


def split_warnings(n_val: int, n_test: int) -> tuple[str, ...]:
    """Warnings for validation / test splits too small for their accuracy to mean much (the widest 95% Wilson
    interval, at 50% accuracy, is quoted so the user sees how coarse it is)."""
    from ..studies.metrics import wilson_interval

    out = []
    for name, n in (("validation", n_val), ("test", n_test)):
        if n < SMALL_SPLIT:
            lo, hi = wilson_interval(n // 2, n)
            out.append(f"the {name} split has {n} example(s): one example moves its accuracy by {100 / n:.0f} "
                       f"points and a 95% interval spans up to {100 * (hi - lo):.0f} points; use at least "
                       f"{SMALL_SPLIT} for a number worth reading")
    return tuple(out)


def execute(p: Prepared, *, progress: bool = True, echo: Callable[[str], None] | None = None,
            on_step: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Spend the queries: baselines, fit, test; write every file of the run directory.

    ``on_step`` gets the fit's :class:`~blackbox_rp.reprogram.StepInfo` after every step."""
    from ..baselines import canvas_options, multiview_probe, output_only

    cfg, oracle, rp = p.cfg, p.oracle, p.rp
    echo = echo or logger.info  # the CLI passes one that prints
    t0 = time.monotonic()
    (p.run_dir / "environment.json").write_text(json.dumps(environment(), indent=2))
    text = p.size is None
    where = (f"hand-written prompt {rp.transform.readable(rp.transform.init_theta())!r}" if text else
             f"canvas {p.size} px, image {p.canvas['image_size']} px")
    echo(f"run {p.run_dir}: {oracle.identity} -> {p.data.name} ({p.data.num_classes} classes); split "
         f"{len(p.train)}/{len(p.val)}/{len(p.test)} (seed {cfg.task.seed}); {where}")
    echo(f"transform {cfg.transform.name} (θ: {rp.transform.space.dim} dims), mapping {cfg.mapping.name}, optimizer "
         f"{cfg.optimizer.name} ({rp.optimizer.queries_per_step} queries/step x {cfg.fit.batch_size} {'texts' if text else 'images'}), "
         f"exposure {oracle.exposure.key()}")
    plan = p.plan
    if plan.steps is None:
        echo("budget plan: unbounded (no budget and no step limit)")
    else:
        echo(f"budget plan: {plan.steps} steps, each judged on validation; {plan.spent} of "
             f"{plan.budget if plan.budget is not None else 'unbounded'} train+validation queries")
    for w in plan.warnings + split_warnings(len(p.val), len(p.test)):
        echo(f"warning: {w}")
    for b in p.baselines:
        if b["skipped"]:
            echo(f"baseline {b['name']}: {b['skipped']}")
    n_base = len(p.train) + len(p.test)
    base_cost = sum(n_base * (len(cfg.baselines.probe_views) if b["kind"] == "multiview-probe" else 1)
                    for b in p.baselines if not b["skipped"] and b["kind"] != HAND_PROMPT)
    if any(b["kind"] == HAND_PROMPT and not b["skipped"] for b in p.baselines):
        base_cost += n_base  # the hand-prompt baselines share one set of θ₀ answers
    total = base_cost + (plan.spent or 0) + len(p.test)
    results_baselines = []
    led = oracle.ledger
    with _progress(progress, total) as bar:
        def sync() -> None:
            t = led.snapshot().get("total", {})
            bar.update(int(t.get("queries", 0)) - bar.n)

        notes: dict[str, str] = {}
        hand = run_text_baselines(cfg, oracle, rp.transform, p.train, p.test, p.baselines, notes) if text else {}
        for b in p.baselines:
            acc = None
            if not b["skipped"]:
                if b["kind"] == HAND_PROMPT:
                    acc = hand[b["name"]]
                elif b["kind"] == "multiview-probe":
                    views = [{**canvas_options(p.canvas), "image_size": v} for v in cfg.baselines.probe_views]
                    acc = multiview_probe(oracle, p.train, p.test, out_size=p.size, seed=cfg.task.seed,
                                          views=views)["accuracy"]
                else:
                    params = dict(cfg.mapping.params) if b["mapping"] == cfg.mapping.name else {}
                    acc = output_only(oracle, b["mapping"], p.train, p.test, out_size=p.size, seed=cfg.task.seed,
                                      canvas=p.canvas, **params)["accuracy"]
            note = {"note": notes[b["name"]]} if b["name"] in notes else {}
            results_baselines.append({**b, "accuracy": acc, **note})
            sync()
        bar.set_description("fit")

        def step_done(info: Any) -> None:
            sync()
            if info.val_accuracy is not None:
                bar.set_postfix(val=f"{100 * info.val_accuracy:.1f}%")
            if on_step is not None:
                on_step(info)

        fit = rp.fit(p.train, p.val, callback=step_done)
        sync()
        bar.set_description("test")
        test_eval = rp.evaluate(p.test)
        sync()
        bar.set_description(f"done ({fit.stop_reason or 'finished'})")
    validated = bool(fit.curve)
    kept_theta0 = fit.best_step == 0
    test_acc = test_eval["accuracy"]
    results: dict[str, Any] = {
        "schema": RESULTS_SCHEMA, "schema_version": RESULTS_VERSION,
        "test_accuracy": test_acc,
        "val_accuracy": fit.val_accuracy if validated else None,
        "kept_theta0": kept_theta0,
        "steps": fit.steps, "best_step": fit.best_step, "stop_reason": fit.stop_reason,
        "baselines": results_baselines,
        "gain_over_baselines": {b["name"]: None if b["accuracy"] is None else test_acc - b["accuracy"]
                                for b in results_baselines},
        "seed": cfg.task.seed,
        "split": {"train": len(p.train), "validation": len(p.val), "test": len(p.test), "dataset": p.data.name},
        "classes": list(p.data.classes),
        "canvas": None if text else {"size": p.size, "image_size": p.canvas["image_size"]},
        "budget": {"queries": cfg.budget.queries, "max_steps": cfg.budget.max_steps,
                   "baseline": cfg.budget.baseline, "test": cfg.budget.test},
        "plan": plan.to_dict(),
        "warnings": list(plan.warnings + split_warnings(len(p.val), len(p.test))),
        "queries": fit.queries,
        "curve": list(fit.curve),
        "oracle": oracle.describe(),
        "reprogrammer": rp.describe(),
        "config": json.loads(json.dumps(_config_dict(cfg))),
    }
    if text:  # the prompts as strings anyone can reuse, the input left as {x}
        results["prompt"] = rp.transform.readable(fit.theta)
        results["hand_prompt"] = rp.transform.readable(rp.transform.init_theta())
    if cfg.baselines.whitebox_steps:
        results["whitebox"] = _whitebox(p)
    results["ledger"] = _ledger_dict(led.snapshot())
    results["calls"] = results["ledger"]["total"]["calls"]
    results["cost"] = results["ledger"]["total"]["cost"]
    results["wall_seconds"] = round(time.monotonic() - t0, 1)
    np.save(p.run_dir / "theta.npy", fit.theta)
    _save_mapping(rp.mapping, p.run_dir / "mapping.npz")
    plot_curve(results, p.run_dir / "learning_curve.png")
    _close(oracle)
    text = json.dumps(results, indent=2, default=float)
    _atomic_write(p.run_dir / "results.json", text)
    return json.loads(text)  # what the file holds, so a read-back run returns the same object


def _close(oracle: Any) -> None:
    """Close the journal and, for a remote oracle, its connection pool and event-loop thread."""
    from oracles.remote import AsyncRemoteOracle

    if isinstance(oracle, AsyncRemoteOracle):
        oracle.close()
    if oracle.journal is not None:
        oracle.journal.close()


def _config_dict(cfg: RunConfig) -> dict[str, Any]:
    from .config import to_dict

    return to_dict(cfg)


def _whitebox(p: Prepared) -> dict[str, Any]:
    """The white-box ceiling (backprop through the same transform + mapping): local torch models only."""
    from oracles import TorchOracle

    from ..mapping import make_mapping
    from ..whitebox import WhiteboxConfig, whitebox_fit

    if not isinstance(p.oracle, TorchOracle):
        return {"skipped": "the white-box ceiling needs a local torch model"}
    cfg = p.cfg
    t = run_transform(cfg, p.oracle, p.train).transform  # a fresh copy of the run's I_θ, from θ₀
    m = make_mapping(cfg.mapping.name, p.oracle.num_classes, p.train.num_classes, seed=cfg.task.seed,
                     **dict(cfg.mapping.params))
    b = cfg.baselines
    lr = b.whitebox_lr if b.whitebox_lr is not None else (0.001 if cfg.mapping.name == "linear" else 0.05)
    wb = whitebox_fit(t, p.oracle, m, p.train, p.val, p.test,
                      WhiteboxConfig(steps=b.whitebox_steps, batch_size=cfg.fit.batch_size, seed=cfg.task.seed,
                                     lr=lr, readout=b.whitebox_readout))
    wb.pop("theta")
    return wb


def plot_curve(results: dict[str, Any], path: Path) -> None:
    """Write :func:`curve_figure` as a PNG."""
    import matplotlib.pyplot as plt

    fig = curve_figure(results)
    fig.savefig(path)
    plt.close(fig)


def curve_figure(results: dict[str, Any]) -> Any:
    """Validation accuracy against queries (left) and the test accuracies beside the baselines (right):
    validation and test never share an unlabeled axis; every line stays inside [0, 100]%."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.6, 4.0), dpi=110, gridspec_kw={"width_ratios": [3, 2]})
    curve = results["curve"]
    xs = [c["queries"] for c in curve]
    ys = [100 * c["val_accuracy"] for c in curve]
    ax.plot(xs, ys, marker="o", ms=4, label="prompt, validation")
    if results["best_step"] is not None and curve:
        best = [c for c in curve if c["step"] == results["best_step"]]
        if best:
            ax.plot([best[0]["queries"]], [100 * best[0]["val_accuracy"]], "r*", ms=12, label="selected")
    ax.set_xlabel("train + validation queries spent")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_ylim(0, 102)
    if len(xs) == 1:
        ax.set_xlim(xs[0] - 1, xs[0] + 1)
    ax.set_title("validation (selection)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    names = ["prompt (selected)"] + [b["name"] for b in results["baselines"] if b["accuracy"] is not None]
    vals = [results["test_accuracy"]] + [b["accuracy"] for b in results["baselines"] if b["accuracy"] is not None]
    ypos = list(range(len(names)))[::-1]
    bx.barh(ypos, [100 * v for v in vals], color=["tab:blue"] + ["tab:grey"] * (len(vals) - 1))
    for y, v in zip(ypos, vals):
        bx.text(min(100 * v + 1, 88), y, f"{100 * v:.1f}%", va="center", fontsize=8)
    bx.set_yticks(ypos, [n.replace("no prompt + ", "no prompt +\n") for n in names], fontsize=7)
    bx.set_xlim(0, 100)
    bx.set_xlabel("test accuracy (%)")
    bx.set_title("test", fontsize=10)
    fig.suptitle(results.get("title") or f"{results['config']['transform']['name']} + "
                 f"{results['config']['mapping']['name']}, {results['config']['optimizer']['name']}: "
                 f"{results['oracle']['identity'].split('@')[0]} → {results['split']['dataset']}", fontsize=10)
    fig.tight_layout()
    return fig


def is_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / "results.json").is_file()


def read_results(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "results.json"
    r = json.loads(path.read_text())
    if r.get("schema") != RESULTS_SCHEMA or r.get("schema_version") != RESULTS_VERSION:
        raise ValueError(f"{path} is not a {RESULTS_SCHEMA} v{RESULTS_VERSION} file")
    return r


def run(cfg: RunConfig, run_dir: str | Path, *, progress: bool = True,
        echo: Callable[[str], None] | None = None, on_step: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Run ``cfg`` in ``run_dir``; a finished run is read back, an unfinished one replays from its journal."""
    run_dir = Path(run_dir)
    if is_finished(run_dir) and (run_dir / "config.toml").exists() and load(run_dir / "config.toml") == cfg:
        return read_results(run_dir)
    return execute(prepare(cfg, run_dir), progress=progress, echo=echo, on_step=on_step)


def resume(run_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Finish the run in ``run_dir`` from its config.toml and journal (see the module docstring)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").is_file():
        raise RunDirError(f"{run_dir} is not a run directory (no config.toml)")
    return run(load(run_dir / "config.toml"), run_dir, **kwargs)


def summary_lines(r: dict[str, Any], run_dir: Path) -> list[str]:
    """What a person reads at the end of a run: never a placeholder as an accuracy."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    out = []
    for b in r["baselines"]:
        out.append(f"{b['name'] + ':':<48} {b['skipped'] or pct(b['accuracy'])}")
        if b.get("note"):
            out.append(f"  ({b['note']})")
    val = "never validated" if r["val_accuracy"] is None else f"validation {pct(r['val_accuracy'])}"
    text = "prompt" in r
    mine = f"learned prompt + {r['config']['mapping']['name']}, black-box (test):" if text else \
        "prompt, black-box (test):"
    out.append(f"{mine:<48} {pct(r['test_accuracy'])}  ({val}; {r['steps']} steps, best at step {r['best_step']})")
    if "prompt" in r:
        out.append(f"{'hand-written prompt:':<48} {r['hand_prompt']!r}")
        out.append(f"{'learned prompt:':<48} {r['prompt']!r}")
    if r["kept_theta0"]:
        start = "the hand-written prompt" if "prompt" in r else "no prompt"
        out.append(f"selection kept θ₀ ({start}): no moved prompt beat it on validation, so the test accuracy "
                   f"above is {start} with the fitted mapping")
    gains = [f"{name}: {100 * g:+.1f} points" for name, g in r["gain_over_baselines"].items() if g is not None]
    if gains:
        out.append(f"{'learned prompt' if text else 'prompt'} over baselines (paired: same seed and split): "
                   + "; ".join(gains))
    probe = next((b for b in r["baselines"] if b["name"].startswith("text probe") and b["accuracy"] is not None),
                 None)
    if text and probe is not None and not r["kept_theta0"]:  # what the search added beyond the readout alone
        g = 100 * (r["test_accuracy"] - probe["accuracy"])
        same = probe["mapping"] == r["config"]["mapping"]["name"]
        if g > 0:
            out.append(f"the learned prompt beats the text probe by {g:+.1f} points on this split"
                       + (" (the same readout on the hand-written prompt): the search paid" if same else ""))
        elif same:
            out.append(f"the prompt search did NOT beat the text probe on this split ({g:+.1f} points): the gain "
                       f"over zero-shot is the readout's, not the learned prompt's")
        else:
            out.append(f"the learned prompt + {r['config']['mapping']['name']} stays under the text probe on this "
                       f"split ({g:+.1f} points): a readout of the hand-written prompt's answers reads more")
    if "whitebox" in r:
        wb = r["whitebox"]
        out.append(f"{'white-box ceiling (NOT black-box):':<48} "
                   f"{wb.get('skipped') or pct(wb.get('test_accuracy'))}")
    led = r["ledger"]
    out.append(f"stopped: {r['stop_reason'] or 'finished'}")
    out.append(f"spent: {led['train']['queries'] + led['validation']['queries']} train+validation queries "
               f"({led['train']['calls'] + led['validation']['calls']} calls), {led['test']['queries']} test, "
               f"{led['baseline']['queries']} baseline; {led['total']['calls']} calls in all, "
               f"{led['total']['cache_hits']} answered from the journal")
    out.append(f"results: {run_dir / 'results.json'}  plot: {run_dir / 'learning_curve.png'}  "
               f"({r['wall_seconds']:.0f} s)")
    return out
