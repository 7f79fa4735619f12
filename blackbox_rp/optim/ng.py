"""Any nevergrad optimizer by name, as ``ng:<Name>`` (e.g. ``ng:NGOpt``, ``ng:OnePlusOne``, ``ng:DE``).

nevergrad (Rapin & Teytaud, https://github.com/facebookresearch/nevergrad)
holds hundreds of derivative-free optimizers behind its own ask/tell. This
adapter builds one on an ``ng.p.Array`` starting at x0, seeds it through the
parametrization's ``random_state`` (a private ``np.random.RandomState`` drawn
from our generator — never the global one), and asks ``num_workers``
candidates per step so that a step is one batch of evaluations.

Categorical slots (a discrete prompt's words) become ``ng.p.Choice`` parameters
— one per slot, started at x0's option — in an ``ng.p.Tuple`` after the
``Array`` of the continuous part, so nevergrad's discrete optimizers
(``ng:DiscreteOnePlusOne``, ``ng:PortfolioDiscreteOnePlusOne``, ``ng:NGOpt``)
search them natively; a candidate's value is flattened back to θ (box, then
slot indices). A purely continuous θ is the plain ``Array`` it always was.

Many nevergrad optimizers choose their strategy from the budget (NGOpt
does), so it is built lazily at the first ask: :func:`minimize` passes the
budget through :meth:`Optimizer.plan`, or give ``budget=`` explicitly.

Robustness: errors raised inside nevergrad become :class:`NevergradError`
naming the optimizer and the step (nevergrad 1.0.12's NGOpt, for one, fails on
numpy >= 2.4); nevergrad is imported only when such an optimizer is made.
nevergrad runs scipy-based optimizers (Cobyla, BFGS, ... — NGOpt may pick one)
in a non-daemon thread that would keep a process from exiting; the adapter stops
it on any error, on :meth:`NevergradOptimizer.close`, and at interpreter exit.

Example::

    >>> import numpy as np
    >>> from blackbox_rp.optim import make, minimize
    >>> res = minimize(lambda th: float(th @ th), make("ng:OnePlusOne", 3, seed=0, x0=[1, 1, 1]), budget=300)
    >>> res.fun < 0.01
    True
"""

from __future__ import annotations

import copy
import difflib
import logging
import sys
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
# get_state/set_state only undo nevergrad's import side effect; RandomState is a private instance
# (nevergrad's parametrization requires that legacy type), never the global one
from numpy.random import RandomState, get_state, set_state

from .base import PREFIX_CONFIGS, PREFIX_KINDS, PREFIXES, ConfigError, Optimizer, OptimizerConfig, check
from .fields import check_types

logger = logging.getLogger(__name__)

__all__ = ["NevergradOptimizer", "NevergradConfig", "NevergradError"]


class NevergradError(RuntimeError):
    """nevergrad raised while building, asking or telling; the message names the optimizer and step."""


@dataclass(frozen=True)
class NevergradConfig(OptimizerConfig):
    """budget: evaluations nevergrad plans for; None (default) = what :func:`minimize` is given
        (``plan``), else 1000 · num_workers steps.
    num_workers: candidates per ask, evaluated as one batch (default 1, nevergrad's default).
    sigma: initial mutation scale of the array; None (default) = nevergrad's (1.0).
    """

    DIRECTIONS = "num_workers"

    budget: int | None = None
    num_workers: int = 1
    sigma: float | None = None

    def __post_init__(self) -> None:
        check_types(self)
        check(self.budget is None or (isinstance(self.budget, int) and self.budget >= 1),
              f"budget must be a positive int or None, got {self.budget!r}")
        check(isinstance(self.num_workers, int) and self.num_workers >= 1,
              f"num_workers must be a positive int, got {self.num_workers!r}")
        check(self.sigma is None or self.sigma > 0, f"sigma must be positive or None, got {self.sigma}")


