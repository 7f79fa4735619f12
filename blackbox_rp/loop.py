"""The one optimisation loop: steps under a budget, validation-based selection, callbacks, progress.

Black-box reprogramming (:meth:`blackbox_rp.reprogram.Reprogrammer.fit`), the
white-box ceiling (:func:`blackbox_rp.whitebox.whitebox_fit`) and plain
:func:`blackbox_rp.optim.minimize` differ only in what one step does and how a
point is validated. Everything around it is here, written once:

* **when to stop** — ``max_steps``; ``can_step()`` (what the budget still
  affords, whether the optimizer converged) before each step; a step or a
  validation raising :class:`StopLoop`; ``BudgetExhausted`` from the ledger
  anywhere (a budget is a hard wall, so it ends the loop cleanly);
  a callback returning a reason;
* **selection on validation** — ``validate(step)`` every ``eval_every`` steps and
  once more after the last step if that one was not validated; the best score
  (strictly better wins, so ties keep the earlier, cheaper point) is kept with
  ``snapshot()`` of the state that produced it. Selection never sees test data:
  the loop is only handed a validation function;
* **callbacks and the progress bar** — every step's record goes to each callback;
  a :class:`LoopCallback` also hears the start and the end (with the reason).

    >>> state = {"x": 0}
    >>> def step(n):
    ...     state["x"] += 1
    ...     return {"loss": 1.0 / state["x"]}
    >>> res = Loop(step, max_steps=4, validate=lambda n: -abs(state["x"] - 2), eval_every=1,
    ...            snapshot=lambda: dict(state)).run()
    >>> res.steps, res.best_step, res.best_state, res.stop_reason
    (4, 2, {'x': 2}, 'max_steps (4) reached')
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .ledger import BudgetExhausted

logger = logging.getLogger(__name__)

__all__ = ["Loop", "LoopResult", "LoopCallback", "StopLoop", "ProgressBar"]


class StopLoop(Exception):
    """Raised by a step or a validation to end the loop cleanly with ``reason``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class LoopCallback:
    """A callback that also hears the start and the end; plain callables are fine when those are not needed.

    ``__call__(record)`` returning a non-empty str stops the loop with that reason.
    """

    def on_start(self, name: str) -> None:
        """Called once before the first step."""

    def __call__(self, record: dict[str, Any]) -> str | None:
        return None

    def on_end(self, reason: str) -> None:
        """Called once when the loop ends, with why."""


@dataclass
class LoopResult:
    """What the loop did: steps taken, why it stopped, every step's record, the validation curve and the
    selected point (``best_step``, ``best_score``, ``best_state``: the snapshot taken when it was validated)."""

    steps: int
    stop_reason: str
    history: list[dict[str, Any]] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)
    best_step: int = 0
    best_score: float = -math.inf
    best_state: Any = None


