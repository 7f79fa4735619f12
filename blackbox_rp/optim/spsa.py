"""SPSA and SPSA-GC: two loss values per perturbation, whatever the dimension.

SPSA (Spall, "Multivariate stochastic approximation using a simultaneous
perturbation gradient approximation", IEEE TAC 1992; gains and practical
defaults from Spall, "Implementation of the simultaneous perturbation
algorithm for stochastic optimization", IEEE TAES 1998) estimates the gradient
from f(θ + c_k Δ) and f(θ − c_k Δ) with a random ±1 vector Δ:

    ĝ_k = (f(θ + c_k Δ) − f(θ − c_k Δ)) / (2 c_k) · Δ^{-1}   (elementwise inverse)
    a_k = a / (k + 1 + A)^α,   c_k = c / (k + 1)^γ,   θ_{k+1} = θ_k − a_k ĝ_k

averaged over ``q`` independent pairs per step. SPSA-GC (Oh et al., "BlackVIP:
Black-Box Visual Prompting for Robust Transfer Learning", CVPR 2023) adds a
Nesterov-style correction: m_k = β m_{k−1} + ĝ_k, θ_{k+1} = θ_k − a_k (ĝ_k + β m_k).

Why the calibration: the most common failure of SPSA in practice is a gain
``a`` that is wrong by orders of magnitude for the problem at hand (divergence
or no progress; BlackVIP's users report "training seems to diverge"). Spall's
rule (1998) sets ``a`` from the first gradient estimates so the first step
moves each coordinate by about a desired amount; with ``a=None`` (the
default) we do that with ``first_step`` (:class:`GainCalibration`), at no
extra query. ``A=None`` takes Spall's A ≈ 10% of the expected number of
iterations (from :meth:`Optimizer.plan`, which :func:`minimize` calls with the
budget; 100 steps assumed otherwise). A gain right at θ0 can still be too
large elsewhere, so :class:`Blocking` returns to the best iterate and halves
the gain when the loss blows up, again from losses already paid for.

Example::

    >>> import numpy as np
    >>> from blackbox_rp.optim import make, minimize
    >>> opt = make("spsa", 10, seed=0, x0=np.ones(10))
    >>> res = minimize(lambda th: float(th @ th), opt, budget=1000)  # start loss 10
    >>> res.fun < 2.0
    True
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import Optimizer, OptimizerConfig, check, check_choice, register
from .fields import check_types

logger = logging.getLogger(__name__)

__all__ = ["SPSA", "SPSAConfig", "SPSAGC", "SPSAGCConfig", "perturbations", "GainCalibration"]

PERTURBATIONS = ("rademacher", "segmented")


@dataclass(frozen=True)
class SPSAConfig(OptimizerConfig):
    """Parameters of SPSA (defaults: Spall 1998's practical values, gains calibrated).

    a: gain numerator; None (default) calibrates it from the first estimates so that
        a_0 · max_j mean|ĝ_j| = ``first_step`` (Spall's rule; see :class:`GainCalibration`).
    A: stability constant; None (default) = 10% of the expected steps (Spall).
    alpha: gain decay exponent a_k ∝ (k+1+A)^-alpha (default 0.602, Spall's practical value).
    c: perturbation size numerator (default 0.01 for θ of order 1; Spall: about the noise
        std of the loss when it is noisy).
    gamma: perturbation decay exponent c_k ∝ (k+1)^-gamma (default 0.101, Spall).
    q: perturbation pairs averaged per step (default 1; 2q queries per step).
    perturbation: "rademacher" (±1, default; optimal per Sadegh & Spall 1998) or "segmented"
        (random sign, magnitude uniform in [0.5, 1.5]).
    first_step: desired mean per-coordinate change of the first step for the calibration
        (default 0.05, for θ of order 1).
    calibration: how many first non-zero estimates the calibration looks at (default 5).
    beta: momentum of the gradient correction (0 = plain SPSA, default).
    blocking: return to the best iterate and halve the gain when the median of the recent
        losses exceeds the starting loss by this factor of it (default 1.0, i.e. doubled; see
        :class:`Blocking`); None disables it.
    max_step: per-coordinate bound on one update; None (default) = 10 · first_step, so that
        one wild estimate cannot throw θ far before blocking can react. math.inf disables it.
    """

    DIRECTIONS = "q"

    a: float | None = None
    A: float | None = None
    alpha: float = 0.602
    c: float = 0.01
    gamma: float = 0.101
    q: int = 1
    perturbation: str = "rademacher"
    first_step: float = 0.05
    calibration: int = 5
    beta: float = 0.0
    blocking: float | None = 1.0
    max_step: float | None = None

    def __post_init__(self) -> None:
        check_types(self)
        check(self.a is None or self.a > 0, f"a must be positive or None (calibrated), got {self.a}")
        check(self.A is None or self.A >= 0, f"A must be >= 0 or None (10% of the steps), got {self.A}")
        check(0 < self.alpha <= 1, f"alpha must be in (0, 1], got {self.alpha}")
        check(self.c > 0, f"c must be positive, got {self.c}")
        check(0 <= self.gamma <= 1, f"gamma must be in [0, 1], got {self.gamma}")
        check(isinstance(self.q, int) and self.q >= 1, f"q must be a positive int, got {self.q!r}")
        check_choice("perturbation", self.perturbation, PERTURBATIONS)
        check(self.first_step > 0, f"first_step must be positive, got {self.first_step}")
        check(isinstance(self.calibration, int) and self.calibration >= 1,
              f"calibration must be a positive int, got {self.calibration!r}")
        check(0 <= self.beta < 1, f"beta must be in [0, 1), got {self.beta}")
        check(self.max_step is None or self.max_step > 0, f"max_step must be positive or None, got {self.max_step}")
        check(self.blocking is None or self.blocking > 0, f"blocking must be positive or None, got {self.blocking}")


def perturbations(rng: np.random.Generator, n: int, dim: int, kind: str) -> np.ndarray:
    """``n`` SPSA perturbation vectors (n, dim): Rademacher ±1 or segmented uniform ±U[0.5, 1.5].

    Both are symmetric with finite E|Δ_i^{-1}|, the condition Spall's estimator
    needs to be unbiased to O(c²); a Gaussian Δ would violate it.
    """
    signs = rng.integers(0, 2, size=(n, dim)).astype(np.float64) * 2.0 - 1.0
    if kind == "rademacher":
        return signs
    return signs * rng.uniform(0.5, 1.5, size=(n, dim))


class GainCalibration:
    """Spall's rule for the gain, made robust: a · max_j mean|ĝ_j| = first_step · denominator.

    Spall (1998) sets the gain so that the first steps move each
    coordinate by a desired amount given the magnitude of the first gradient
    estimates, and advises averaging several of them: one SPSA estimate's size
    is |Δᵀ∇f| times the perturbation, which is near zero with sizeable
    probability (Δᵀ∇f can cancel). We therefore keep the *largest* mean|ĝ|
    over the first ``steps`` non-zero estimates, recomputing the gain after
    each: a lucky tiny estimate can never leave a huge gain behind, and no
    extra query is spent. Estimates whose differences are at rounding level
    (|Δf| ≤ 1e-12·|f|) count as zero and are skipped.
    """

    def __init__(self, first_step: float, steps: int):
        self.first_step = first_step
        self.steps = steps
        self.seen = 0
        self.scale = 0.0

    def update(self, g: np.ndarray, diffs: np.ndarray, losses: np.ndarray, denominator: float) -> float | None:
        """The gain after estimate ``g`` (None while every estimate so far was zero)."""
        if self.seen < self.steps:
            rounding = 1e-12 * float(np.mean(np.abs(losses)))
            mag = float(np.mean(np.abs(g)))
            if float(np.mean(np.abs(diffs))) > rounding and math.isfinite(mag) and mag > 0:
                self.seen += 1
                self.scale = max(self.scale, mag)
        return self.first_step * denominator / self.scale if self.scale > 0 else None


class Blocking:
    """Spall's "blocking" (1998) at no query cost: undo steps that made the loss blow up.

    The losses of one step's candidates average to f(θ_k) + O(c²) (the pairs are
    symmetric around θ_k), so each step brings a free estimate of the loss at the
    current iterate. When the median of the last ``window`` such levels exceeds
    the starting level (the median of the first ``window``) by more than
    ``factor`` times it (doubled, by default), θ returns to the iterate where the
    recent median was lowest and the gain is halved.

    Why: a fixed gain calibrated at θ0 can be far too large where curvature
    grows (Rosenbrock's walls; in 200 dimensions ΔᵀHΔ ~ d·h) and θ explodes,
    quickly or by a slow drift. Why medians, and the start as the reference:
    minibatch losses are noisy and can be heavy-tailed; a rule on single levels,
    or against the best level seen (a lucky draw), keeps firing on noise and
    shrinks the gain to nothing. An optimizer whose typical recent loss is twice
    where it started is diverging, whatever the noise. Between detections,
    ``max_step`` bounds how far one step can throw θ.
    """

    def __init__(self, factor: float | None, window: int = 10):
        self.factor = factor
        self.window = window
        self.initial: list[float] = []
        self.levels: list[float] = []
        self.best_median = math.inf
        self.best_x: np.ndarray | None = None
        self.gain_scale = 1.0

    def check(self, x: np.ndarray, losses: np.ndarray) -> np.ndarray | None:
        """The iterate to return to if the loss has blown up, else None."""
        level = float(np.mean(losses))
        if len(self.initial) < self.window:
            self.initial.append(level)
        self.levels = (self.levels + [level])[-self.window:]
        reference = float(np.median(self.initial))
        median = float(np.median(self.levels))
        if self.factor is not None and self.best_x is not None \
                and median - reference > self.factor * max(abs(reference), 1e-300):
            self.gain_scale *= 0.5
            logger.info("blocking: recent loss %.4g vs start %.4g; back to the best iterate, gain x%.4g",
                        median, reference, self.gain_scale)
            self.levels = []
            return self.best_x.copy()
        if median < self.best_median:
            self.best_median, self.best_x = median, x.copy()
        return None


@register("spsa")
class SPSA(Optimizer):
    """Simultaneous perturbation stochastic approximation (Spall 1992, 1998); see the module docstring.

    ``ask()`` returns the 2q points θ+c_kΔ_1, θ−c_kΔ_1, …, θ+c_kΔ_q, θ−c_kΔ_q: each
    pair must be evaluated on the same minibatch (the whole ask is, by contract).
    """

    Config = SPSAConfig
    config: SPSAConfig
    _state_attrs = ("x", "a", "A", "m", "deltas", "last_gradient", "calibration", "blocking")

    def __init__(self, dim: int, **kw) -> None:
        super().__init__(dim, **kw)
        self.a: float | None = self.config.a
        self.calibration = GainCalibration(self.config.first_step, self.config.calibration)
        self.A: float | None = self.config.A
        self.blocking = Blocking(self.config.blocking)
        self.m = np.zeros(self.dim)
        self.deltas: np.ndarray | None = None
        #: the most recent gradient estimate ĝ (zeros before the first tell)
        self.last_gradient = np.zeros(self.dim)

    @property
    def queries_per_step(self) -> int:
        return 2 * self.config.q

    def c_k(self) -> float:
        return self.config.c / (self.step + 1) ** self.config.gamma

    def a_k(self) -> float:
        assert self.a is not None and self.A is not None
        return self.a / (self.step + 1 + self.A) ** self.config.alpha

    def _ask(self) -> list[np.ndarray]:
        if self.A is None:
            self.A = 0.1 * (self._expected_steps or 100)
        self.deltas = perturbations(self.rng, self.config.q, self.dim, self.config.perturbation)
        ck = self.c_k()
        out = []
        for d in self.deltas:
            out += [self.x + ck * d, self.x - ck * d]
        return out

    def _tell(self, candidates: list[np.ndarray], losses: np.ndarray) -> None:
        assert self.deltas is not None and self.A is not None
        diffs = losses[0::2] - losses[1::2]
        g = np.mean(diffs[:, None] / (2.0 * self.c_k() * self.deltas), axis=0)
        self.last_gradient = g
        back = self.blocking.check(self.x, losses)
        if back is not None:
            self.x = back
            self.m = np.zeros(self.dim)
            return
        if self.config.a is None:
            self.a = self.calibration.update(g, diffs, losses, (1 + self.A) ** self.config.alpha)
            if self.a is None:
                logger.info("%s: zero gradient estimate at step %d; calibrating on the next step",
                            self.name, self.step)
                return
        beta = self.config.beta
        if beta:
            self.m = beta * self.m + g
            direction = g + beta * self.m
        else:
            direction = g
        bound = self.config.max_step if self.config.max_step is not None else 10 * self.config.first_step
        self.x = self.x - np.clip(self.blocking.gain_scale * self.a_k() * direction, -bound, bound)

    def recommend(self) -> np.ndarray:
        return self.x.copy()


@dataclass(frozen=True)
class SPSAGCConfig(SPSAConfig):
    """SPSA-GC (BlackVIP): SPSA's parameters with momentum ``beta`` 0.9 and ``q`` 5 pairs by default.

    The default gains are calibrated as for SPSA (see :class:`SPSAConfig`); the
    preset ``"blackvip"`` gives BlackVIP's published values instead: a=0.01, A=1,
    alpha=0.4, c=0.01, gamma=0.1, beta=0.9, q=5 (this package's safeguards stay on;
    add ``blocking=None, max_step=math.inf`` for the algorithm exactly as published).
    """

    beta: float = 0.9
    q: int = 5

    PRESETS: ClassVar[dict] = {"blackvip": dict(a=0.01, A=1.0, alpha=0.4, c=0.01, gamma=0.1, beta=0.9, q=5)}


@register("spsa-gc")
class SPSAGC(SPSA):
    """SPSA with gradient correction (Oh et al., BlackVIP, CVPR 2023): m_k = βm_{k−1} + ĝ_k,
    θ_{k+1} = θ_k − a_k(ĝ_k + βm_k)."""

    Config = SPSAGCConfig
