"""Robustness under API limits: one reprogramming task run against poorer and poorer exposures.

The same task (transform, mapping, optimizer, budget, split, seed) is run
through the same model shown through each exposure — full probabilities,
top-k, top-1, label only, rounded scores, scores with seeded noise — and each
run reports its test accuracy and the queries it spent. Nothing but the
exposure changes, so the differences are what the API's limits cost.

A mapping that needs more than an exposure gives (``blm+`` needs top-k) is
refused by the toolkit when the run is built; the study records that row as
``refused`` with the reason instead of silently swapping the mapping.

Example (seconds on a CPU)::

    >>> from blackbox_rp.data import load_dataset, split_dataset
    >>> from blackbox_rp.studies.exposure_study import ExposureStudy, run_exposure_study
    >>> from oracles import TorchOracle
    >>> import numpy as np
    >>> d = load_dataset("digits")
    >>> train, val, test = split_dataset(d.subset(np.arange(400)), (0.6, 0.2, 0.2), seed=0)
    >>> make = lambda exposure, ledger: TorchOracle("fmnist-cnn", exposure=exposure, ledger=ledger)
    >>> rows = run_exposure_study(make, train, val, test,
    ...                           ExposureStudy(exposures=("probs", "label"), mapping="blm", max_steps=3, out_size=28))
    >>> [r["exposure"] for r in rows]
    ['probs', 'label']
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from ..data import Dataset
from ..exposure import ExposureError, parse_exposure
from ..ledger import Budget, Ledger

logger = logging.getLogger(__name__)

__all__ = ["ExposureStudy", "run_exposure_study", "study_dict", "DEFAULT_EXPOSURES"]

#: probabilities, top-5, top-1, label only, scores rounded to 1 decimal, scores with noise of sd 0.05
DEFAULT_EXPOSURES = ("probs", "top5", "top1", "label", "rounded1", "noisy0.05")


@dataclass(frozen=True)
class ExposureStudy:
    """The task every exposure runs: transform, mapping, optimizer and their options, budget, seed."""

    exposures: tuple[str, ...] = DEFAULT_EXPOSURES
    transform: str = "lowdim"
    transform_params: tuple[tuple[str, Any], ...] = ()
    mapping: str = "blm"
    optimizer: str = "zo-adam"
    budget: int | None = None
    max_steps: int | None = None
    batch_size: int = 64
    eval_every: int = 10
    out_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.transform_params, dict):
            object.__setattr__(self, "transform_params", tuple(sorted(self.transform_params.items())))
        if not self.exposures:
            raise ValueError("ExposureStudy.exposures is empty: name at least one exposure (e.g. 'probs')")
        for e in self.exposures:
            parse_exposure(e)  # an unknown exposure is refused now, not half-way through the study
        if self.budget is None and self.max_steps is None:
            raise ValueError("ExposureStudy needs a bound on each run: give budget or max_steps")
        for name in ("budget", "max_steps"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"ExposureStudy.{name} must be a positive int or None, got {v!r}")


def run_exposure_study(make_oracle: Callable[[str, Ledger], Any], train: Dataset, val: Dataset, test: Dataset,
                       study: ExposureStudy) -> list[dict[str, Any]]:
    """One row per exposure: test accuracy, train + validation queries, calls, seconds (or why it was refused).

    ``make_oracle(exposure, ledger)`` returns an oracle showing the model through that exposure and
    counting in ``ledger`` — a fresh one per exposure, holding ``Budget(max_queries=study.budget,
    phases=("train", "validation"))`` when the study has a budget, so every row has the same allowance.
    """
    from ..reprogram import Reprogrammer

    rows = []
    for exposure in study.exposures:
        oracle = make_oracle(exposure, Ledger(None if study.budget is None else
                                             Budget(max_queries=study.budget, phases=("train", "validation"))))
        row: dict[str, Any] = {"exposure": parse_exposure(exposure).key(), "seed": study.seed,
                               "mapping": study.mapping, "transform": study.transform}
        t0 = time.monotonic()
        try:
            rp = Reprogrammer.build(study.transform, oracle, study.mapping, study.optimizer, train,
                                    out_size=study.out_size, seed=study.seed,
                                    transform_params=dict(study.transform_params), max_steps=study.max_steps,
                                    batch_size=study.batch_size, eval_every=study.eval_every)
        except ExposureError as e:
            row.update(status="refused", reason=str(e).split(". ")[0])
            rows.append(row)
            continue
        fit = rp.fit(train, val)
        ev = rp.evaluate(test)
        led = oracle.ledger
        at_best = [c["queries"] for c in fit.curve if c["step"] == fit.best_step]
        row.update(status="ok", test_accuracy=ev["accuracy"], val_accuracy=fit.val_accuracy, steps=fit.steps,
                   queries=fit.queries, queries_at_best=at_best[0] if at_best else fit.queries, calls=led.counts("train").calls + led.counts("validation").calls,
                   test_queries=ev["queries"], seconds=time.monotonic() - t0, stop_reason=fit.stop_reason)
        logger.info("exposure %s: test accuracy %.4f after %d queries", row["exposure"], ev["accuracy"], fit.queries)
        rows.append(row)
    return rows


def study_dict(study: ExposureStudy) -> dict[str, Any]:
    d = asdict(study)
    d["transform_params"] = dict(study.transform_params)
    return d