class Loop:
    """Drive ``step(n)`` (n = steps done so far; returns the step's record, a dict) until something stops it.

    Args:
        step: one step; may raise :class:`StopLoop` (the loop ends as after a break: the closing
            validation still runs) or ``BudgetExhausted``.
        max_steps: steps at most (None: until something else stops the loop).
        can_step: before each step, a reason not to take it (None: go on).
        start: called once before the first step (e.g. the first fit and the validation of θ₀; it may call
            :meth:`select`).
        validate: ``validate(n) -> score`` (higher is better) of the current point after step n;
            may raise :class:`StopLoop` when the budget cannot pay for it.
        eval_every: steps between validations.
        snapshot: the state to keep when a validation is the best so far.
        finish: called after the loop (and its closing validation) unless the ledger refused a query.
        measure: queries spent so far, for the records, the curve and the progress bar.
        callbacks: plain callables or :class:`LoopCallback` s; each step's record goes to every one.
        name: what the progress bar and the log call this loop.
    """

    def __init__(self, step: Callable[[int], dict[str, Any]], *, max_steps: int | None = None,
                 can_step: Callable[[], str | None] | None = None, start: Callable[[], None] | None = None,
                 validate: Callable[[int], float] | None = None, eval_every: int = 1,
                 snapshot: Callable[[], Any] | None = None, finish: Callable[[], None] | None = None,
                 measure: Callable[[], int] | None = None,
                 callbacks: Iterable[Callable[[dict[str, Any]], str | None]] = (), name: str = "loop"):
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
            raise ValueError(f"max_steps must be a positive int or None, got {max_steps!r}")
        if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
            raise ValueError(f"eval_every must be a positive int, got {eval_every!r}")
        self.step_fn, self.max_steps, self.can_step = step, max_steps, can_step
        self.start_fn, self.validate_fn, self.eval_every = start, validate, eval_every
        self.snapshot_fn, self.finish_fn, self.measure = snapshot, finish, measure
        self.callbacks = list(callbacks)
        self.name = name
        self.result = LoopResult(steps=0, stop_reason="")

    # ----------------------------------------------------------- selection
    def select(self, n: int) -> float:
        """Validate the current point after step ``n``, record it on the curve and keep it if best."""
        score = float(self.validate_fn(n))
        res = self.result
        point: dict[str, Any] = {"step": n}
        if self.measure is not None:
            point["queries"] = self.measure()
        point["val_accuracy"] = score
        res.curve.append(point)
        if score > res.best_score:
            res.best_score, res.best_step = score, n
            res.best_state = self.snapshot_fn() if self.snapshot_fn is not None else None
        return score

    # ----------------------------------------------------------------- run
    def run(self) -> LoopResult:
        res = self.result
        for cb in self.callbacks:
            if isinstance(cb, LoopCallback):
                cb.on_start(self.name)
        reason = ""
        t0 = time.perf_counter()
        try:
            try:
                if self.start_fn is not None:
                    self.start_fn()
                while True:
                    if self.max_steps is not None and res.steps >= self.max_steps:
                        reason = f"max_steps ({self.max_steps}) reached"
                        break
                    why = self.can_step() if self.can_step is not None else None
                    if why:
                        reason = why
                        break
                    try:
                        record = dict(self.step_fn(res.steps))
                    except StopLoop as e:
                        reason = e.reason
                        break
                    res.steps += 1
                    record.setdefault("step", res.steps)
                    if self.measure is not None:
                        record.setdefault("queries", self.measure())
                    if self.validate_fn is not None and res.steps % self.eval_every == 0:
                        record["val_accuracy"] = self.select(res.steps)
                    record["seconds"] = round(time.perf_counter() - t0, 6)
                    res.history.append(record)
                    stops = [s for s in (cb(record) for cb in self.callbacks) if s]
                    if stops:
                        reason = stops[0]
                        break
                if self.validate_fn is not None and res.steps % self.eval_every != 0:
                    self.select(res.steps)  # the last point gets its selection point too
            except StopLoop as e:
                reason = e.reason
            if self.finish_fn is not None:
                self.finish_fn()
        except BudgetExhausted as e:
            reason = f"budget exhausted: {e}"
            logger.info("%s stopped: %s", self.name, e)
        finally:
            res.stop_reason = reason or "interrupted"
            for cb in self.callbacks:
                if isinstance(cb, LoopCallback):
                    cb.on_end(res.stop_reason)
        return res


class ProgressBar(LoopCallback):
    """A tqdm bar over queries (``total`` = the budget) or steps, showing the step's ``postfix`` fields,
    closed with the reason the loop stopped (so a bar that ends short says why)."""

    def __init__(self, total: int | None = None, unit: str = "q", postfix: tuple[str, ...] = ("best",),
                 **tqdm_kwargs: Any):
        self.total, self.unit, self.postfix, self.kwargs = total, unit, postfix, tqdm_kwargs
        self.bar: Any = None

    def on_start(self, name: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc=name, unit=self.unit, **self.kwargs)

    def __call__(self, record: dict[str, Any]) -> None:
        if self.bar is None:
            return None
        done = record.get("queries", record.get("step", 0)) if self.unit == "q" else record.get("step", 0)
        self.bar.update(max(0, done - self.bar.n))
        shown = {k: f"{record[k]:.4g}" for k in self.postfix if isinstance(record.get(k), (int, float))}
        if shown:
            self.bar.set_postfix(shown, refresh=False)
        return None

    def on_end(self, reason: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"stopped: {reason}", refresh=True)
            self.bar.close()
            self.bar = None
