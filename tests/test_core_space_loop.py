"""The modality-neutral core: θ's search space, the one loop, the objective, declared abilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blackbox_rp.exposure import Response
from blackbox_rp.ledger import BudgetExhausted
from blackbox_rp.loop import Loop, LoopCallback, StopLoop
from blackbox_rp.mapping import MAPPINGS, make_mapping
from blackbox_rp.mapping.base import DifferentiableMapping, TrainableMapping
from blackbox_rp.optim import ConfigError, make
from blackbox_rp.space import SearchSpace, SpaceError


# ------------------------------------------------------------------ space
def test_space_kinds_and_dimensions():
    assert SearchSpace.box(5).kind == "continuous" and SearchSpace.box(5).dim == 5
    cat = SearchSpace.categorical((3, 4, 2))
    assert cat.kind == "categorical" and cat.dim == 3
    mixed = SearchSpace(continuous=2, choices=(3,))
    assert mixed.kind == "mixed" and mixed.dim == 3


def test_encode_maps_slots_into_the_unit_box_and_decode_inverts_it():
    s = SearchSpace(continuous=1, choices=(4, 2), low=-1.0, high=1.0)
    theta = np.array([0.25, 3.0, 0.0])
    z = s.encode(theta)
    assert z.tolist() == [0.25, (3 + 0.5) / 4, 0.5 / 2]
    assert s.decode(z).tolist() == theta.tolist()
    # any point of the box decodes into the space: out-of-range floats are clipped, slot values floored
    assert s.decode(np.array([5.0, 1.0, -3.0])).tolist() == [1.0, 3.0, 0.0]
    rng = np.random.default_rng(0)
    for _ in range(50):
        assert s.contains(s.decode(rng.uniform(-2, 2, size=3)))
        assert s.contains(s.sample(rng))


@pytest.mark.parametrize("theta,message", [
    ([0.0, 4.0], "slot 0 takes an option index in 0..3"),
    ([0.0, 1.5], "slot 0 takes an option index"),
    ([0.0], "must have 2 entries"),
    ([np.nan, 1.0], "NaN or inf"),
    ([7.0, 1.0], "continuous part must lie in"),
])
def test_validate_names_the_part_outside_the_space(theta, message):
    s = SearchSpace(continuous=1, choices=(4,), low=-1, high=1)
    with pytest.raises(SpaceError, match=message):
        s.validate(theta)


def test_bad_spaces_are_refused():
    with pytest.raises(SpaceError, match="slot 1"):
        SearchSpace(choices=(3, 0))
    with pytest.raises(SpaceError, match="low < high"):
        SearchSpace(continuous=2, low=1, high=1)
    with pytest.raises(SpaceError, match="every option"):
        SearchSpace(choices=(2,), labels=(("a",),))


@pytest.mark.parametrize("name", ["zo-adam", "spsa-gc", "cma", "zo-sgd"])
def test_a_categorical_theta_is_refused_by_a_continuous_only_optimizer_at_build_time(name):
    with pytest.raises(ConfigError) as e:
        make(name, SearchSpace.categorical((3, 5)), seed=0)
    msg = str(e.value)
    assert name in msg and "continuous" in msg and "categorical" in msg


def test_an_int_dimension_is_a_box():
    opt = make("zo-adam", 3, seed=0)
    assert opt.space == SearchSpace.box(3)


# ------------------------------------------------------------------- loop
def test_loop_selects_the_first_best_validation_point_and_validates_the_last_step():
    xs = []

    def step(n):
        xs.append(n + 1)
        return {"loss": 1.0}

    scores = {0: 0.1, 2: 0.5, 4: 0.5, 5: 0.2}
    loop = Loop(step, max_steps=5, validate=lambda n: scores[n], eval_every=2, snapshot=lambda: len(xs))
    loop.start_fn = lambda: loop.select(0)
    res = loop.run()
    assert [p["step"] for p in res.curve] == [0, 2, 4, 5]  # every 2 steps, and the last one
    assert res.best_step == 2 and res.best_score == 0.5 and res.best_state == 2  # a tie keeps the earlier point
    assert res.stop_reason == "max_steps (5) reached" and res.steps == 5


def test_a_step_that_stops_still_gets_its_closing_validation_and_a_validation_that_stops_does_not():
    seen = []

    def step(n):
        if n == 3:
            raise StopLoop("no budget for another step")
        return {}

    res = Loop(step, validate=lambda n: seen.append(n) or 0.0, eval_every=2).run()
    assert res.steps == 3 and seen == [2, 3] and res.stop_reason == "no budget for another step"

    def validate(n):
        raise StopLoop("no budget to validate")

    res = Loop(lambda n: {}, validate=validate, eval_every=2, finish=lambda: seen.append("finish")).run()
    assert res.steps == 2 and res.stop_reason == "no budget to validate" and seen[-1] == "finish"


def test_budget_exhausted_ends_the_loop_cleanly_and_skips_finish():
    from blackbox_rp.ledger import Budget, Ledger

    ledger = Ledger(Budget(max_queries=10, phases=("train",)))
    done = []

    def step(n):
        ledger.commit_queries(ledger.reserve_queries(4, phase="train"), 4)  # the third step would cross 10
        return {}

    res = Loop(step, finish=lambda: done.append(1)).run()
    assert res.steps == 2 and res.stop_reason.startswith("budget exhausted: ") and done == []


def test_callbacks_see_each_record_stop_the_loop_and_hear_start_and_end():
    class Recorder(LoopCallback):
        def __init__(self):
            self.events = []

        def on_start(self, name):
            self.events.append(("start", name))

        def __call__(self, record):
            self.events.append(record["step"])
            return "enough" if record["step"] == 3 else None

        def on_end(self, reason):
            self.events.append(("end", reason))

    rec = Recorder()
    spent = [0]

    def step(n):
        spent[0] += 10
        return {"loss": 1.0 / (n + 1)}

    res = Loop(step, callbacks=[rec], measure=lambda: spent[0], name="demo").run()
    assert rec.events == [("start", "demo"), 1, 2, 3, ("end", "enough")]
    assert [r["queries"] for r in res.history] == [10, 20, 30]


# ------------------------------------------------------- mapping abilities
def test_mappings_declare_their_abilities():
    from blackbox_rp.mapping.tokens import TokenMapping

    for name, cls in MAPPINGS.items():
        # token mappings read the returned top-k ids of a 262k vocabulary: no dense torch form, by design
        assert issubclass(cls, DifferentiableMapping) != issubclass(cls, TokenMapping), name
    assert issubclass(MAPPINGS["linear"], TrainableMapping)
    assert not any(issubclass(MAPPINGS[n], TrainableMapping) for n in ("identity", "rlm", "flm", "ilm", "blm", "blm+"))
    d = make_mapping("linear", 4, 2).describe()
    assert d["differentiable"] is True and d["trainable"] is True and d["views"] == 1


def test_views_are_read_side_by_side_hand_worked():
    # 2 targets × 2 views, 3 source classes: rows 0-1 are target 0's views, rows 2-3 target 1's
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]], dtype=np.float32)
    m = make_mapping("blm", 3, 2, views=2)
    assert m.num_source == 6
    folded = m.fold(Response.from_probs(p))
    np.testing.assert_allclose(folded, [[0.35, 0.1, 0.05, 0.05, 0.4, 0.05], [0.1, 0.1, 0.3, 0.15, 0.15, 0.2]],
                               rtol=1e-6)
    m.fit(Response.from_probs(p), np.array([0, 1]))
    assert m.predict(Response.from_probs(p)).tolist() == [0, 1]
    with pytest.raises(ValueError, match="2 views"):
        m.fit(Response.from_probs(p[:3]), np.array([0]))


def test_whitebox_refuses_an_oracle_that_is_not_a_local_model():
    from blackbox_rp.data import load_dataset
    from blackbox_rp.oracle import InputSpec, Oracle
    from blackbox_rp.transforms import make_transform
    from blackbox_rp.whitebox import whitebox_fit

    class Remote(Oracle):
        identity = "remote-test"

        def _answer(self, inputs, call):
            return Response.from_probs(np.full((len(inputs), 10), 0.1, np.float32))

    d = load_dataset("digits").subset(np.arange(20))
    oracle = Remote(InputSpec(channels=1, height=28, width=28), 10)
    t = make_transform("lowdim", (1, 8, 8), 28, channels=1)
    with pytest.raises(ValueError, match="LocalModel"):
        whitebox_fit(t, oracle, make_mapping("flm", 10, 10), d, d)


# -------------------------------------------------------------- objective
def test_objective_scores_every_candidate_on_one_minibatch_in_one_request():
    from blackbox_rp.data import load_dataset
    from blackbox_rp.losses import make_loss
    from blackbox_rp.objective import Objective
    from blackbox_rp.transforms import TRANSFORMS
    from oracles import TorchOracle

    d = load_dataset("digits").subset(np.arange(40))
    oracle = TorchOracle("fmnist-cnn", exposure="probs")
    t = TRANSFORMS.lookup("lowdim").for_task(d, oracle.input_spec, out_size=28)
    m = make_mapping("blm", 10, 10)
    obj = Objective(t, oracle, m, make_loss("ce"))
    m.fit(obj.respond(t.init_theta(), d.x, "train"), d.y)
    calls = oracle.ledger.counts("train").calls
    rng = np.random.default_rng(0)
    cands = [t.init_theta(), rng.normal(0, 0.5, t.space.dim), rng.normal(0, 0.5, t.space.dim)]
    scored = obj.score(cands, d.x[:8], d.y[:8])
    assert oracle.ledger.counts("train").calls == calls + 1  # one request for the whole step
    assert len(scored.answers) == 24 and scored.labels.tolist() == d.y[:8].tolist() * 3
    # each candidate's loss is the loss of its own answers, in order
    for j, c in enumerate(cands):
        alone = make_loss("ce")(m.scores(oracle(t(c, d.x[:8]), phase="test")), d.y[:8])
        assert math.isclose(scored.losses[j], alone, rel_tol=1e-6)
