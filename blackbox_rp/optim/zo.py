"""Random and coordinate gradient estimation (RGE / CGE) with ZO-SGD and ZO-Adam updates.

RGE (Nesterov & Spokoiny 2017; used for reprogramming by BAR, Tsai et al.,
"Transfer Learning without Knowing", ICML 2020) averages finite differences
along q random directions u_j:

    forward:  ĝ = φ/q Σ_j (f(θ + μu_j) − f(θ)) / μ · u_j          (q + 1 queries)
    central:  ĝ = φ/q Σ_j (f(θ + μu_j) − f(θ − μu_j)) / (2μ) · u_j  (2q queries)

with u_j ~ N(0, I) and φ = 1 ("gaussian"), or u_j uniform on the unit sphere
and φ = d ("sphere", BAR's choice). With these scalings ĝ is an unbiased
estimate of the gradient of the smoothed function f_μ, which is within O(μ)
of ∇f; its cosine with ∇f grows like sqrt(q/d).

CGE (ZOO, Chen et al., AISec 2017) takes finite differences along coordinate
axes: all of them (``block=None``: exact up to O(μ²), 2d or d+1 queries), a
fixed list (``coords``) or a random block of ``block`` coordinates per step,
scaled by d/block so that its mean over blocks is the full gradient.

The updates: ZO-SGD θ ← θ − lr·ĝ (Ghadimi & Lan 2013), ZO-Adam the Adam rule
on ĝ (ZO-AdaMM, Chen et al., NeurIPS 2019). ZO-SGD's ``lr=None`` calibrates
the step size from the first estimate as SPSA does (Spall's rule); Adam's
steps are already about ``lr`` per coordinate, so its default lr is that step.

Example::

    >>> import numpy as np
    >>> from blackbox_rp.optim import make, minimize
    >>> opt = make("zo-adam", 10, seed=0, x0=np.ones(10), q=5)
    >>> res = minimize(lambda th: float(th @ th), opt, budget=1500)
    >>> res.fun < 0.1
    True
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Optimizer, OptimizerConfig, check, check_choice, register
from .fields import check_types
from .spsa import Blocking, GainCalibration

logger = logging.getLogger(__name__)

__all__ = ["GradientEstimator", "EstimatorConfig", "ZOSGD", "ZOSGDConfig", "ZOAdam", "ZOAdamConfig", "adam_moments",
           "check_adam"]


@dataclass(frozen=True)
class EstimatorConfig(OptimizerConfig):
    """Gradient estimator parameters shared by ZO-SGD and ZO-Adam.

    estimator: "rge" (random directions, default) or "cge" (coordinates).
    directions: RGE's direction law, "gaussian" (default) or "sphere" (scaled by d).
    difference: "central" (default; O(μ²) bias, 2 queries per direction) or "forward"
        (one query per direction plus one at θ).
    q: RGE directions per step (default 10).
    mu: finite-difference step (default 0.005, for θ of order 1).
    block: CGE coordinates per step; None (default) = all d coordinates.
    coords: CGE's fixed coordinates (overrides block); None (default) = a random block each step.
    blocking: return to the best iterate and halve the step size when the median of the recent
        losses exceeds the starting loss by this factor of it (default 1.0, i.e. doubled; see
        :class:`~blackbox_rp.optim.spsa.Blocking`); None disables it.
    """

    DIRECTIONS = "q"

    estimator: str = "rge"
    directions: str = "gaussian"
    difference: str = "central"
    q: int = 10
    mu: float = 0.005
    block: int | None = None
    coords: tuple[int, ...] | None = None
    blocking: float | None = 1.0

    def __post_init__(self) -> None:
        check_types(self)
        check_choice("estimator", self.estimator, ("rge", "cge"))
        check_choice("directions", self.directions, ("gaussian", "sphere"))
        check_choice("difference", self.difference, ("central", "forward"))
        check(isinstance(self.q, int) and self.q >= 1, f"q must be a positive int, got {self.q!r}")
        check(self.mu > 0, f"mu must be positive, got {self.mu}")
        check(self.block is None or (isinstance(self.block, int) and self.block >= 1),
              f"block must be a positive int or None, got {self.block!r}")
        if self.coords is not None:
            object.__setattr__(self, "coords", tuple(int(i) for i in self.coords))
            check(len(self.coords) > 0 and len(set(self.coords)) == len(self.coords),
                  "coords must be a non-empty list of distinct coordinate indices")
        check(self.blocking is None or self.blocking > 0, f"blocking must be positive or None, got {self.blocking}")


class GradientEstimator:
    """Turns θ into the candidates of one RGE/CGE estimate, and their losses into ĝ.

    Stateless apart from the last draw; the caller's generator supplies randomness,
    so an optimizer's RNG state alone determines the sequence of estimates.
    """

    def __init__(self, config: EstimatorConfig, dim: int):
        self.config = config
        self.dim = dim
        if config.coords is not None:
            bad = [i for i in config.coords if not 0 <= i < dim]
            check(not bad, f"coords {bad} are outside [0, {dim})")
        if config.block is not None:
            check(config.block <= dim, f"block {config.block} is larger than dim {dim}")

    @property
    def n_directions(self) -> int:
        c = self.config
        if c.estimator == "rge":
            return c.q
        if c.coords is not None:
            return len(c.coords)
        return c.block if c.block is not None else self.dim

    @property
    def queries(self) -> int:
        n = self.n_directions
        return 2 * n if self.config.difference == "central" else n + 1

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """Directions (n, dim) for the next estimate and the scale φ that makes ĝ unbiased."""
        c, d = self.config, self.dim
        if c.estimator == "rge":
            u = rng.standard_normal((c.q, d))
            if c.directions == "sphere":
                u /= np.linalg.norm(u, axis=1, keepdims=True)
                return u, float(d)
            return u, 1.0
        if c.coords is not None:
            idx = np.asarray(c.coords)
        elif c.block is None or c.block == d:
            idx = np.arange(d)
        else:
            idx = np.sort(rng.choice(d, size=c.block, replace=False))
        u = np.zeros((len(idx), d))
        u[np.arange(len(idx)), idx] = 1.0
        # a random block is scaled by d/b so its mean over blocks is the full gradient
        scale = d / len(idx) if (c.coords is None and len(idx) < d) else 1.0
        return u, scale

    def candidates(self, x: np.ndarray, u: np.ndarray) -> list[np.ndarray]:
        mu = self.config.mu
        if self.config.difference == "central":
            out = []
            for uj in u:
                out += [x + mu * uj, x - mu * uj]
            return out
        return [x.copy()] + [x + mu * uj for uj in u]

    def differences(self, losses: np.ndarray) -> np.ndarray:
        """The finite differences of one estimate's losses (per direction)."""
        mu = self.config.mu
        if self.config.difference == "central":
            return (losses[0::2] - losses[1::2]) / (2.0 * mu)
        return (losses[1:] - losses[0]) / mu

    def estimate(self, losses: np.ndarray, u: np.ndarray, scale: float) -> np.ndarray:
        """ĝ from the losses of :meth:`candidates` (directions ``u``, scale φ from :meth:`draw`)."""
        diffs = self.differences(losses)
        if self.config.estimator == "rge":
            return scale * (diffs @ u) / len(u)
        return scale * (diffs @ u)  # coordinates: each difference fills its own entry


