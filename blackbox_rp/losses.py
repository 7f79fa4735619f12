"""Losses on mapped outputs: what a black-box optimizer minimises.

Every loss takes the label mapping's target-class probabilities ``scores``
(n, T), rows summing to 1, and integer labels ``y`` (n,), and returns one
float. They only ever see mapped outputs, so any mapping and any exposure the
mapping accepts can be optimised with any of them.

* ``ce`` — cross-entropy, −mean log p_y: smooth, the default.
* ``focal`` — Lin et al., "Focal Loss for Dense Object Detection" (ICCV 2017):
  −mean (1 − p_y)^γ log p_y; down-weights examples already right.
* ``hinge`` — the multiclass margin of Crammer & Singer (JMLR 2001), on
  log-probabilities: mean max(0, margin − (log p_y − max_{j≠y} log p_j)).
* ``neg-acc`` — −accuracy: what is reported, but piecewise constant, so only
  population methods (CMA-ES) can follow it.

Probabilities are floored at ``EPS`` before the log: a mapping may give a
class exactly 0 (FLM on a top-k answer), and one infinite loss would make a
finite difference meaningless.

Example::

    >>> import numpy as np
    >>> from blackbox_rp.losses import make_loss
    >>> p = np.array([[0.5, 0.5], [0.9, 0.1]])
    >>> round(make_loss("ce")(p, np.array([0, 0])), 4)
    0.3993
    >>> make_loss("neg-acc")(p, np.array([1, 0]))
    -0.5
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["LOSSES", "make_loss", "Loss", "LossConfig", "EPS"]

#: floor on probabilities before taking logs
EPS = 1e-12

LossFn = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class LossConfig:
    """``gamma``: the focal exponent (Lin et al. use 2); ``margin``: the hinge margin in log-probability units."""

    gamma: float = 2.0
    margin: float = 1.0

    def __post_init__(self) -> None:
        if not self.gamma >= 0:
            raise ValueError(f"focal gamma must be >= 0, got {self.gamma!r}")
        if not self.margin > 0:
            raise ValueError(f"hinge margin must be > 0, got {self.margin!r}")


def _check(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y)
    if scores.ndim != 2 or len(scores) != len(y):
        raise ValueError(f"loss needs scores (n, T) and labels (n,), got {scores.shape} and {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= scores.shape[1]):
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}), got [{y.min()}, {y.max()}]")
    return scores, y.astype(np.int64)


def _true(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.maximum(scores[np.arange(len(y)), y], EPS)


# each returns one loss per example (row); the loss of a batch is their mean
def _ce(scores: np.ndarray, y: np.ndarray, cfg: LossConfig) -> np.ndarray:
    return -np.log(_true(scores, y))


def _focal(scores: np.ndarray, y: np.ndarray, cfg: LossConfig) -> np.ndarray:
    p = _true(scores, y)
    return -(1.0 - p) ** cfg.gamma * np.log(p)


def _hinge(scores: np.ndarray, y: np.ndarray, cfg: LossConfig) -> np.ndarray:
    logp = np.log(np.maximum(scores, EPS))
    rows = np.arange(len(y))
    true = logp[rows, y].copy()
    logp[rows, y] = -np.inf
    return np.maximum(0.0, cfg.margin - (true - logp.max(axis=1)))


def _neg_acc(scores: np.ndarray, y: np.ndarray, cfg: LossConfig) -> np.ndarray:
    return -(scores.argmax(axis=1) == y).astype(np.float64)


_FNS: dict[str, Callable[[np.ndarray, np.ndarray, LossConfig], np.ndarray]] = {
    "ce": _ce, "focal": _focal, "hinge": _hinge, "neg-acc": _neg_acc,
}

#: loss names accepted by :func:`make_loss` and the CLI
LOSSES: tuple[str, ...] = tuple(_FNS)


class Loss:
    """A loss that is a mean over examples: ``loss(scores, y)`` is the batch's float, ``per_example(scores, y)``
    the (n,) losses it averages.

    Why the per-example form is part of the interface: an estimator that perturbs each example's model
    input on its own (``zo-chain``) needs each example's loss, not the batch's mean; a plain callable does
    not say whether it decomposes, so such estimators accept only a :class:`Loss`.
    """

    def __init__(self, name: str, fn: Callable[[np.ndarray, np.ndarray, LossConfig], np.ndarray], cfg: LossConfig):
        self.name, self._fn, self.config = name, fn, cfg
        self.__name__ = f"loss_{name.replace('-', '_')}"

    def per_example(self, scores: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(n,) float64: each example's loss."""
        s, yy = _check(scores, y)
        return np.asarray(self._fn(s, yy, self.config), dtype=np.float64)

    def __call__(self, scores: np.ndarray, y: np.ndarray) -> float:
        return float(self.per_example(scores, y).mean())

    def __repr__(self) -> str:
        return f"Loss({self.name!r}, {self.config})"


def make_loss(name: str, **params: Any) -> Loss:
    """The loss ``name`` as a :class:`Loss` (``(scores, y) -> float``, and ``.per_example``); ``params`` are
    :class:`LossConfig` fields."""
    if name not in _FNS:
        raise ValueError(f"unknown loss {name!r}; available: {list(LOSSES)}")
    unknown = sorted(set(params) - set(LossConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown loss parameter(s) {unknown}; accepted: {list(LossConfig.__dataclass_fields__)}")
    return Loss(name, _FNS[name], LossConfig(**params))