def _registry() -> Any:
    if "nevergrad" in sys.modules:
        return sys.modules["nevergrad"]
    # importing nevergrad draws from numpy's global generator (nevergrad/common/sphere.py); put it back
    # so that making an ng: optimizer leaves the caller's global random state exactly as it was
    global_state = get_state()
    try:
        import nevergrad as ng
    except ImportError as e:  # pragma: no cover - nevergrad is a declared dependency
        raise ConfigError("ng:<name> optimizers need nevergrad: pip install nevergrad") from e
    finally:
        set_state(global_state)
    return ng


def _messaging_threads(obj: Any, seen: set[int] | None = None) -> list[Any]:
    """The scipy-recast worker threads inside a nevergrad optimizer (and its sub-optimizers).

    nevergrad runs "recast" optimizers (scipy's Cobyla, BFGS, ...; NGOpt may pick one) in a
    non-daemon thread blocked on a queue; if the optimizer is still referenced when Python
    exits, the interpreter waits on that thread forever. :meth:`NevergradOptimizer.close` stops them.
    """
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    found = []
    if isinstance(obj, (list, tuple)):
        for item in obj:
            found += _messaging_threads(item, seen)
        return found
    if isinstance(obj, dict):
        for item in obj.values():
            found += _messaging_threads(item, seen)
        return found
    if type(obj).__module__.startswith("nevergrad.optimization") and hasattr(obj, "__dict__"):
        for key, value in vars(obj).items():
            if key == "_messaging_thread" and value is not None:
                found.append(value)
            elif not isinstance(value, (np.ndarray, str, int, float)):
                found += _messaging_threads(value, seen)
    return found


#: nevergrad optimizers worth knowing by name, offered when a name is not found (those installed)
WELL_KNOWN = ("NGOpt", "OnePlusOne", "CMA", "DiagonalCMA", "TwoPointsDE", "DE", "PSO", "TBPSA", "Powell",
              "Cobyla", "RandomSearch")


def _unknown_ng(name: str, registry: list[str]) -> str:
    """The refusal of an unknown ``ng:`` name: the same name in another case, close names, well-known ones."""
    same = [r for r in registry if r.lower() == name.lower()]
    close = same or difflib.get_close_matches(name, registry, n=5)
    hint = f"; did you mean {', '.join(f'ng:{c}' for c in close)}?" if close else ""
    known = ", ".join(f"ng:{n}" for n in WELL_KNOWN if n in registry)
    return (f"nevergrad has no optimizer {name!r}{hint} Well-known ones: {known} "
            f"({len(registry)} names in all, as spelled in nevergrad's documentation)")