class _ZOBase(Optimizer):
    """Shared ask/tell of the estimator-driven optimizers; subclasses apply the update to ĝ."""

    config: EstimatorConfig

    def __init__(self, dim: int, **kw) -> None:
        super().__init__(dim, **kw)
        self.estimator = GradientEstimator(self.config, self.dim)
        self.blocking = Blocking(self.config.blocking)
        self.u: np.ndarray | None = None
        self.scale = 1.0
        #: the most recent gradient estimate ĝ (zeros before the first tell)
        self.last_gradient = np.zeros(self.dim)

    @property
    def queries_per_step(self) -> int:
        return self.estimator.queries

    def _ask(self) -> list[np.ndarray]:
        self.u, self.scale = self.estimator.draw(self.rng)
        return self.estimator.candidates(self.x, self.u)

    def _tell(self, candidates: list[np.ndarray], losses: np.ndarray) -> None:
        assert self.u is not None
        g = self.estimator.estimate(losses, self.u, self.scale)
        self.last_gradient = g
        back = self.blocking.check(self.x, losses)
        if back is not None:
            self.x = back
            self._reset_momentum()
            return
        self.x = self.x - self.blocking.gain_scale * self._update(g, self.estimator.differences(losses), losses)

    def _reset_momentum(self) -> None:
        """Forget accumulated moments after a blocked step (they point where the loss blew up)."""

    @abstractmethod
    def _update(self, g: np.ndarray, diffs: np.ndarray, losses: np.ndarray) -> np.ndarray:
        """The step to subtract from θ given the estimate (and its raw differences, for calibration)."""

    def recommend(self) -> np.ndarray:
        return self.x.copy()


