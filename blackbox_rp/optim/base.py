"""The ask/tell interface every optimizer implements, its config base and the registry.

Why ask/tell (as in nevergrad and pycma) rather than ``minimize(f)`` inside each
optimizer: the caller owns evaluation. A reprogramming loop must evaluate *all*
candidates of one step on the *same* minibatch (otherwise the difference
f(θ+cΔ) − f(θ−cΔ) measures the minibatch change, not the step), must send them
to the oracle in one batch, and must be able to stop, save and resume between
steps. So an optimizer only proposes (:meth:`Optimizer.ask`) and learns
(:meth:`Optimizer.tell`); :func:`blackbox_rp.optim.minimize` is one driver of many.

A new optimizer plugs in by subclassing :class:`Optimizer`, giving it a frozen
:class:`OptimizerConfig` subclass, and decorating it with :func:`register`::

    >>> import numpy as np
    >>> from dataclasses import dataclass
    >>> from blackbox_rp.optim import Optimizer, OptimizerConfig, register, make
    >>> @dataclass(frozen=True)
    ... class HalvingConfig(OptimizerConfig):
    ...     '''factor: how much of the way to zero each step goes (default 0.5).'''
    ...     factor: float = 0.5
    >>> @register("demo-halving")
    ... class Halving(Optimizer):
    ...     Config = HalvingConfig
    ...     queries_per_step = 1
    ...     def _ask(self):
    ...         return [self.x * (1 - self.config.factor)]
    ...     def _tell(self, candidates, losses):
    ...         self.x = candidates[0]
    ...     def recommend(self):
    ...         return self.x.copy()
    >>> opt = make("demo-halving", 2, x0=np.ones(2))
    >>> c = opt.ask(); opt.tell(c, [0.0]); opt.recommend().tolist()
    [0.5, 0.5]
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence, TypeVar

import numpy as np

from ..registry import Registry
from ..space import SearchSpace, SpaceError

logger = logging.getLogger(__name__)

__all__ = ["Optimizer", "OptimizerConfig", "register", "make", "available", "REGISTRY", "ConfigError",
           "config_class", "directions_param", "as_generator", "as_space", "accepting"]


class ConfigError(ValueError):
    """An optimizer parameter that does not exist or has a value the optimizer cannot use."""


@dataclass(frozen=True)
class OptimizerConfig:
    """Base of the frozen per-optimizer configs.

    Subclasses list their parameters as fields with documented defaults and
    check them in ``__post_init__``; :meth:`from_params` rejects unknown keys by
    naming the accepted ones. ``PRESETS`` maps a preset name to a dict of
    parameter values (``make(..., preset="blackvip")``); explicit parameters
    override the preset.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    #: the parameter that sets how many candidates (directions, a population) one step evaluates, so a
    #: sweep can compare "directions per step" across optimizers; None: the optimizer has no such knob
    DIRECTIONS: ClassVar[str | None] = None

    @classmethod
    def accepted(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_params(cls, optimizer: str, params: dict[str, Any]) -> "OptimizerConfig":
        params = dict(params)
        preset = params.pop("preset", None)
        if preset is not None:
            if not isinstance(preset, str) or preset not in cls.PRESETS:
                known = ", ".join(sorted(cls.PRESETS)) or "none"
                raise ConfigError(f"optimizer {optimizer!r} has no preset {preset!r}; presets: {known}")
            params = {**cls.PRESETS[preset], **params}
        unknown = sorted(set(params) - set(cls.accepted()))
        if unknown:
            extra = " and preset=" + "|".join(sorted(cls.PRESETS)) if cls.PRESETS else ""
            raise ConfigError(f"optimizer {optimizer!r} does not accept {', '.join(map(repr, unknown))}; "
                              f"accepted parameters: {', '.join(cls.accepted()) or '(none)'}{extra}")
        try:
            return cls(**params)
        except ConfigError:
            raise
        except (TypeError, ValueError) as e:
            raise ConfigError(f"optimizer {optimizer!r}: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds (for ``__post_init__``)."""
    if not condition:
        raise ConfigError(message)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    check(value in choices, f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def as_space(dim: int | SearchSpace) -> SearchSpace:
    """A :class:`~blackbox_rp.space.SearchSpace` from a space or a positive int (a box of that many floats)."""
    if isinstance(dim, SearchSpace):
        return dim
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ConfigError(f"dim must be a positive int or a SearchSpace, got {dim!r}")
    return SearchSpace.box(int(dim))


def accepting(kind: str) -> list[str]:
    """Registered optimizers (and prefixed families) that accept spaces of ``kind``."""
    names = [n for n in sorted(REGISTRY) if kind in REGISTRY[n].accepts]
    return names + [f"{p}:<name>" for p, kinds in sorted(PREFIX_KINDS.items()) if kind in kinds]


def as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A private numpy Generator from a seed (never the global numpy state)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ConfigError(f"seed must be a whole number >= 0 (or a numpy Generator, or None for fresh entropy), "
                          f"got {seed!r}")
    return np.random.default_rng(None if seed is None else int(seed))


class Optimizer(ABC):
    """An ask/tell optimizer of a float64 vector θ of length ``dim``.

    Protocol: ``cands = ask()`` returns every candidate of one step (the caller
    evaluates them all, on the same minibatch); ``tell(cands, losses)`` passes
    their losses back in the same order. ``recommend()`` is the current best
    estimate of θ (the iterate for gradient methods, the mean for CMA-ES, the
    best point seen for search methods); ``best`` is the best *evaluated*
    candidate and its loss. ``stop()`` returns a reason to stop, or None.

    Subclasses set ``Config`` and implement ``_ask``, ``_tell`` and
    ``recommend``; they keep their evolving state in attributes listed in
    ``_state_attrs`` so :meth:`state_dict` captures it (the random generator
    ``rng``, ``step`` and the pending candidates are handled here).
    """

    Config: ClassVar[type[OptimizerConfig]] = OptimizerConfig
    #: attributes (besides rng, step, best, pending) that make up the evolving state
    _state_attrs: ClassVar[tuple[str, ...]] = ("x",)
    #: True when all candidates of one ask() are independent and may be evaluated in one batch
    parallel: ClassVar[bool] = True
    #: the kinds of search space (:data:`blackbox_rp.space.KINDS`) this optimizer can search
    accepts: ClassVar[frozenset[str]] = frozenset({"continuous"})
    name: str = "?"

    def __init__(self, dim: int | SearchSpace, *, seed: int | np.random.Generator | None = 0,
                 x0: Sequence[float] | np.ndarray | None = None, config: OptimizerConfig | None = None):
        self.space = as_space(dim)
        if self.space.dim < 1:
            raise ConfigError("θ has no dimensions: nothing to optimise")
        if self.space.kind not in self.accepts:
            raise ConfigError(f"optimizer {self.name!r} searches {' or '.join(sorted(self.accepts))} spaces; "
                              f"this θ is {self.space.kind} ({self.space.describe_short()}): choose an optimizer "
                              f"that accepts {self.space.kind} spaces ({', '.join(accepting(self.space.kind))})")
        self.dim = self.space.dim
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise ConfigError(f"{type(self).__name__} needs a {self.Config.__name__}, got {type(self.config).__name__}")
        if x0 is None:
            x = np.zeros(self.dim)
        else:
            x = np.array(x0, dtype=np.float64).reshape(-1)
            if x.shape != (self.dim,):
                raise ConfigError(f"x0 has {x.size} values but dim is {self.dim}")
            if not np.all(np.isfinite(x)):
                raise ConfigError("x0 contains NaN or inf")
        if self.space.choices:
            try:
                self.space.validate(x, "x0")
            except SpaceError as e:
                raise ConfigError(str(e)) from e
        self.x0 = x.copy()
        self.x = x
        self.rng = as_generator(seed)
        self.step = 0
        self.best_x: np.ndarray | None = None
        self.best_f = math.inf
        self._pending: list[np.ndarray] | None = None
        self._expected_steps: int | None = None

    # ------------------------------------------------------------ subclasses
    @abstractmethod
    def _ask(self) -> list[np.ndarray]:
        """The candidates of the next step (float64, shape (dim,))."""

    @abstractmethod
    def _tell(self, candidates: list[np.ndarray], losses: np.ndarray) -> None:
        """Learn from the losses of the candidates ``_ask`` returned."""

    @abstractmethod
    def recommend(self) -> np.ndarray:
        """The current best estimate of θ, float64 of shape (dim,)."""

    @property
    @abstractmethod
    def queries_per_step(self) -> int:
        """Objective evaluations per step: ``len(ask())``."""

    # --------------------------------------------------------------- public
    def ask(self) -> list[np.ndarray]:
        """Every candidate of the next step. Asking again before ``tell`` returns the same candidates."""
        if self._pending is None:
            cands = [np.array(c, dtype=np.float64).reshape(self.dim) for c in self._ask()]
            self._pending = cands
        return [c.copy() for c in self._pending]

    def tell(self, candidates: Sequence[np.ndarray], losses: Sequence[float]) -> None:
        """Give the losses of the candidates of the last :meth:`ask`, in the same order."""
        if self._pending is None:
            raise RuntimeError(f"{self.name}: tell() without a pending ask(); call ask() first")
        losses_arr = np.asarray(losses, dtype=np.float64).reshape(-1)
        if len(candidates) != len(self._pending) or losses_arr.size != len(self._pending):
            raise ValueError(f"{self.name}: tell() needs the {len(self._pending)} candidates of the last ask() "
                             f"and one loss each; got {len(candidates)} candidates and {losses_arr.size} losses")
        for i, (c, p) in enumerate(zip(candidates, self._pending)):
            if not np.array_equal(np.asarray(c, dtype=np.float64).reshape(-1), p):
                raise ValueError(f"{self.name}: candidate {i} given to tell() is not the one ask() returned; "
                                 f"tell the candidates of the last ask() in their order")
        bad = np.flatnonzero(~np.isfinite(losses_arr))
        if bad.size:
            raise ValueError(f"{self.name}: loss of candidate {bad[0]} is {losses_arr[bad[0]]}; "
                             f"losses must be finite (check the objective)")
        cands = self._pending
        i = int(np.argmin(losses_arr))
        if losses_arr[i] < self.best_f:
            self.best_f = float(losses_arr[i])
            self.best_x = cands[i].copy()
        self._tell(cands, losses_arr)
        self._pending = None
        self.step += 1

    def stop(self) -> str | None:
        """A reason to stop (e.g. converged), or None."""
        return None

    def close(self) -> None:
        """Release what the optimizer holds outside Python objects (the nevergrad adapter's worker
        threads); nothing for most optimizers. The optimizer is not used after closing."""

    def plan(self, max_steps: int | None) -> None:
        """Tell the optimizer how many steps it will probably get (drivers call this before the first ask).

        Optimizers whose defaults depend on the horizon use it (SPSA's A ≈ 10% of
        the iterations, Spall 1998); it never overrides an explicit parameter.
        """
        if self.step == 0 and self._pending is None and max_steps is not None and max_steps > 0:
            self._expected_steps = int(max_steps)

    @property
    def best(self) -> tuple[np.ndarray, float]:
        """The best evaluated candidate and its loss (x0 and inf before any tell)."""
        return (self.x0.copy() if self.best_x is None else self.best_x.copy()), self.best_f

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: config, step, RNG state, pending ask and the evolving state."""
        state = {attr: getattr(self, attr) for attr in self._state_attrs}
        state.update(name=self.name, dim=self.dim, config=self.config.to_dict(), step=self.step,
                     rng=self.rng.bit_generator.state, best_x=self.best_x, best_f=self.best_f,
                     pending=self._pending, expected_steps=self._expected_steps, x0=self.x0)
        return copy.deepcopy(state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` of an optimizer of the same name and dimension."""
        if state.get("name") != self.name or state.get("dim") != self.dim:
            raise ValueError(f"state is of {state.get('name')!r} in dim {state.get('dim')}, "
                             f"this optimizer is {self.name!r} in dim {self.dim}")
        if state["config"] != self.config.to_dict():
            logger.warning("%s: loading a state saved with another config; keeping the saved one", self.name)
            self.config = type(self.config)(**state["config"])
        state = copy.deepcopy(state)
        for attr in self._state_attrs:
            setattr(self, attr, state[attr])
        self.rng.bit_generator.state = state["rng"]
        self.step = state["step"]
        self.best_x, self.best_f = state["best_x"], state["best_f"]
        self._pending = state["pending"]
        self._expected_steps = state["expected_steps"]
        self.x0 = state["x0"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, step={self.step}, config={self.config})"


O = TypeVar("O", bound=type[Optimizer])

#: optimizer name -> class; ``ng:<name>`` names are resolved by the nevergrad adapter
REGISTRY = Registry("optimizer", error=ConfigError)
#: name prefix -> factory(suffix, dim, seed, x0, params), e.g. "ng" for nevergrad optimizers
PREFIXES: dict[str, Callable[..., Optimizer]] = {}
#: name prefix -> the space kinds its optimizers accept
PREFIX_KINDS: dict[str, frozenset[str]] = {}
#: name prefix -> the config class of its optimizers
PREFIX_CONFIGS: dict[str, type[OptimizerConfig]] = {}


def register(name: str) -> Callable[[O], O]:
    """Class decorator: make an :class:`Optimizer` subclass available to :func:`make` as ``name``."""
    if not name or ":" in name:
        raise ValueError(f"optimizer names are non-empty and contain no ':' (reserved for prefixes); got {name!r}")

    def deco(cls: O) -> O:
        REGISTRY.register(name)(cls)
        if "name" not in cls.__dict__:  # a class registered under two names keeps the first as its own
            cls.name = name
        return cls

    return deco


def available() -> list[str]:
    """Registered optimizer names, plus ``<prefix>:<name>`` families (e.g. ``ng:<nevergrad name>``)."""
    return sorted(REGISTRY) + [f"{p}:<name>" for p in sorted(PREFIXES)]


def config_class(name: str) -> type[OptimizerConfig]:
    """The config class of optimizer ``name`` (a registered name or ``<prefix>:<name>``)."""
    prefix, sep, _ = name.partition(":")
    if sep and prefix in PREFIX_CONFIGS:
        return PREFIX_CONFIGS[prefix]
    if name not in REGISTRY:
        raise ConfigError(f"unknown optimizer {name!r}; available: {', '.join(available())}")
    return REGISTRY[name].Config


def directions_param(name: str) -> str:
    """The parameter of optimizer ``name`` that sets its candidates per step (``q``, ``popsize``, ...).

    Example::

        >>> directions_param("spsa-gc"), directions_param("cma"), directions_param("ng:TwoPointsDE")
        ('q', 'popsize', 'num_workers')
    """
    key = config_class(name).DIRECTIONS
    if key is None:
        raise ConfigError(f"optimizer {name!r} has no parameter for directions per step; leave "
                          f"optimizer.directions_per_step out for it")
    return key


def make(name: str, dim: int | SearchSpace, seed: int | np.random.Generator | None = 0,
         x0: Sequence[float] | np.ndarray | None = None, **params: Any) -> Optimizer:
    """Build a registered optimizer by name, its parameters checked by its config.

    ``dim`` is θ's length (a box) or a :class:`~blackbox_rp.space.SearchSpace`; an optimizer
    that does not accept the space's kind is refused, naming both. ``seed`` (int or numpy
    Generator) drives every random choice; ``x0`` None starts at zeros. Unknown names and unknown parameters raise
    :class:`ConfigError` listing what exists.
    """
    if ":" in name:
        prefix, _, rest = name.partition(":")
        if prefix in PREFIXES:
            return PREFIXES[prefix](rest, dim, seed, x0, params)
    if name not in REGISTRY:  # not REGISTRY.lookup: the message lists the prefixed families too
        raise ConfigError(f"unknown optimizer {name!r}; available: {', '.join(available())}")
    cls = REGISTRY[name]
    config = cls.Config.from_params(name, params)
    opt = cls(dim, seed=seed, x0=x0, config=config)
    opt.name = name
    return opt
