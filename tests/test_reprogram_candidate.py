"""refit="candidate": every θ candidate is read by the mapping fitted to its own answers (cross-fitted on the
step's minibatch), and every validated θ by the mapping refitted on the training split at that θ.

Why it exists: a discrete prompt that changes its last words changes *which* tokens the model answers, so a
readout fitted to the current prompt cannot read a candidate's answers — a search scored that way stays near
its start. These tests pin the arithmetic by hand, show the failure it fixes on a case worked by hand, and
check that the plan stays exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from blackbox_rp import Budget, Ledger
from blackbox_rp.data import split_dataset
from blackbox_rp.exposure import Response
from blackbox_rp.losses import make_loss
from blackbox_rp.mapping import make_mapping
from blackbox_rp.objective import Objective
from blackbox_rp.reprogram import BudgetPlan, ReprogramConfig, Reprogrammer
from token_lm import WordTopicLM, heldout_task

TOPICS3 = ("coding", "emotion", "psychology")


class _Identity:
    """A transform whose model inputs are the targets themselves (the answers below are made by hand)."""

    views = 1

    def __call__(self, theta, x):
        return list(x)


class _TableOracle:
    """Answers looked up in a table: the hand-made top-k responses of each model input."""

    def __init__(self, table):
        self.table = table

    def __call__(self, inputs, phase="train"):
        return Response.concat([self.table[i] for i in inputs])


def _topk(token: int, p: float = 0.9) -> Response:
    """One answer whose top-1 token is ``token`` with probability ``p`` (top-2: token 0 with the rest)."""
    return Response("topk", 10, np.array([token]), np.array([[p, 1 - p]]), np.array([[token, 0]]))


def test_cross_fitted_scores_equal_the_folds_fitted_by_hand_and_leave_the_mapping_as_it_was():
    # 8 targets: class 0 answers token 3, class 1 answers token 5 — except target 7 (class 1), which answers 3
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    tokens = [3, 5, 3, 5, 3, 5, 3, 3]
    table = {i: _topk(t) for i, t in enumerate(tokens)}
    resp = Response.concat([table[i] for i in range(8)])
    mapping = make_mapping("token-blm+", 10, 2).fit(resp, 1 - y)  # fitted the wrong way round on purpose
    before = mapping.state_dict()
    obj = Objective(_Identity(), _TableOracle(table), mapping, make_loss("ce"))
    got = obj.cross_fitted_scores(resp, y, folds=2)
    # by hand: fold 1 = targets 0..3, read by BLM+ fitted on 4..7; fold 2 = 4..7, read by BLM+ fitted on 0..3
    want = np.zeros((8, 2))
    for held, rest in ((np.arange(4), np.arange(4, 8)), (np.arange(4, 8), np.arange(4))):
        m = make_mapping("token-blm+", 10, 2).fit(resp.take(rest), y[rest])
        want[held] = m.scores(resp.take(held))
    np.testing.assert_allclose(got, want)
    after = mapping.state_dict()
    for k in before["arrays"]:
        np.testing.assert_array_equal(after["arrays"][k], before["arrays"][k])
    # and score() with folds uses exactly these out-of-fold scores
    scored = obj.score([np.zeros(1)], list(range(8)), y, folds=2)
    assert scored.losses[0] == pytest.approx(make_loss("ce")(want, y))


def test_a_candidate_that_answers_other_tokens_is_misjudged_by_the_current_readout_and_not_per_candidate():
    # θ₀'s answers separate the classes with tokens 1 / 2; the candidate's with tokens 3 / 4 — perfectly too.
    # A readout fitted at θ₀ has never seen tokens 3 and 4: it reads the candidate as noise. Fitted to the
    # candidate's own answers (out of fold), it reads it perfectly.
    y = np.array([0, 1] * 8)

    class TwoPrompts:
        views = 1

        def __call__(self, theta, x):
            return [(int(theta[0]), int(i)) for i in x]

    label_token = {0: (1, 2), 1: (3, 4)}  # prompt → (token of class 0, token of class 1)
    table = {(c, i): _topk(label_token[c][y[i]]) for c in (0, 1) for i in range(16)}
    oracle = _TableOracle(table)
    mapping = make_mapping("token-blm+", 10, 2)
    obj = Objective(TwoPrompts(), oracle, mapping, make_loss("ce"))
    mapping.fit(obj.respond(np.zeros(1), np.arange(16), "train"), y)
    current = obj.score([np.zeros(1), np.ones(1)], np.arange(16), y)
    per_candidate = obj.score([np.zeros(1), np.ones(1)], np.arange(16), y, folds=4)
    assert current.losses[1] > current.losses[0] + 0.3, "the θ₀ readout cannot read the candidate"
    assert per_candidate.losses[1] == pytest.approx(per_candidate.losses[0], abs=1e-9), \
        "fitted to its own answers, the candidate is as good as θ₀ (both separate the classes perfectly)"


def test_plan_with_a_refit_per_validation_hand_worked():
    # 100 train, 100 validation, 4 candidates × 32 per step, validation every 5 steps, ω refitted on the
    # 100 training targets before each validation after θ₀'s; no final refit
    plan = BudgetPlan(first_fit=100, validation=100, per_step=128, final_refit=0, epoch_refit=0,
                      steps_per_epoch=3, eval_every=5, validation_refit=100)
    assert plan.judge == 200 and plan.minimum == 100 + 100 + 200 + 128 == 528
    # budget 1500: θ₀ 200; 5 steps → 840 + judge 200 = 1040; step 6 → 1168, + its judge 200 = 1368 ≤ 1500;
    # step 7 → 1296 + 200 = 1496 ≤ 1500; step 8 → 1424 + 200 > 1500: 7 steps, spending 1496
    assert plan.steps(1500) == 7 and plan.spend(7) == 1496
    assert "+100 to refit the mapping at the validated θ" in plan.describe(1500)


@pytest.fixture(scope="module")
def splits():
    return split_dataset(heldout_task(TOPICS3), (0.5, 0.2, 0.3), seed=0)


@pytest.mark.parametrize("optimizer,params", [("bdpl", {"samples": 3}), ("greedy", {"popsize": 3})])
def test_a_text_fit_with_refit_per_candidate_spends_exactly_its_plan(splits, optimizer, params):
    train, val, test = splits
    budget = 6 * len(train) + 2 * len(val)
    lm = WordTopicLM(exposure="top5", ledger=Ledger(Budget(max_queries=budget, phases=("train", "validation"))))
    rp = Reprogrammer.build("discrete", lm, "token-linear", optimizer, train, optimizer_params=params,
                            transform_params={"template": "Text: {x} Topic:", "slots": 2, "candidates": "pmi",
                                              "num_candidates": 12},
                            batch_size=12, eval_every=2, refit="candidate", candidate_folds=3)
    plan = rp.budget_plan(len(train), len(val))
    assert plan.validation_refit == len(train) and plan.final_refit == 0
    fit = rp.fit(train, val)
    spent = lm.ledger.counts("train").queries + lm.ledger.counts("validation").queries
    assert fit.steps == plan.steps(budget) >= 2
    assert spent == plan.spend(fit.steps) <= budget
    # the selected ω is the one fitted on the training split at the selected θ: refitting it there changes nothing
    theta, state = fit.theta, rp.mapping.state_dict()
    lm.ledger = Ledger()  # the check's own queries, outside the fit's budget
    rp.mapping.fit(rp.objective.respond(theta, train.x, "train"), train.y)
    for k, v in state["arrays"].items():
        np.testing.assert_allclose(rp.mapping.state_dict()["arrays"][k], v)


def test_refit_per_candidate_is_refused_where_it_cannot_mean_anything(splits):
    train, _, _ = splits
    lm = WordTopicLM(exposure="top5")
    with pytest.raises(ValueError, match="mapping 'verbalizer' is fixed"):
        Reprogrammer.build("discrete", lm, "verbalizer", "bdpl", train, mapping_params={"words": TOPICS3},
                           transform_params={"template": "Text: {x} Topic:", "slots": 2, "candidates": "pmi"},
                           refit="candidate")
    with pytest.raises(ValueError, match=r"candidate_folds must lie in \[2, batch_size=8\], got 9"):
        ReprogramConfig(refit="candidate", batch_size=8, candidate_folds=9)
