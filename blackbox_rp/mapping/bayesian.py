"""Bayesian-guided label mappings, BLM and BLM+ (Cai et al., "Bayesian-guided Label Mapping
for Visual Reprogramming", NeurIPS 2024).

Instead of one source class per target class, every source class s votes for
target t with weight ω[s, t], estimated from the joint distribution of the
oracle's answers and the target labels on the training set:

* **BLM** (``needs = "label"``): the joint counts are the top-1 counts
  N[s, t] = #{i : y_i = t, argmax f(x_i) = s}.
* **BLM+** (``needs = "topk"``): the counts are probability mass from each
  sample's k most likely *source* classes:
  N[s, t] = Σ_{i : y_i = t} f(x_i)_s · 1[s is among the k largest entries of f(x_i)],
  with k = max(1, ⌊0.15 · num_target⌋) unless ``k`` is given. (The guard
  k ≥ 1 matters: the published code computes ⌊0.15 · |Y_T|⌋, which is 0 for
  fewer than 7 target classes and then divides 0 by 0.) Under a top-k exposure
  showing k' < k classes, the k' shown entries are used.

Both then set ω[s, t] = N[s, t] / (Σ_t' N[s, t'] + λ) (λ = 1: Laplace-style
smoothing of P(y_T = t | y_S = s)), normalise each column of ω to sum 1, and
predict with f(x) · ω (f(x) the source probabilities as exposed: one-hot for
label-only answers, zero outside the shown top-k), rows renormalised to sum 1.
A target class absent from the fitting data keeps a zero column (it is never
predicted) and is logged; a row with zero mass becomes uniform.

Example::

    >>> import numpy as np
    >>> from blackbox_rp.mapping import make_mapping
    >>> m = make_mapping("blm", 3, 2).fit(np.eye(3)[[0, 0, 1, 2]], np.array([0, 0, 1, 1]))
    >>> m.omega.round(4).tolist()
    [[1.0, 0.0], [0.0, 0.5], [0.0, 0.5]]
"""

from __future__ import annotations

import logging
from typing import Any
from dataclasses import dataclass

import numpy as np

from ..exposure import Response
from .base import (DifferentiableMapping, LabelMapping, as_labels, as_probs, count_matrix, normalize_rows,
                   renormalised_log)
from .registry import register_mapping

logger = logging.getLogger(__name__)

__all__ = ["BayesianMapping", "BayesianMappingPlus", "BLMConfig", "BLMPlusConfig", "blm_weights",
           "topk_mass_matrix", "default_k"]


def default_k(num_target: int) -> int:
    """BLM+'s k = max(1, ⌊0.15 · num_target⌋)."""
    return max(1, int(np.floor(0.15 * num_target)))


def blm_weights(counts: np.ndarray, lam: float) -> np.ndarray:
    """ω from a (S, T) joint count/mass matrix: rows smoothed by λ, then columns normalised."""
    counts = np.asarray(counts, dtype=np.float64)
    w = counts / (counts.sum(axis=1, keepdims=True) + lam)
    col = w.sum(axis=0, keepdims=True)
    empty = np.flatnonzero(col[0] <= 0)
    if len(empty):
        logger.warning("BLM: target class(es) %s have no fitting examples; they will never be predicted",
                       empty.tolist())
    return np.divide(w, col, out=np.zeros_like(w), where=col > 0)


def topk_mass_matrix(probs: np.ndarray, y: np.ndarray, num_target: int, k: int) -> np.ndarray:
    """N[s, t] = Σ_{i: y_i = t} p_i[s] over each sample's k largest source entries (ties: lowest index)."""
    p = np.asarray(probs, dtype=np.float64)
    k = min(k, p.shape[1])
    top = np.argsort(-p, axis=1, kind="stable")[:, :k]
    kept = np.zeros_like(p)
    np.put_along_axis(kept, top, np.take_along_axis(p, top, axis=1), axis=1)
    n = np.zeros((p.shape[1], num_target), dtype=np.float64)
    np.add.at(n.T, y, kept)  # row y_i of Nᵀ gains sample i's kept mass
    return n


@dataclass(frozen=True)
class BLMConfig:
    """``lam``: the smoothing λ added to each source class's total (1 in the paper)."""

    lam: float = 1.0

    def __post_init__(self) -> None:
        if not float(self.lam) > 0:
            raise ValueError(f"lam must be positive, got {self.lam!r}")


@dataclass(frozen=True)
class BLMPlusConfig(BLMConfig):
    """``k``: source classes per sample whose mass is counted; None = max(1, ⌊0.15 · num_target⌋)."""

    k: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k is not None and (not isinstance(self.k, int) or self.k < 1):
            raise ValueError(f"k must be a positive int or None, got {self.k!r}")


class _Weighted(LabelMapping, DifferentiableMapping):
    """Shared scoring f(x) · ω, rows renormalised."""

    _state = ("omega",)

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.omega = np.zeros((self.num_source, self.num_target), dtype=np.float64)

    def _scores(self, resp: Response | np.ndarray) -> np.ndarray:
        return normalize_rows(as_probs(resp, self.num_source) @ self.omega)

    def torch_log_probs(self, logits: Any, params: Any = None) -> Any:
        """f(x) · ω, rows renormalised."""
        import torch

        probs = torch.softmax(logits, 1)
        return renormalised_log(probs @ torch.as_tensor(self.omega, dtype=probs.dtype))


@register_mapping("blm")
class BayesianMapping(_Weighted):
    """BLM: ω from top-1 counts; works from label-only answers."""

    name = "blm"
    needs = "label"
    Config = BLMConfig

    def _fit(self, resp: Response | np.ndarray, y: np.ndarray) -> None:
        counts = count_matrix(as_labels(resp, self.num_source), y, self.num_source, self.num_target)
        self.omega = blm_weights(counts, float(self.config.lam))


@register_mapping("blm+")
class BayesianMappingPlus(_Weighted):
    """BLM+: ω from each sample's top-k source probability mass; needs top-k answers or richer."""

    name = "blm+"
    needs = "topk"
    Config = BLMPlusConfig

    @property
    def k(self) -> int:
        return self.config.k if self.config.k is not None else default_k(self.num_target)

    def _fit(self, resp: Response | np.ndarray, y: np.ndarray) -> None:
        mass = topk_mass_matrix(as_probs(resp, self.num_source), y, self.num_target, self.k)
        self.omega = blm_weights(mass, float(self.config.lam))
