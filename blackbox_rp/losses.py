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

__all__ = ["LOSSES", "make_loss", "LossConfig", "EPS"]

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


def _ce(scores: np.ndarray, y: np.ndarray, cfg: LossConfig) -> float:
    return float(-np.log(_true(scores, y)).mean())


def _focal(scores: np.ndarray, y: np.ndarray, cfg: LossConfig) -> float:
    p = _true(scores, y)
    return float((-(1.0 - p) ** cfg.gamma * np.log(p)).mean())


def _hinge(scores: np.ndarray, y: np.ndarray, cfg: LossConfig) -> float:
    logp = np.log(np.maximum(scores, EPS))
    rows = np.arange(len(y))
    true = logp[rows, y].copy()
    logp[rows, y] = -np.inf
    return float(np.maximum(0.0, cfg.margin - (true - logp.max(axis=1))).mean())


def _neg_acc(scores: np.ndarray, y: np.ndarray, cfg: LossConfig) -> float:
    return -float((scores.argmax(axis=1) == y).mean())


_FNS: dict[str, Callable[[np.ndarray, np.ndarray, LossConfig], float]] = {
    "ce": _ce, "focal": _focal, "hinge": _hinge, "neg-acc": _neg_acc,
}

#: loss names accepted by :func:`make_loss` and the CLI
LOSSES: tuple[str, ...] = tuple(_FNS)


def make_loss(name: str, **params: Any) -> LossFn:
    """The loss ``name`` as a function ``(scores, y) -> float``; ``params`` are :class:`LossConfig` fields."""
    if name not in _FNS:
        raise ValueError(f"unknown loss {name!r}; available: {list(LOSSES)}")
    unknown = sorted(set(params) - set(LossConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown loss parameter(s) {unknown}; accepted: {list(LossConfig.__dataclass_fields__)}")
    cfg = LossConfig(**params)
    fn = _FNS[name]

    def loss(scores: np.ndarray, y: np.ndarray) -> float:
        s, yy = _check(scores, y)
        return fn(s, yy, cfg)

    loss.__name__ = f"loss_{name.replace('-', '_')}"
    return loss
