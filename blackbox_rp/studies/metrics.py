"""Backdoor metrics with confidence intervals: clean accuracy and attack success rate (ASR).

ASR is measured the way the literature defines it and easy studies get wrong:
only inputs whose *true* class is not the target are triggered and counted (a
target-class image classified as the target is no attack). Both metrics are
binomial proportions and carry a Wilson score interval, which stays inside
[0, 1] and behaves at 0% and 100%, where ASR often sits.

``predict`` is any callable from images to labels: the suspect model's oracle
(``lambda x: oracle(x, phase="test").labels``) or a defended pipeline
(``reprogrammer.predict``), so the same code measures both.

Example::

    >>> from blackbox_rp.studies.metrics import wilson_interval
    >>> lo, hi = wilson_interval(95, 100)
    >>> round(lo, 3), round(hi, 3)
    (0.888, 0.978)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..data import Dataset

logger = logging.getLogger(__name__)

__all__ = ["Rate", "wilson_interval", "clean_accuracy", "attack_success_rate", "backdoor_metrics"]


def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials (95% by default); (0, 1) when n = 0."""
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at k = 0 (k = n) the bound is exactly 0 (1); say so rather than leave a rounding residue
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


@dataclass(frozen=True)
class Rate:
    """A proportion k / n with its 95% Wilson interval."""

    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n)

    def to_dict(self) -> dict[str, float]:
        lo, hi = self.interval
        return {"value": self.value, "k": self.k, "n": self.n, "ci_low": lo, "ci_high": hi}

    def __str__(self) -> str:
        lo, hi = self.interval
        return f"{100 * self.value:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] (n={self.n})"


def clean_accuracy(pred: np.ndarray, y: np.ndarray) -> Rate:
    """Correct predictions on clean inputs."""
    pred, y = np.asarray(pred), np.asarray(y)
    if pred.shape != y.shape:
        raise ValueError(f"{pred.shape[0] if pred.ndim else 0} predictions for {len(y)} labels")
    return Rate(int((pred == y).sum()), len(y))


def attack_success_rate(pred_triggered: np.ndarray, y_true: np.ndarray, target: int) -> Rate:
    """Triggered inputs whose true class is not ``target`` that are classified as ``target``.

    ``pred_triggered[i]`` is the prediction on the triggered version of an input of true class
    ``y_true[i]``; rows of the target class are left out of both numerator and denominator.
    """
    pred, y = np.asarray(pred_triggered), np.asarray(y_true)
    if pred.shape != y.shape:
        raise ValueError(f"{len(pred)} predictions for {len(y)} labels")
    keep = y != target
    return Rate(int((pred[keep] == target).sum()), int(keep.sum()))


def backdoor_metrics(predict: Callable[[np.ndarray], np.ndarray], test: Dataset,
                     trigger: Callable[[np.ndarray], np.ndarray] | None = None,
                     target: int | None = None) -> dict[str, Rate]:
    """Clean accuracy on ``test`` and, with a trigger, on its non-target rows (only those are triggered, so no
    query is spent on rows ASR does not count): ``asr`` and ``triggered_accuracy``, the share of triggered
    inputs still given their *true* class.

    Why the second: a defense that scrambles every answer also has a low ASR. Under REFINE's derangement
    the trigger's target is mapped away even when the trigger still works, so ASR alone flatters it;
    triggered accuracy says whether the pipeline recovered the right class.
    """
    out = {"clean_accuracy": clean_accuracy(predict(test.x), test.y)}
    if trigger is not None:
        if target is None:
            raise ValueError("an ASR needs the attack's target class: pass target=")
        keep = np.flatnonzero(test.y != target)
        pred = predict(trigger(test.x[keep]))
        out["asr"] = attack_success_rate(pred, test.y[keep], target)
        out["triggered_accuracy"] = clean_accuracy(pred, test.y[keep])
    return out
