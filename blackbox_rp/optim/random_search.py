"""Random search: the baseline every table needs.

Samples ``popsize`` points per step around the start, θ = x0 + σ·N(0, I)
("gaussian", default) or uniform in the box x0 ± σ ("uniform"), and
recommends the best point seen. Categorical slots (a discrete prompt's words)
take an option uniformly at random in each sample; the continuous part of a
mixed space is sampled as above. It has no state to adapt, so any optimizer
that does not beat it at the same query budget is not learning from the
losses (Bergstra & Bengio, "Random search for hyper-parameter optimization",
JMLR 2012, for why this is the honest reference).

Example::

    >>> import numpy as np
    >>> from blackbox_rp.optim import make, minimize
    >>> res = minimize(lambda th: float(th @ th), make("random", 2, seed=0, x0=[1, 1], sigma=1.0), budget=200)
    >>> res.fun < 0.1
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Optimizer, OptimizerConfig, check, check_choice, register
from .fields import check_types

__all__ = ["RandomSearch", "RandomSearchConfig"]


@dataclass(frozen=True)
class RandomSearchConfig(OptimizerConfig):
    """sigma: spread of the samples around x0 (default 0.5, for θ of order 1).
    distribution: "gaussian" (default) or "uniform" (in x0 ± sigma).
    popsize: samples per step, evaluated as one batch (default 10).
    """

    DIRECTIONS = "popsize"

    sigma: float = 0.5
    distribution: str = "gaussian"
    popsize: int = 10

    def __post_init__(self) -> None:
        check_types(self)
        check(self.sigma > 0, f"sigma must be positive, got {self.sigma}")
        check_choice("distribution", self.distribution, ("gaussian", "uniform"))
        check(isinstance(self.popsize, int) and self.popsize >= 1, f"popsize must be a positive int, got {self.popsize!r}")


@register("random")
class RandomSearch(Optimizer):
    """Independent samples around x0 (categorical slots: uniform options); recommends the best one seen."""

    Config = RandomSearchConfig
    config: RandomSearchConfig
    accepts = frozenset({"continuous", "categorical", "mixed"})
    _state_attrs = ()

    @property
    def queries_per_step(self) -> int:
        return self.config.popsize

    def _ask(self) -> list[np.ndarray]:
        c = self.config
        d = self.space.continuous
        if c.distribution == "gaussian":
            z = self.rng.standard_normal((c.popsize, d))
        else:
            z = self.rng.uniform(-1.0, 1.0, size=(c.popsize, d))
        box = self.x0[:d] + c.sigma * z
        if not self.space.choices:  # a continuous space: exactly the draws it always made
            return list(box)
        slots = np.stack([self.rng.integers(n, size=c.popsize) for n in self.space.choices], axis=1)
        return list(np.concatenate([box, slots.astype(np.float64)], axis=1))

    def _tell(self, candidates: list[np.ndarray], losses: np.ndarray) -> None:
        """Nothing to learn: the base class keeps the best point seen."""

    def recommend(self) -> np.ndarray:
        return self.best[0]
