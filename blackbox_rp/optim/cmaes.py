"""CMA-ES through pycma, and CMA-ES in a random low-dimensional subspace (BBT).

CMA-ES (Hansen & Ostermeier, "Completely derandomized self-adaptation in
evolution strategies", Evol. Comput. 2001; Hansen, "The CMA evolution
strategy: a tutorial", 2016) is run by the ``cma`` package's ask/tell object.

Seeding without global state: pycma's ``seed`` option calls
``np.random.seed`` (and draws from ``np.random``) whenever its ``randn``
option is numpy's global ``randn``. We give it instead a ``randn`` bound to
this optimizer's own :class:`numpy.random.Generator` and ``seed=nan``, so pycma
never touches ``np.random`` and the generator's state is the whole randomness
(saved by :meth:`state_dict`).

Subspace CMA-ES (Sun et al., "Black-Box Tuning for Language-Model-as-a-Service",
ICML 2022) searches z ∈ R^k, k = min(500, dim) by default, and evaluates
θ = θ0 + A z with A ∈ R^{dim×k} fixed and Gaussian. BBT draws A with std
σ̂ / (sqrt(k) σ_z), where σ̂ is the scale θ varies on (their embedding std) and σ_z
CMA-ES's initial step size in z: then each coordinate of A z has std σ̂ at the
start, whatever k. A is regenerated from its own seed rather than stored.

Example::

    >>> import numpy as np
    >>> from blackbox_rp.optim import make, minimize
    >>> opt = make("cma-subspace", 1000, seed=0, subspace_dim=20, sigma0=0.1)
    >>> opt.queries_per_step == len(opt.ask()), opt.ask()[0].shape
    (True, (1000,))
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Optimizer, OptimizerConfig, check, register
from .fields import check_types

logger = logging.getLogger(__name__)

__all__ = ["CMAES", "CMAConfig", "SubspaceCMAES", "SubspaceCMAConfig"]


class _GeneratorRandn:
    """pycma's ``randn(*shape)`` drawn from a private Generator (picklable, unlike a lambda)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


@dataclass(frozen=True)
class CMAConfig(OptimizerConfig):
    """sigma0: initial step size, the std of the first population around x0 (default 0.3, for θ of order 1).
    popsize: candidates per step; None (default) = pycma's 4 + 3 ln(dim).
    diagonal: separable CMA-ES (diagonal covariance, Ros & Hansen 2008): linear cost per
        sample, for large dim; None (default) = pycma's full covariance up to dim 1000, diagonal above.
    tolfun: stop when the recent losses span less than this (default 1e-11, pycma's).
    options: further pycma options as a dict (e.g. {"bounds": [0, 1]}); "seed", "randn" and
        "verbose" are owned by this adapter.
    """

    DIRECTIONS = "popsize"

    sigma0: float = 0.3
    popsize: int | None = None
    diagonal: bool | None = None
    tolfun: float = 1e-11
    options: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        check_types(self)
        check(self.sigma0 > 0, f"sigma0 must be positive, got {self.sigma0}")
        check(self.popsize is None or (isinstance(self.popsize, int) and self.popsize >= 2),
              f"popsize must be an int >= 2 or None, got {self.popsize!r}")
        check(self.tolfun >= 0, f"tolfun must be >= 0, got {self.tolfun}")
        owned = sorted({"seed", "randn", "verbose", "verb_disp", "verb_log"} & set(self.options or {}))
        check(not owned, f"options {owned} are set by the adapter (seed comes from make(..., seed=))")

    def __hash__(self) -> int:  # options is a dict; configs are compared by value
        return hash(repr(self))