class NevergradOptimizer(Optimizer):
    """Adapter from a nevergrad optimizer to this package's ask/tell (see the module docstring)."""

    Config = NevergradConfig
    config: NevergradConfig
    accepts = frozenset({"continuous", "categorical", "mixed"})
    _state_attrs = ()

    def __init__(self, ng_name: str, dim: int, **kw) -> None:
        ng = _registry()
        if ng_name not in ng.optimizers.registry:
            raise ConfigError(_unknown_ng(ng_name, list(ng.optimizers.registry)))
        super().__init__(dim, **kw)
        self.ng_name = ng_name
        self.name = f"ng:{ng_name}"
        self.opt: Any = None
        self._asked: list[Any] = []
        self._ng_seed = int(self.rng.integers(2**32))

    @property
    def queries_per_step(self) -> int:
        return self.config.num_workers

    def _parametrization(self) -> Any:
        """``Array`` for a box; ``Tuple(Array?, Choice, ...)`` when θ has categorical slots."""
        ng = _registry()
        space = self.space
        if not space.choices:
            param = ng.p.Array(init=self.x0.copy())
            if self.config.sigma is not None:
                param.set_mutation(sigma=self.config.sigma)
            return param
        parts = []
        if space.continuous:
            box = ng.p.Array(init=self.x0[:space.continuous].copy())
            if space.bounded:
                box.set_bounds(space.low, space.high)
            if self.config.sigma is not None:
                box.set_mutation(sigma=self.config.sigma)
            parts.append(box)
        for n, start in zip(space.choices, space.slots(self.x0)):
            choice = ng.p.Choice(list(range(n)))
            choice.value = int(start)
            parts.append(choice)
        return ng.p.Tuple(*parts)

    def _theta(self, value: Any) -> np.ndarray:
        """A nevergrad value as θ: the box part, then one option index per slot."""
        if not self.space.choices:
            return np.asarray(value, dtype=np.float64)
        parts = list(value)
        box = np.asarray(parts.pop(0), dtype=np.float64).reshape(-1) if self.space.continuous else np.zeros(0)
        return np.concatenate([box, np.asarray(parts, dtype=np.float64)])

    def _build(self) -> Any:
        ng = _registry()
        param = self._parametrization()
        param.random_state = RandomState(self._ng_seed)
        budget = self.config.budget
        if budget is None:
            budget = (self._expected_steps or 1000) * self.config.num_workers
        try:
            opt = ng.optimizers.registry[self.ng_name](parametrization=param, budget=budget,
                                                       num_workers=self.config.num_workers)
        except Exception as e:
            raise NevergradError(f"nevergrad could not build {self.ng_name} (dim {self.dim}, budget {budget}, "
                                 f"num_workers {self.config.num_workers}): {type(e).__name__}: {e}") from e
        _close_at_exit(self)
        return opt

    def _ask(self) -> list[np.ndarray]:
        if self.opt is None:
            self.opt = self._build()
        try:
            self._asked = [self.opt.ask() for _ in range(self.config.num_workers)]
        except Exception as e:
            self.close()
            raise NevergradError(f"{self.name} failed in ask() at step {self.step}: {type(e).__name__}: {e}") from e
        return [self._theta(c.value) for c in self._asked]

    def _tell(self, candidates: list[np.ndarray], losses: np.ndarray) -> None:
        try:
            for c, v in zip(self._asked, losses):
                self.opt.tell(c, float(v))
        except Exception as e:
            self.close()
            raise NevergradError(f"{self.name} failed in tell() at step {self.step}: {type(e).__name__}: {e}") from e

    def recommend(self) -> np.ndarray:
        if self.opt is None or self.step == 0:
            return self.x0.copy()
        try:
            return self._theta(self.opt.provide_recommendation().value).copy()
        except Exception as e:
            raise NevergradError(f"{self.name} failed to recommend at step {self.step}: "
                                 f"{type(e).__name__}: {e}") from e

    def close(self) -> None:
        """Stop nevergrad's worker threads, if any (see :func:`_messaging_threads`); the optimizer is done."""
        for thread in _messaging_threads(self.opt):
            thread.stop()

    def state_dict(self) -> dict[str, Any]:
        if _messaging_threads(self.opt):
            raise NevergradError(f"{self.name} runs a scipy optimizer in a thread; its state cannot be saved. "
                                 f"Use an optimizer without a thread (OnePlusOne, CMA, DE, ...) to resume runs")
        state = super().state_dict()
        state["ng"] = copy.deepcopy((self.opt, self._asked, self._ng_seed))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.opt, self._asked, self._ng_seed = copy.deepcopy(state["ng"])


def _close_at_exit(optimizer: NevergradOptimizer) -> None:
    """Stop the optimizer's nevergrad threads when the interpreter exits, even if nobody called close().

    Python joins non-daemon threads *before* ``atexit`` handlers run, so a plain atexit hook
    comes too late; ``threading._register_atexit`` (what concurrent.futures uses) runs before
    the join. A weak reference keeps the hook from holding the optimizer alive.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # pragma: no cover - CPython has had it since 3.9
        return
    ref = weakref.ref(optimizer)

    def close() -> None:
        opt = ref()
        if opt is not None:
            opt.close()

    try:
        register(close)
    except RuntimeError:  # the interpreter is already shutting down
        pass


def _make_ng(ng_name: str, dim: int, seed: Any, x0: Sequence[float] | np.ndarray | None,
             params: dict[str, Any]) -> NevergradOptimizer:
    config = NevergradConfig.from_params(f"ng:{ng_name}", params)
    return NevergradOptimizer(ng_name, dim, seed=seed, x0=x0, config=config)


PREFIXES["ng"] = _make_ng
PREFIX_KINDS["ng"] = NevergradOptimizer.accepts
PREFIX_CONFIGS["ng"] = NevergradConfig
