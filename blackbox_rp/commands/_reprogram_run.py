"""Shared machinery of ``blackbox-rp reprogram`` and ``blackbox-rp demo``: one reprogramming task, end to end.

Not a subcommand (the leading underscore keeps it out of discovery). It
loads the target task, splits it deterministically from the seed, measures the
two no-prompt baselines, fits the :class:`~blackbox_rp.reprogram.Reprogrammer`
under a budget with a progress bar, evaluates on test, and writes
``results.json`` and ``learning_curve.png``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

PHASES = ("train", "validation", "test", "baseline")


class LazyChoices:
    """argparse ``choices`` read from a registry only when a value is checked, so ``--help`` stays instant.

    ``prefixes`` accepts families such as ``ng:<name>`` (checked when the object is built).
    """

    def __init__(self, loader: Callable[[], Iterable[str]], prefixes: tuple[str, ...] = ()):
        self._loader = loader
        self._prefixes = prefixes

    def _names(self) -> list[str]:
        return sorted(self._loader())

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and (value in self._names() or value.startswith(self._prefixes))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


def _transform_names() -> list[str]:
    from blackbox_rp.transforms import TRANSFORMS

    return [n for n in TRANSFORMS if n != "none"]


def _mapping_names() -> list[str]:
    from blackbox_rp.mapping import MAPPINGS

    return list(MAPPINGS)


def _optimizer_names() -> list[str]:
    from blackbox_rp.optim import available

    return available()


def _loss_names() -> tuple[str, ...]:
    from blackbox_rp.losses import LOSSES

    return LOSSES


def _refit_names() -> tuple[str, ...]:
    from blackbox_rp.reprogram import REFITS

    return REFITS


TRANSFORM_CHOICES = LazyChoices(_transform_names)
MAPPING_CHOICES = LazyChoices(_mapping_names)
OPTIMIZER_CHOICES = LazyChoices(_optimizer_names, prefixes=("ng:",))
LOSS_CHOICES = LazyChoices(_loss_names)
REFIT_CHOICES = LazyChoices(_refit_names)


@dataclass(frozen=True)
class TaskSpec:
    """One reprogramming task as the CLI describes it."""

    model: str
    data: str
    transform: str
    mapping: str
    optimizer: str
    budget: int | None
    seed: int
    out: Path
    exposure: str = "probs"
    journal: Path | None = None
    loss: str = "ce"
    size: int = 64
    image_size: int | None = None
    splits: tuple[float, float, float] = (0.6, 0.2, 0.2)
    max_steps: int | None = None
    batch_size: int = 64
    eval_every: int = 25
    val_size: int | None = None
    refit: str = "auto"
    readout_lr: float = 1e-3
    transform_params: dict[str, Any] = field(default_factory=dict)
    mapping_params: dict[str, Any] = field(default_factory=dict)
    optimizer_params: dict[str, Any] | None = None  # None: the measured recommendation
    zero_shot_mapping: str | None = None
    linear_probe: bool = True
    probe_views: tuple[int, ...] = ()  # image sizes of a multi-view linear probe (empty: none)
    whitebox_steps: int = 0
    progress: bool = True
    title: str = "blackbox-rp reprogram"


def _ledger_dict(snapshot: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    zero = {"queries": 0, "calls": 0, "cache_hits": 0}
    out = {p: {**zero, **snapshot.get(p, {})} for p in PHASES}
    out["total"] = {**zero, **snapshot.get("total", {})}
    return out


def plot_curve(curve: list[dict[str, float]], path: Path, title: str, lines: dict[str, float]) -> None:
    """The learning curve (validation accuracy against train + validation queries) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    ax.plot([c["queries"] for c in curve], [100 * c["val_accuracy"] for c in curve], marker="o", ms=3,
            label="reprogrammed (validation)")
    styles = iter(["--", ":", "-."])
    for name, value in lines.items():
        if value is not None:
            ax.axhline(100 * value, ls=next(styles, "--"), color="grey", lw=1, label=f"{name}: {100 * value:.1f}%")
    ax.set_xlabel("queries spent (train + validation)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_task(spec: TaskSpec) -> dict[str, Any]:
    """Run one task and write ``results.json`` and ``learning_curve.png`` into ``spec.out``."""
    import numpy as np
    from tqdm import tqdm

    from blackbox_rp.baselines import canvas_options, multiview_probe, output_only
    from blackbox_rp.data import load_target, split_dataset
    from blackbox_rp.ledger import Budget, Ledger
    from blackbox_rp.reprogram import Reprogrammer
    from oracles import TorchOracle

    t_start = time.monotonic()
    spec.out.mkdir(parents=True, exist_ok=True)
    budget = Budget(max_queries=spec.budget, phases=("train", "validation")) if spec.budget is not None else None
    oracle = TorchOracle(spec.model, exposure=spec.exposure, ledger=Ledger(budget), journal=spec.journal,
                         max_batch=256)
    data = load_target(spec.data)
    train, val, test = split_dataset(data, spec.splits, spec.seed)
    size = oracle.input_spec.height or spec.size
    # the transform's options; the baselines take the canvas ones (image size, background) from them
    canvas = {**({} if spec.image_size is None else {"image_size": spec.image_size}), **spec.transform_params}
    mapping_params = dict(spec.mapping_params)
    rp = Reprogrammer.build(spec.transform, oracle, spec.mapping, spec.optimizer, train, out_size=size,
                            seed=spec.seed, transform_params=canvas,
                            mapping_params=mapping_params, optimizer_params=spec.optimizer_params,
                            loss=spec.loss, max_steps=spec.max_steps, batch_size=spec.batch_size,
                            eval_every=spec.eval_every, val_size=spec.val_size, refit=spec.refit,
                            readout_lr=spec.readout_lr)
    print(f"{spec.title}: {oracle.identity} -> {data.name} ({data.num_classes} classes); "
          f"split {len(train)}/{len(val)}/{len(test)} (seed {spec.seed})", file=sys.stderr)
    print(f"transform {spec.transform}: θ has {rp.transform.dim} dimensions; mapping {spec.mapping}; "
          f"optimizer {spec.optimizer} ({rp.optimizer.queries_per_step} queries/step x {spec.batch_size} images)",
          file=sys.stderr)
    zs_name = spec.zero_shot_mapping or spec.mapping
    zero_shot = output_only(oracle, zs_name, train, test, out_size=size, seed=spec.seed, canvas=canvas,
                            **(mapping_params if zs_name == spec.mapping else {}))
    probe = output_only(oracle, "linear", train, test, out_size=size, seed=spec.seed, canvas=canvas) \
        if spec.linear_probe and zs_name != "linear" else (zero_shot if spec.linear_probe else None)
    multiview = multiview_probe(oracle, train, test, out_size=size, seed=spec.seed,
                                views=[{**canvas_options(canvas), "image_size": v} for v in spec.probe_views]) \
        if spec.probe_views else None
    total = spec.budget or (spec.max_steps or 0) * rp.optimizer.queries_per_step * spec.batch_size or None
    with tqdm(total=total, unit="q", desc="reprogramming", file=sys.stderr, disable=not spec.progress,
              dynamic_ncols=True) as bar:
        def on_step(info: Any) -> None:
            bar.update(info.queries - bar.n)
            if info.val_accuracy is not None:
                bar.set_postfix(val=f"{100 * info.val_accuracy:.1f}%")

        fit = rp.fit(train, val, callback=on_step)
        bar.update(fit.queries - bar.n)
    test_eval = rp.evaluate(test)
    results: dict[str, Any] = {
        "test_accuracy": test_eval["accuracy"],
        "zero_shot_accuracy": zero_shot["accuracy"],
        "zero_shot_mapping": zs_name,
        "linear_probe_accuracy": None if probe is None else probe["accuracy"],
        "val_accuracy": fit.val_accuracy,
        "black_box": True,
        "seed": spec.seed,
        "splits": {"train": len(train), "validation": len(val), "test": len(test), "dataset": data.name},
        "budget": spec.budget,
        "fit": fit.to_dict(),
        "config": {"model": spec.model, "data": spec.data, "transform": spec.transform, "mapping": spec.mapping,
                   "optimizer": spec.optimizer, "exposure": spec.exposure, "loss": spec.loss, "size": size,
                   "journal": None if spec.journal is None else str(spec.journal),
                   "reprogrammer": rp.describe()},
    }
    if multiview is not None:
        results["multiview_probe"] = {"image_sizes": list(spec.probe_views), "accuracy": multiview["accuracy"],
                                      "queries_per_image": len(spec.probe_views)}
    if spec.whitebox_steps:
        from blackbox_rp.mapping import make_mapping
        from blackbox_rp.transforms import make_transform
        from blackbox_rp.whitebox import WhiteboxConfig, whitebox_fit

        t = make_transform(spec.transform, in_shape=tuple(train.x.shape[1:]), out_size=size,
                           channels=oracle.input_spec.channels or 3, seed=spec.seed,
                           **canvas)
        m = make_mapping(spec.mapping, oracle.num_classes, train.num_classes, seed=spec.seed, **mapping_params)
        wb = whitebox_fit(t, oracle, m, train, val, test,
                          WhiteboxConfig(steps=spec.whitebox_steps, batch_size=spec.batch_size, seed=spec.seed,
                                         lr=0.001 if spec.mapping == "linear" else 0.05))
        wb.pop("theta")
        results["whitebox"] = wb
    results["ledger"] = _ledger_dict(oracle.ledger.snapshot())
    results["wall_seconds"] = round(time.monotonic() - t_start, 1)
    np.save(spec.out / "theta.npy", fit.theta)
    (spec.out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    plot_curve(fit.curve, spec.out / "learning_curve.png",
               f"{spec.transform} + {spec.mapping}, {spec.optimizer}: {oracle.identity.split('@')[0]} → {data.name}",
               {f"no prompt, {zs_name}": zero_shot["accuracy"],
                "no prompt, linear probe": None if probe is None or probe is zero_shot else probe["accuracy"]})
    if spec.journal is not None and oracle.journal is not None:
        oracle.journal.close()
    return results


def print_summary(results: dict[str, Any], out: Path) -> None:
    """The lines a person reads at the end of a run."""
    led = results["ledger"]
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    print(f"zero-shot ({results['zero_shot_mapping']}, no prompt):  {pct(results['zero_shot_accuracy'])}")
    print(f"output-only linear probe (no prompt): {pct(results['linear_probe_accuracy'])}")
    if "multiview_probe" in results:
        mv = results["multiview_probe"]
        print(f"linear probe on {len(mv['image_sizes'])} views ({'+'.join(map(str, mv['image_sizes']))} px, no prompt, "
              f"{mv['queries_per_image']} queries/image): {pct(mv['accuracy'])}")
    print(f"reprogrammed, black-box:             {pct(results['test_accuracy'])}  "
          f"(validation {pct(results['val_accuracy'])})")
    if "whitebox" in results:
        print(f"white-box ceiling (NOT black-box):   {pct(results['whitebox']['test_accuracy'])}")
    tv = led["train"]["queries"] + led["validation"]["queries"]
    tvc = led["train"]["calls"] + led["validation"]["calls"]
    print(f"spent: {tv} queries / {tvc} calls on train+validation, {led['test']['queries']} queries / "
          f"{led['test']['calls']} calls on test, {led['baseline']['queries']} queries / "
          f"{led['baseline']['calls']} calls on the baselines; {led['total']['cache_hits']} answered from the journal")
    print(f"results: {out / 'results.json'}  learning curve: {out / 'learning_curve.png'}  "
          f"({results['wall_seconds']:.0f} s)")
