"""The loop that drives any ask/tell optimizer against an objective, with callbacks.

Why a loop of its own rather than each optimizer's: the objective may be an
oracle that spends a budget. The loop asks for one step's candidates, has them
evaluated together (``objective.batch`` when the objective has it, so one
minibatch serves all candidates of a step and they travel in one request),
tells the losses back, and stops on the first of: the evaluation budget would
be crossed by the next step, ``max_steps``, the optimizer's own ``stop()``, a
callback's stop, or :class:`~blackbox_rp.ledger.BudgetExhausted` raised by the
objective (the oracle's budget, which is never crossed). The result always
carries the best evaluated point.

Example::

    >>> import numpy as np
    >>> from blackbox_rp.optim import make, minimize
    >>> res = minimize(lambda th: float(np.sum((th - 1) ** 2)), make("cma", 4, seed=0), budget=600)
    >>> res.fun < 1e-3, res.queries <= 600
    (True, True)
"""

from __future__ import annotations

import json
import logging
import math
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import numpy as np

from ..loop import Loop, LoopCallback, ProgressBar
from .base import ConfigError, Optimizer

logger = logging.getLogger(__name__)

__all__ = ["minimize", "OptimizeResult", "Callback", "BatchObjective", "ProgressBar", "JsonLinesLogger",
           "EarlyStopping"]


@dataclass
class OptimizeResult:
    """What :func:`minimize` returns.

    x, fun: the best evaluated point and its measured loss (on a noisy/minibatch objective,
        a lucky draw; prefer ``recommendation`` and validate it).
    recommendation: the optimizer's own estimate of θ at the end (``opt.recommend()``).
    queries: objective evaluations spent by this call; steps: steps completed.
    stop_reason: why the loop ended. history: one record per step (see :func:`minimize`).
    """

    x: np.ndarray
    fun: float
    recommendation: np.ndarray
    queries: int
    steps: int
    stop_reason: str
    history: list[dict[str, Any]] = field(default_factory=list)


class Callback(Protocol):
    """Called after every step with its record; returning a str stops the loop with that reason.

    Subclass :class:`blackbox_rp.loop.LoopCallback` to hear the start and the end as well.
    """

    def __call__(self, record: dict[str, Any]) -> str | None: ...


class JsonLinesLogger(LoopCallback):
    """Appends every step's record as one JSON line to ``path`` (flushed, so a killed run keeps its log)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh: Any = None

    def on_start(self, name: str) -> None:
        self.fh = self.path.open("a", encoding="utf-8")

    def __call__(self, record: dict[str, Any]) -> None:
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()

    def on_end(self, reason: str) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


class EarlyStopping(LoopCallback):
    """Stops when the best loss has not improved by ``min_delta`` for ``patience`` steps.

    ``key`` picks the record field watched ("best" by default; a caller logging a
    validation metric into the record can watch that instead).
    """

    def __init__(self, patience: int = 20, min_delta: float = 0.0, key: str = "best"):
        if patience < 1:
            raise ValueError(f"patience must be a positive int, got {patience}")
        self.patience, self.min_delta, self.key = int(patience), float(min_delta), key
        self.best = math.inf
        self.since = 0

    def __call__(self, record: dict[str, Any]) -> str | None:
        value = record[self.key]
        if value < self.best - self.min_delta:
            self.best, self.since = value, 0
            return None
        self.since += 1
        if self.since >= self.patience:
            return f"early stopping: {self.key} did not improve by {self.min_delta:g} for {self.patience} steps"
        return None


class BatchObjective(ABC):
    """An objective that scores all candidates of a step at once (one oracle batch, one minibatch)."""

    @abstractmethod
    def batch(self, thetas: list[np.ndarray]) -> list[float]:
        """One loss per θ, in order."""

    def __call__(self, theta: np.ndarray) -> float:
        return self.batch([theta])[0]


def _evaluate(objective: Callable[[np.ndarray], float], cands: list[np.ndarray],
              spent: list[int]) -> list[float]:
    """All candidates of one step: one ``batch`` call for a :class:`BatchObjective`, else one call each.

    ``spent`` is incremented as evaluations complete (so a budget error midway counts what was done).
    """
    if isinstance(objective, BatchObjective):
        losses = [float(v) for v in objective.batch(cands)]
        if len(losses) != len(cands):
            raise ValueError(f"objective.batch returned {len(losses)} losses for {len(cands)} candidates")
        spent[0] += len(cands)
        return losses
    out = []
    for c in cands:
        out.append(float(objective(c)))
        spent[0] += 1
    return out


def minimize(objective: Callable[[np.ndarray], float], optimizer: Optimizer, budget: int | None = None,
             max_steps: int | None = None, callbacks: Iterable[Callable[[dict[str, Any]], str | None]] = ()
             ) -> OptimizeResult:
    """Minimise ``objective`` (θ -> float, or a :class:`BatchObjective` scoring a whole step at once).

    ``budget`` bounds objective evaluations (never exceeded: a step that would
    cross it is not started); ``max_steps`` bounds steps. At least one must be
    given, or the objective must raise ``BudgetExhausted`` eventually, or a
    callback / the optimizer must stop the loop. The loop is
    :class:`blackbox_rp.loop.Loop`, the one every fit shares.

    Each step appends to ``history`` (and hands to every callback) a record
    ``{"step", "queries", "fun" (best loss of this step), "mean" (mean loss of this step),
    "best" (best loss so far), "seconds"}``.
    """
    from .chain import InputGradientOptimizer

    if isinstance(optimizer, InputGradientOptimizer):
        raise ConfigError(f"optimizer {optimizer.name!r} estimates gradients at a model's inputs and backpropagates "
                          f"through a transform: minimize() has neither (a plain function of θ); use it through "
                          f"the Reprogrammer, or choose zo-adam / spsa-gc here")
    if budget is not None and budget < optimizer.queries_per_step:
        raise ValueError(f"budget {budget} is smaller than one step of {optimizer.name} "
                         f"({optimizer.queries_per_step} evaluations)")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    horizon = [s for s in (max_steps, None if budget is None else budget // optimizer.queries_per_step)
               if s is not None]
    optimizer.plan(min(horizon) if horizon else None)
    spent = [0]
    best = list(optimizer.best)

    def can_step() -> str | None:
        if budget is not None and spent[0] + optimizer.queries_per_step > budget:
            return f"budget of {budget} evaluations reached ({spent[0]} spent)"
        return optimizer.stop()

    def step(n: int) -> dict[str, Any]:
        cands = optimizer.ask()
        losses = _evaluate(objective, cands, spent)
        optimizer.tell(cands, losses)
        i = int(np.argmin(losses))
        if losses[i] < best[1]:
            best[:] = [cands[i].copy(), float(losses[i])]
        return {"step": optimizer.step, "queries": spent[0], "fun": float(losses[i]),
                "mean": float(np.mean(losses)), "best": best[1]}

    loop = Loop(step, max_steps=max_steps, can_step=can_step, callbacks=callbacks, name=optimizer.name)
    out = loop.run()
    result = OptimizeResult(x=best[0], fun=best[1], recommendation=optimizer.recommend(), queries=spent[0],
                            steps=out.steps, stop_reason=out.stop_reason, history=out.history)
    logger.info("%s: %s after %d steps, %d evaluations, best %.6g", optimizer.name, result.stop_reason,
                result.steps, spent[0], result.fun)
    return result