def _new_es(x0: np.ndarray, config: CMAConfig, rng: np.random.Generator) -> Any:
    import cma

    n = len(x0)
    diagonal = config.diagonal if config.diagonal is not None else n > 1000
    opts: dict[str, Any] = {"seed": math.nan, "randn": _GeneratorRandn(rng), "verbose": -9, "verb_disp": 0,
                            "verb_log": 0, "tolfun": config.tolfun, "CMA_diagonal": bool(diagonal),
                            "maxiter": math.inf, "maxfevals": math.inf}
    if config.popsize is not None:
        opts["popsize"] = config.popsize
    opts.update(config.options or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycma warns about options it will ignore in 1-D etc.
        return cma.CMAEvolutionStrategy(x0, config.sigma0, opts)


@register("cma")
class CMAES(Optimizer):
    """CMA-ES via pycma (see the module docstring); recommends the distribution mean."""

    Config = CMAConfig
    config: CMAConfig
    _state_attrs = ()

    def __init__(self, dim: int, **kw) -> None:
        super().__init__(dim, **kw)
        self.es = _new_es(self.x0, self.config, self.rng)

    def _to_theta(self, z: np.ndarray) -> np.ndarray:
        return z

    @property
    def queries_per_step(self) -> int:
        return int(self.es.popsize)

    def _ask(self) -> list[np.ndarray]:
        self._z = self.es.ask()
        return [self._to_theta(np.asarray(z, dtype=np.float64)) for z in self._z]

    def _tell(self, candidates: list[np.ndarray], losses: np.ndarray) -> None:
        self.es.tell(self._z, [float(v) for v in losses])

    def recommend(self) -> np.ndarray:
        return self._to_theta(np.asarray(self.es.mean, dtype=np.float64).copy())

    def stop(self) -> str | None:
        why = {k: v for k, v in self.es.stop().items() if k not in ("maxiter", "maxfevals")}
        return f"cma: {why}" if why else None

    def state_dict(self) -> dict[str, Any]:
        # pycma holds our Generator (through randn): copy both together so the copy shares one generator
        state = super().state_dict()
        state["es_rng"] = copy.deepcopy((self.es, self.rng, getattr(self, "_z", None)))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.es, self.rng, self._z = copy.deepcopy(state["es_rng"])


@dataclass(frozen=True)
class SubspaceCMAConfig(CMAConfig):
    """CMA-ES's parameters (see :class:`CMAConfig`; ``sigma0`` is the std of θ's first
    perturbations, as there) and

    subspace_dim: k, the dimension searched (default 500, BBT's; capped at dim).
    sigma_z: CMA-ES's initial step size in z (default 1.0); A's std is sigma0 / (sqrt(k) sigma_z) (BBT).
    """

    subspace_dim: int = 500
    sigma_z: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(isinstance(self.subspace_dim, int) and self.subspace_dim >= 1,
              f"subspace_dim must be a positive int, got {self.subspace_dim!r}")
        check(self.sigma_z > 0, f"sigma_z must be positive, got {self.sigma_z}")

    def __hash__(self) -> int:
        return hash(repr(self))


@register("cma-subspace")
class SubspaceCMAES(CMAES):
    """CMA-ES on z with θ = θ0 + A z (BBT, Sun et al., ICML 2022); see the module docstring."""

    Config = SubspaceCMAConfig
    config: SubspaceCMAConfig

    def __init__(self, dim: int, **kw) -> None:
        Optimizer.__init__(self, dim, **kw)
        k = min(self.config.subspace_dim, self.dim)
        # A comes from its own stream of the optimizer's generator, drawn once: a state holds its seed only
        self.projection_seed = int(self.rng.integers(2**63))
        self.A = self._projection(k)
        self.es = _new_es(np.zeros(k), dataclasses.replace(self.config, sigma0=self.config.sigma_z), self.rng)

    def _projection(self, k: int) -> np.ndarray:
        std = self.config.sigma0 / (math.sqrt(k) * self.config.sigma_z)
        # a large prompt (e.g. 70k pixels x 500) would need ~300 MB in float64; float32 halves it and
        # θ only needs float32 precision there (the oracle's inputs are float32)
        dtype = np.float64 if self.dim * k <= 2**22 else np.float32
        a = np.random.default_rng(self.projection_seed).standard_normal((self.dim, k), dtype=dtype)
        a *= dtype(std)
        return a

    def _to_theta(self, z: np.ndarray) -> np.ndarray:
        return self.x0 + (self.A @ z.astype(self.A.dtype)).astype(np.float64)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["projection_seed"] = self.projection_seed
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if state["projection_seed"] != self.projection_seed:
            self.projection_seed = state["projection_seed"]
            self.A = self._projection(self.A.shape[1])
