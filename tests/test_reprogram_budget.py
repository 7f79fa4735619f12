"""The budget is planned before the first query: a fit that cannot pay for one judged step is refused,
and every step paid for is validated (issue 12: "0 optimizer steps, exit 0", "-100% validation")."""

from __future__ import annotations

import numpy as np
import pytest

from blackbox_rp import Budget, Ledger
from blackbox_rp.data import load_dataset, split_dataset
from blackbox_rp.reprogram import BudgetPlan, BudgetTooSmall, Reprogrammer
from oracles import TorchOracle


@pytest.fixture(scope="module")
def splits():
    return split_dataset(load_dataset("digits"), (120, 60, 60), seed=0)


def _build(oracle, train, mapping="blm", **config):
    return Reprogrammer.build("lowdim", oracle, mapping, "spsa-gc", train, seed=0, batch_size=32, out_size=28,
                              eval_every=2, optimizer_params={"q": 2}, **config)


def test_plan_hand_worked():
    # 120 train, 60 validation, 4 candidates (SPSA-GC q=2: ± per direction) × 32 per step, refit every epoch
    plan = BudgetPlan(first_fit=120, validation=60, per_step=128, final_refit=120, epoch_refit=120,
                      steps_per_epoch=3, eval_every=2)
    assert plan.minimum == 120 + 60 + 128 + 60 + 120 == 488
    # budget 1000: θ₀ fit+val 180; step 1 → 308; step 2 → 436 + val 60 = 496; step 3 → 624;
    # step 4 starts an epoch: +120 refit +128 → 872, + its validation 60 + reserve 120 > 1000: stop at 3
    assert plan.steps(1000) == 3
    assert plan.steps(None) is None and plan.steps(None, max_steps=7) == 7
    assert plan.steps(487) == 0 and plan.steps(488) == 1


def test_a_budget_that_cannot_pay_for_a_judged_step_is_refused_before_any_query(splits):
    train, val, _ = splits
    oracle = TorchOracle("fmnist-cnn", ledger=Ledger(Budget(max_queries=300, phases=("train", "validation"))))
    rp = _build(oracle, train)
    with pytest.raises(BudgetTooSmall) as e:
        rp.fit(train, val)
    msg = str(e.value)
    assert "300" in msg and f"at least {rp.budget_plan(len(train), len(val)).minimum}" in msg
    assert oracle.ledger.queries == 0 and oracle.ledger.calls == 0


@pytest.mark.parametrize("mapping,budget", [("blm", 1000), ("blm", 1500), ("linear", 1400)])
def test_every_step_paid_for_is_validated_and_the_plan_predicts_the_steps(splits, mapping, budget):
    train, val, _ = splits
    oracle = TorchOracle("fmnist-cnn", ledger=Ledger(Budget(max_queries=budget, phases=("train", "validation"))))
    rp = _build(oracle, train, mapping=mapping)
    plan = rp.budget_plan(len(train), len(val))
    fit = rp.fit(train, val)
    assert fit.steps == plan.steps(budget) >= 1
    assert fit.curve[-1]["step"] == fit.steps  # the last step was judged on validation
    assert fit.val_accuracy >= 0 and fit.stop_reason.startswith("budget exhausted")
    spent = oracle.ledger.counts("train").queries + oracle.ledger.counts("validation").queries
    assert spent <= budget
