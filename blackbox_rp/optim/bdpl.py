"""BDPL: black-box discrete prompt learning by a variance-reduced policy gradient.

Diao et al., "Black-box Prompt Learning for Pre-trained Language Models"
(TMLR 2023). Each categorical slot i has its own distribution p_i on the
simplex over its n_i options. A step samples I prompts S_1 … S_I (every slot
independently), the caller scores them on one minibatch, and the probabilities
move along the score-function gradient with the mean loss as baseline:

    g = 1/(I − 1) · Σ_k (L_k − L̄) · ∇_p log P(S_k),   ∇_{p_i} log P(S) = e_{s_i} / p_i[s_i]

(unbiased for ∇_p E_{S∼p}[L(S)] because L̄ is the leave-none-out mean and the
factor is 1/(I − 1); :func:`score_gradient` is that estimator on its own, tested
against the exact gradient). Then p_i ← Π_Δ(p_i − lr · g_i), the exact
Euclidean projection onto the simplex (:func:`project_simplex`, the sort-based
algorithm of Held et al. 1974 / Duchi et al. 2008). ``recommend()`` is the most
likely prompt, argmax p_i per slot.

Why a distribution rather than a point: one categorical choice has no
neighbourhood to difference over; the gradient of the *expected* loss with
respect to the probabilities is well defined and estimated from losses alone.

    >>> import numpy as np
    >>> from blackbox_rp.space import SearchSpace
    >>> from blackbox_rp.optim import make, minimize
    >>> target = np.array([2, 0, 1])
    >>> f = lambda th: float((th != target).sum())
    >>> opt = make("bdpl", SearchSpace.categorical((3, 3, 3)), seed=0, samples=8, lr=0.5)
    >>> minimize(f, opt, budget=400).x.tolist()
    [2.0, 0.0, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Optimizer, OptimizerConfig, check, register

__all__ = ["BDPL", "BDPLConfig", "project_simplex", "score_gradient"]


def project_simplex(v: np.ndarray) -> np.ndarray:
    """The Euclidean projection of ``v`` onto the probability simplex {p ≥ 0, Σ p = 1}.

    Sort-based and exact: with u = sort(v) descending and ρ the largest j such that
    u_j − (Σ_{r≤j} u_r − 1)/j > 0, the answer is max(v − τ, 0), τ = (Σ_{r≤ρ} u_r − 1)/ρ.
    """
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("cannot project an empty vector onto the simplex")
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    j = np.arange(1, v.size + 1)
    rho = int(np.flatnonzero(u - css / j > 0)[-1]) + 1
    tau = css[rho - 1] / rho
    return np.maximum(v - tau, 0.0)


def score_gradient(probs: np.ndarray, samples: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """BDPL's variance-reduced estimate of ∇_p E[L], shape of ``probs`` (slots, max options).

    ``probs[i, :n_i]`` is slot i's distribution; ``samples`` (I, slots) the sampled option indices;
    ``losses`` (I,) their losses. 1/(I − 1) · Σ_k (L_k − L̄) · e_{s_ki} / p_i[s_ki] per slot.
    """
    samples = np.asarray(samples, dtype=np.int64)
    losses = np.asarray(losses, dtype=np.float64)
    n_samples = len(losses)
    if n_samples < 2 or samples.shape[0] != n_samples:
        raise ValueError(f"need at least 2 samples with one loss each, got {samples.shape[0]} and {n_samples}")
    adv = (losses - losses.mean()) / (n_samples - 1)
    g = np.zeros_like(probs, dtype=np.float64)
    rows = np.arange(probs.shape[0])
    for k in range(n_samples):
        g[rows, samples[k]] += adv[k] / probs[rows, samples[k]]
    return g


@dataclass(frozen=True)
class BDPLConfig(OptimizerConfig):
    """samples: prompts I sampled per step (≥ 2: the baseline needs another sample; default 8).
    lr: step size on the probabilities (default 0.5).
    x0_mass: probability given to θ₀'s option of every slot at the start, the rest spread uniformly
        (default 0: uniform, as in the paper; > 0 starts near the hand-written prompt).
    min_prob: probabilities are kept ≥ this before dividing by them, so a nearly-impossible sample
        cannot blow up the step (default 1e-6; the projection itself is exact).
    """

    DIRECTIONS = "samples"

    samples: int = 8
    lr: float = 0.5
    x0_mass: float = 0.0
    min_prob: float = 1e-6

    def __post_init__(self) -> None:
        check(isinstance(self.samples, int) and self.samples >= 2, f"samples must be an int >= 2, got {self.samples!r}")
        check(self.lr > 0, f"lr must be positive, got {self.lr}")
        check(0.0 <= self.x0_mass < 1.0, f"x0_mass must lie in [0, 1), got {self.x0_mass}")
        check(0.0 < self.min_prob < 0.01, f"min_prob must lie in (0, 0.01), got {self.min_prob}")


@register("bdpl")
class BDPL(Optimizer):
    """One categorical distribution per slot, learned by the variance-reduced policy gradient."""

    Config = BDPLConfig
    config: BDPLConfig
    accepts = frozenset({"categorical"})
    _state_attrs = ("probs",)

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        n = np.asarray(self.space.choices, dtype=np.int64)
        self._n = n
        self._mask = np.arange(n.max())[None, :] < n[:, None]
        m = self.config.x0_mass
        probs = np.where(self._mask, (1.0 - m) / n[:, None], 0.0)
        probs[np.arange(len(n)), self.space.slots(self.x0)] += m
        self.probs = probs  # (slots, max options), zero beyond each slot's options

    @property
    def queries_per_step(self) -> int:
        return self.config.samples

    def _ask(self) -> list[np.ndarray]:
        # inverse-CDF sampling, one uniform per (sample, slot): reproducible from the generator alone
        u = self.rng.random((self.config.samples, len(self._n)))
        cdf = np.cumsum(self.probs, axis=1)
        idx = (u[:, :, None] > cdf[None, :, :]).sum(axis=2)
        return list(np.minimum(idx, self._n - 1).astype(np.float64))

    def _tell(self, candidates: list[np.ndarray], losses: np.ndarray) -> None:
        samples = np.stack(candidates).astype(np.int64)
        safe = np.where(self._mask, np.maximum(self.probs, self.config.min_prob), 1.0)
        g = score_gradient(safe, samples, losses)
        stepped = self.probs - self.config.lr * g
        for i, n in enumerate(self._n):
            self.probs[i, :n] = project_simplex(stepped[i, :n])

    def recommend(self) -> np.ndarray:
        return np.argmax(np.where(self._mask, self.probs, -1.0), axis=1).astype(np.float64)

    def distribution(self) -> list[np.ndarray]:
        """Each slot's current distribution over its options (for reports)."""
        return [self.probs[i, :n].copy() for i, n in enumerate(self._n)]
