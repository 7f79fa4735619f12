"""What a budget buys, computed before the first query: refuse a run that cannot validate a moved prompt.

Why: a budget below the cost of the first mapping fit, one step and the validation that judges it
used to spend thousands of queries and report the no-prompt score as "reprogrammed". The plan
replays the fit loop's bookkeeping (:meth:`blackbox_rp.reprogram.Reprogrammer.fit`) without
querying: the first fit on all of train, a validation pass, steps of ``queries_per_step × batch``
queries, epoch refits, a validation every ``eval_every`` steps and at the end, all while keeping
the final refit's reserve.

:func:`budget_plan` is the one function the run pipeline calls, so it can be switched to the
core's own planner when the core has one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["BudgetPlan", "BudgetTooSmall", "budget_plan"]


class BudgetTooSmall(ValueError):
    """The budget cannot pay for one step and the validation that would judge it."""


@dataclass(frozen=True)
class BudgetPlan:
    """The queries a fit will spend, phase by phase, and the steps it can afford."""

    budget: int | None        # train + validation queries (None: unbounded)
    first_fit: int            # the mapping's first fit on all of train at θ₀
    validation: int           # one validation pass
    per_step: int             # queries of one optimizer step
    epoch_refit: int          # queries of one per-epoch refit (0 when the mapping follows a window)
    final_refit: int          # the reserve kept for the final refit at the best θ
    steps: int                # steps the budget (and max_steps) allow
    validated_step: int       # the last step a validation judges (0: only θ₀ is ever validated)
    spent: int                # train + validation queries the plan spends
    fit_max_steps: int | None = None  # the max_steps the fit runs with (the plan may cap the configured one)
    warnings: tuple[str, ...] = ()

    @property
    def minimum(self) -> int:
        """The smallest budget that pays for one step and its validation."""
        return self.first_fit + 2 * self.validation + self.per_step + self.final_refit

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        d["minimum"] = self.minimum
        return d


def budget_plan(*, budget: int | None, max_steps: int | None, n_train: int, n_val: int, batch_size: int,
                queries_per_step: int, eval_every: int, refit: str, final_refit: bool = True) -> BudgetPlan:
    """Simulate the fit's spending (see the module docstring); raises :class:`BudgetTooSmall`."""
    per_step = queries_per_step * batch_size  # what the loop checks before a step
    paid = queries_per_step * min(batch_size, n_train)  # what a step spends
    reserve = n_train if final_refit else 0
    epoch = n_train if refit == "epoch" else 0
    used = n_train + n_val  # the first fit and the validation of θ₀
    if budget is not None and used > budget:
        raise BudgetTooSmall(f"budget {budget} cannot even pay for the mapping's first fit ({n_train} train "
                             f"queries) and one validation pass ({n_val}); at least "
                             f"{n_train + 2 * n_val + per_step + reserve} pays for one step and its validation")

    def simulate(cap: int) -> tuple[int, int, int]:
        """(steps, last validated step, queries used) of the fit loop under ``cap`` steps."""
        spent = used

        def affordable(n: int) -> bool:
            return budget is None or budget - spent >= n + reserve

        step = pos = validated = 0
        while step < cap:
            if not affordable(per_step):
                break
            if pos + batch_size > n_train:
                pos = 0
                if epoch:
                    if not affordable(epoch):
                        break
                    spent += epoch
            pos += min(batch_size, n_train)
            spent += paid
            step += 1
            if step % eval_every == 0:
                if not affordable(n_val):
                    break
                spent += n_val
                validated = step
        if step and validated != step and affordable(n_val):  # the closing validation of the last iterate
            spent += n_val
            validated = step
        return step, validated, spent

    cap = max_steps if max_steps is not None else (10**9 if budget is None else budget)
    step, validated, used_all = simulate(cap)
    fit_max_steps = max_steps
    warnings = []
    if budget is not None and step and validated < step:
        # the loop would pay for steps no validation judges: cap the steps where the last one is validated
        for c in range(step - 1, 0, -1):
            s2, v2, u2 = simulate(c)
            if v2 == s2:
                warnings.append(f"steps capped at {s2} so that the last one is validated (the budget pays for "
                                f"{step} steps, but the last {step - validated} would never be judged)")
                step, validated, used_all, fit_max_steps = s2, v2, u2, s2
                break
    plan = BudgetPlan(budget=budget, first_fit=n_train, validation=n_val, per_step=per_step, epoch_refit=epoch,
                      final_refit=reserve, steps=step, validated_step=validated,
                      spent=used_all + (reserve if validated else 0),
                      fit_max_steps=fit_max_steps, warnings=())
    if budget is not None and validated == 0:
        raise BudgetTooSmall(
            f"budget {budget} (train + validation queries) cannot pay for a validated step: the mapping's first "
            f"fit takes {n_train}, a validation pass {n_val}, one step {per_step}, its validation {n_val}, and "
            f"{reserve} stay reserved for the final refit — at least {plan.minimum} queries. Raise the budget to "
            f"{plan.minimum} or more, or make the splits, the validation set (val_size) or the batch smaller")
    if step and validated < step:
        warnings.append(f"the last {step - validated} of {step} steps cannot be validated within the budget")
    if budget is not None and step and step < eval_every and (max_steps is None or step < max_steps):
        warnings.append(f"the budget affords {step} steps, fewer than the evaluation interval ({eval_every}): "
                        f"only the closing validation judges the prompt")
    return BudgetPlan(**{**asdict(plan), "warnings": tuple(warnings)})

