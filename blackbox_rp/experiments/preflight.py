"""What a run's budget buys, said before the first query, on the core's own plan.

The fit plans its spending itself (:meth:`blackbox_rp.reprogram.Reprogrammer.budget_plan`): θ₀'s fit and
validation, each step, the validation that judges it, epoch refits and the final refit; a budget that
cannot pay for one judged step is refused with :class:`~blackbox_rp.reprogram.BudgetTooSmall`. This
module only turns that plan into what a run directory records and prints: the steps the budget
affords, what they spend, and warnings worth a user's attention.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..reprogram import BudgetPlan, BudgetTooSmall

__all__ = ["RunPlan", "BudgetTooSmall", "plan_run"]


@dataclass(frozen=True)
class RunPlan:
    """The core's :class:`BudgetPlan` for one run: ``steps`` it affords (None: unbounded), the train +
    validation queries they spend (``spent``, None: unbounded; the final refit's share is not spent when
    selection keeps θ₀) under ``budget``, and ``warnings``."""

    budget: int | None
    core: BudgetPlan
    steps: int | None
    spent: int | None
    warnings: tuple[str, ...] = ()

    @property
    def minimum(self) -> int:
        return self.core.minimum

    def to_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, "steps": self.steps, "spent": self.spent, "minimum": self.minimum,
                **asdict(self.core), "warnings": list(self.warnings)}


def plan_run(rp: Any, budget: int | None, max_steps: int | None, n_train: int, n_val: int) -> RunPlan:
    """The plan of ``rp.fit`` on ``n_train`` / ``n_val`` targets; refuses, before any query, a budget that
    cannot pay for one judged step."""
    core = rp.budget_plan(n_train, n_val)
    core.check(budget)
    steps = core.steps(budget, max_steps)
    warnings = []
    if budget is not None and steps is not None and steps < core.eval_every and (max_steps is None or steps < max_steps):
        warnings.append(f"the budget affords {steps} steps, fewer than the evaluation interval ({core.eval_every}): "
                        f"only the closing validation judges the prompt")
    return RunPlan(budget=budget, core=core, steps=steps, spent=None if steps is None else core.spend(steps),
                   warnings=tuple(warnings))