@dataclass(frozen=True)
class ZOSGDConfig(EstimatorConfig):
    """ZO-SGD: the estimator parameters (see :class:`EstimatorConfig`) and

    lr: step size; None (default) calibrates it from the first estimates so that
        lr · max_j mean|ĝ_j| = ``first_step`` (Spall's rule, as for SPSA; see
        :class:`~blackbox_rp.optim.spsa.GainCalibration`); zero estimates defer it.
    first_step: desired mean per-coordinate change of the first step (default 0.05).
    calibration: how many first non-zero estimates the calibration looks at (default 5).
    decay: lr_k = lr / (k+1)^decay (default 0.0, a constant step).
    max_step: per-coordinate bound on one update; None (default) = 10 · first_step (see
        :class:`~blackbox_rp.optim.spsa.SPSAConfig`); math.inf disables it.
    """

    lr: float | None = None
    first_step: float = 0.05
    calibration: int = 5
    decay: float = 0.0
    max_step: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.lr is None or self.lr > 0, f"lr must be positive or None (calibrated), got {self.lr}")
        check(self.first_step > 0, f"first_step must be positive, got {self.first_step}")
        check(isinstance(self.calibration, int) and self.calibration >= 1,
              f"calibration must be a positive int, got {self.calibration!r}")
        check(0 <= self.decay <= 1, f"decay must be in [0, 1], got {self.decay}")
        check(self.max_step is None or self.max_step > 0, f"max_step must be positive or None, got {self.max_step}")



@register("zo-sgd")
class ZOSGD(_ZOBase):
    """Zeroth-order SGD (Ghadimi & Lan, SIAM J. Optim. 2013) on an RGE or CGE estimate."""

    Config = ZOSGDConfig
    config: ZOSGDConfig
    _state_attrs = ("x", "lr", "u", "scale", "last_gradient", "calibration", "blocking")

    def __init__(self, dim: int, **kw) -> None:
        super().__init__(dim, **kw)
        self.lr: float | None = self.config.lr
        self.calibration = GainCalibration(self.config.first_step, self.config.calibration)

    def _update(self, g: np.ndarray, diffs: np.ndarray, losses: np.ndarray) -> np.ndarray:
        if self.config.lr is None:
            self.lr = self.calibration.update(g, diffs, losses, 1.0)
            if self.lr is None:
                return np.zeros(self.dim)
        bound = self.config.max_step if self.config.max_step is not None else 10 * self.config.first_step
        lr = self.lr / (self.step + 1) ** self.config.decay
        return np.clip(lr * g, -bound / self.blocking.gain_scale, bound / self.blocking.gain_scale)


@dataclass(frozen=True)
class ZOAdamConfig(EstimatorConfig):
    """ZO-Adam (ZO-AdaMM): the estimator parameters (see :class:`EstimatorConfig`) and

    lr: Adam step size, about the per-coordinate change of an early step (default 0.05,
        for θ of order 1; measured on the test functions of :mod:`blackbox_rp.optim.functions`).
    beta1, beta2, eps: Adam's moment decays and stabiliser (defaults 0.9, 0.999, 1e-8; Kingma & Ba 2015).
    """

    lr: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        super().__post_init__()
        check_adam(self)


@register("zo-adam")
class ZOAdam(_ZOBase):
    """Adam on zeroth-order gradient estimates (ZO-AdaMM, Chen et al., NeurIPS 2019)."""

    Config = ZOAdamConfig
    config: ZOAdamConfig
    _state_attrs = ("x", "m", "v", "u", "scale", "last_gradient", "blocking")

    def __init__(self, dim: int, **kw) -> None:
        super().__init__(dim, **kw)
        self.m = np.zeros(self.dim)
        self.v = np.zeros(self.dim)

    def _reset_momentum(self) -> None:
        self.m = np.zeros(self.dim)

    def _update(self, g: np.ndarray, diffs: np.ndarray, losses: np.ndarray) -> np.ndarray:
        c = self.config
        self.m, self.v, m_hat, v_hat = adam_moments(self.m, self.v, g, self.step + 1, c.beta1, c.beta2)
        return c.lr * m_hat / (np.sqrt(v_hat) + c.eps)


def check_adam(config: Any) -> None:
    """Refuse Adam settings that cannot work: ``lr`` and ``eps`` positive, ``beta1`` and ``beta2`` in [0, 1)."""
    check(config.lr > 0, f"lr must be positive, got {config.lr}")
    check(0 <= config.beta1 < 1 and 0 <= config.beta2 < 1, "beta1 and beta2 must be in [0, 1)")
    check(config.eps > 0, f"eps must be positive, got {config.eps}")


def adam_moments(m: np.ndarray, v: np.ndarray, g: np.ndarray, t: int, beta1: float, beta2: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Adam's moment update at step ``t`` (1-based): the new (m, v) and their bias-corrected m̂, v̂.
    The step itself (lr, its schedule, ε) stays with each optimizer."""
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    return m, v, m / (1 - beta1 ** t), v / (1 - beta2 ** t)
