"""The Reprogrammer: honest selection, exact budgets, one batch per step, resume after kill -9, and the
white-box reference. On the fast bundled fmnist-cnn with scikit-learn's digits as the target task."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from blackbox_rp import Budget, Ledger
from blackbox_rp.data import load_dataset, split_dataset
from blackbox_rp.losses import make_loss
from blackbox_rp.reprogram import BudgetTooSmall, Reprogrammer, ReprogramConfig
from blackbox_rp.whitebox import WhiteboxConfig, whitebox_fit
from oracles import TorchOracle

from killable import run_killable

SIZE, IMAGE = 28, 20  # fmnist-cnn takes 28 px; the 8x8 digits go in a 20 px centre, a 4 px frame around


class RecordingOracle(TorchOracle):
    """fmnist-cnn that remembers, per phase, the image region of every input it answered (and, with
    ``keep_inputs``, the whole inputs)."""

    def __init__(self, keep_inputs: bool = False, **kw):
        super().__init__("fmnist-cnn", **kw)
        self.keep_inputs, self.inputs = keep_inputs, []
        self.seen: list[tuple[str, np.ndarray]] = []
        self.batches: list[tuple[str, int]] = []

    def query(self, inputs, *, phase=None):
        phase = phase or self.ledger.phase
        self.batches.append((phase, len(inputs)))
        o = (SIZE - IMAGE) // 2
        self.seen.append((phase, np.asarray(inputs)[:, :, o:o + IMAGE, o:o + IMAGE].copy()))
        if self.keep_inputs:
            self.inputs.append(np.asarray(inputs).copy())
        return super().query(inputs, phase=phase)


@pytest.fixture(scope="module")
def splits():
    d = load_dataset("digits")
    return split_dataset(d, (300, 150, 150), seed=0)


def _build(oracle, train, mapping="blm+", optimizer="spsa-gc", **cfg):
    return Reprogrammer.build("lowdim", oracle, mapping, optimizer, train, out_size=SIZE,
                              transform_params={"image_size": IMAGE}, **cfg)


def test_losses_match_hand_worked_values():
    p = np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]])
    y = np.array([0, 0])
    assert make_loss("ce")(p, y) == pytest.approx(-(np.log(0.5) + np.log(0.1)) / 2)
    # focal, gamma 2: -(1-p)^2 log p
    assert make_loss("focal")(p, y) == pytest.approx(-(0.25 * np.log(0.5) + 0.81 * np.log(0.1)) / 2)
    # hinge on log-probs, margin 1: row 0 margin log 2 ≈ 0.693 -> 0.307; row 1 log(0.1/0.8) -> 1 + 2.079
    assert make_loss("hinge")(p, y) == pytest.approx((1 - np.log(2) + 1 + np.log(8)) / 2)
    assert make_loss("neg-acc")(p, y) == -0.5
    assert np.isfinite(make_loss("ce")(np.array([[0.0, 1.0]]), np.array([0])))  # exact zeros are floored
    with pytest.raises(ValueError, match="accepted"):
        make_loss("focal", alpha=1.0)
    with pytest.raises(ValueError, match="available"):
        ReprogramConfig(loss="mse")


def test_fit_never_touches_test_and_selects_on_validation(splits):
    train, val, test = splits
    # the test images are all white, which no digit is: any query showing one came from the test split
    test = type(test)(np.ones_like(test.x), test.y, test.classes, "white-test")
    assert not (train.x.reshape(len(train), -1).min(axis=1) == 1).any()
    oracle = RecordingOracle(max_batch=512)
    rp = _build(oracle, train, max_steps=12, eval_every=4, refit_every=3)
    result = rp.fit(train, val)

    def white(region):
        return (region.reshape(len(region), -1).min(axis=1) > 0.999).any()

    assert {p for p, _ in oracle.seen} == {"train", "validation"}
    assert oracle.ledger.counts("test").queries == 0
    assert not any(white(r) for _, r in oracle.seen)
    # selection: the kept (θ, ω) is the best validation point; recomputing it on validation agrees
    assert result.val_accuracy >= max(c["val_accuracy"] for c in result.curve)
    assert np.mean(rp.predict(val.x, phase="check") == val.y) == pytest.approx(result.val_accuracy)
    # the learning curve is validation accuracy against train+validation queries, increasing in queries
    qs = [c["queries"] for c in result.curve]
    assert qs == sorted(qs) and qs[-1] <= result.queries
    before = len(oracle.seen)
    ev = rp.evaluate(test)
    assert ev["queries"] == len(test) == oracle.ledger.counts("test").queries
    assert all(p == "test" and white(r) for p, r in oracle.seen[before:])  # the detector does see test rows


def test_every_candidate_of_a_step_is_one_batch_on_one_minibatch(splits):
    train, val, _ = splits
    oracle = RecordingOracle(max_batch=1024)
    rp = _build(oracle, train, optimizer="zo-adam", max_steps=3, eval_every=100, final_refit=False,
                batch_size=16, optimizer_params={"q": 3})
    rp.fit(train, val)
    steps = [(p, r) for (p, n), (_, r) in zip(oracle.batches, oracle.seen) if p == "train" and n != len(train)]
    assert len(steps) == 3
    per_step = rp.optimizer.queries_per_step
    for _, region in steps:
        assert len(region) == per_step * 16
        images = region.reshape(per_step, 16, -1)
        assert np.array_equal(images, np.broadcast_to(images[0], images.shape)), "same minibatch for all"


@pytest.mark.parametrize("limit", [1, 700, 1500, 2777])
def test_budget_is_never_crossed_and_fit_ends_cleanly(splits, limit):
    train, val, _ = splits
    oracle = TorchOracle("fmnist-cnn", ledger=Ledger(Budget(max_queries=limit, phases=("train", "validation"))))
    rp = _build(oracle, train, eval_every=5)
    plan = rp.budget_plan(len(train), len(val))
    if limit < plan.minimum:  # refused before the first query, saying what each part costs
        with pytest.raises(BudgetTooSmall, match=f"at least {plan.minimum}"):
            rp.fit(train, val)
        assert oracle.ledger.queries == 0
        return
    result = rp.fit(train, val)  # no max_steps: only the budget stops it
    spent = oracle.ledger.counts("train").queries + oracle.ledger.counts("validation").queries
    assert spent <= limit
    assert "budget" in result.stop_reason
    assert result.theta.shape == (rp.transform.dim,)
    assert result.steps == plan.steps(limit) >= 1 and result.curve[-1]["step"] == result.steps
    # what is left could not have paid for another step, its validation and the final refit
    assert limit - spent < plan.per_step + plan.epoch_refit + plan.validation + plan.final_refit


def test_linear_readout_and_ilm_refits(splits):
    train, val, test = splits
    oracle = TorchOracle("fmnist-cnn")
    rp = _build(oracle, train, mapping="linear", optimizer="zo-adam", max_steps=6, eval_every=3,
                optimizer_params={"q": 2, "lr": 0.01, "mu": 0.01})
    res = rp.fit(train, val)
    assert res.val_accuracy > 0.5  # the readout alone is far above chance (10%) on digits
    ilm = _build(TorchOracle("fmnist-cnn"), train, mapping="ilm", max_steps=12, batch_size=64, eval_every=6)
    ilm.fit(train, val)
    # ILM refits on the whole train split once per epoch (300 rows / 64 per step: epochs end at steps 4, 8)
    train_q = ilm.oracle.ledger.counts("train").queries
    per_step = ilm.optimizer.queries_per_step * 64
    assert train_q == len(train) * (1 + 2 + 1) + 12 * per_step  # initial + 2 epoch refits + final refit


def test_joint_readout_trains_with_the_prompt_at_no_query_cost(splits):
    train, val, _ = splits
    rp = _build(TorchOracle("fmnist-cnn"), train, mapping="linear", optimizer="zo-adam", max_steps=8, eval_every=4,
                refit="joint", readout_lr=0.01, final_refit=False, optimizer_params={"q": 2, "lr": 0.01, "mu": 0.01})
    labels, moved = [], []

    def spy(resp, y, lr, _step=rp.mapping.train_step):
        before = rp.mapping.params
        loss = _step(resp, y, lr)
        labels.append(np.asarray(y).copy())
        moved.append(np.abs(rp.mapping.params - before).max())
        return loss

    rp.mapping.train_step = spy
    res = rp.fit(train, val)
    per_step = rp.optimizer.queries_per_step * rp.config.batch_size
    # no epoch refit although 8 steps of 64 cross the 300-row epoch: the initial fit and the steps only
    assert rp.oracle.ledger.counts("train").queries == len(train) + 8 * per_step and res.steps == 8
    # one readout step per step, on that step's answers: its minibatch's labels once per candidate, in order
    rng, pos = np.random.default_rng(0), 0
    order = rng.permutation(len(train))
    for y in labels:
        if pos + 64 > len(train):
            order, pos = rng.permutation(len(train)), 0
        np.testing.assert_array_equal(y, np.tile(train.y[order[pos:pos + 64]], rp.optimizer.queries_per_step))
        pos += 64
    assert len(labels) == 8 and min(moved) > 0  # and every step moved the readout
    with pytest.raises(ValueError, match="no parameters to train"):
        _build(TorchOracle("fmnist-cnn"), train, mapping="blm+", refit="joint")
    with pytest.raises(ValueError, match="readout_lr"):
        ReprogramConfig(readout_lr=0)


def test_baselines_sit_on_the_prompts_canvas(splits):
    """The no-prompt baselines see exactly what the prompt at θ₀ shows the model, grey canvas included."""
    from blackbox_rp.baselines import output_only
    from blackbox_rp.transforms import make_transform

    train, _, test = splits
    canvas = {"image_size": IMAGE, "background": 0.5, "low_res": (4, 4)}  # low_res: the prompt's own, ignored
    o = RecordingOracle(keep_inputs=True)
    r = output_only(o, "linear", train, test, out_size=SIZE, canvas=canvas)
    assert r["train_queries"] == len(train) and o.ledger.counts("baseline").queries == len(train) + len(test)
    t = make_transform("lowdim", in_shape=tuple(train.x.shape[1:]), out_size=SIZE, channels=1, **canvas)
    np.testing.assert_allclose(o.inputs[0], t(t.init_theta(), train.x), atol=1e-6)
    assert o.inputs[0][0, 0, 0, 0] == pytest.approx(0.5)  # the corner is the grey background, not black


def test_whitebox_reference_is_marked_and_spends_no_queries(splits):
    train, val, test = splits
    oracle = TorchOracle("fmnist-cnn")
    rp = _build(oracle, train, mapping="linear")
    out = whitebox_fit(rp.transform, oracle, rp.mapping, train, val, test, WhiteboxConfig(steps=20, eval_every=10))
    assert out["black_box"] is False
    assert oracle.ledger.queries == 0
    assert out["curve"][0]["step"] == 0 and out["val_accuracy"] >= out["curve"][0]["val_accuracy"]
    assert 0.5 < out["test_accuracy"] <= 1.0


def test_whitebox_fit_starts_at_theta0_validates_it_first_and_refuses_a_wrong_shape(splits):
    train, val, _ = splits
    oracle = TorchOracle("fmnist-cnn")
    rp = _build(oracle, train, mapping="linear")
    first = whitebox_fit(rp.transform, oracle, rp.mapping, train, val, config=WhiteboxConfig(steps=20, eval_every=10))
    start = first["theta"]
    rp2 = _build(oracle, train, mapping="linear")
    cont = whitebox_fit(rp2.transform, oracle, rp2.mapping, train, val, theta0=start,
                        config=WhiteboxConfig(steps=1, eval_every=1, lr=1e-9))
    # step 0 is the given θ, measured: a continuation that cannot move keeps it, and agrees with the first fit
    assert cont["curve"][0]["val_accuracy"] == pytest.approx(first["val_accuracy"])
    np.testing.assert_allclose(cont["theta"], start, atol=1e-6)
    with pytest.raises(ValueError, match="theta0 has shape"):
        whitebox_fit(rp2.transform, oracle, rp2.mapping, train, val, theta0=start[:-1])
    # the black-box fit takes its start from the same place, and refuses the same wrong shape
    dim = rp2.transform.space.dim
    with pytest.raises(ValueError, match=rf"theta0 has shape \({dim - 1},\); transform 'lowdim' takes θ of shape "
                                         rf"\({dim},\)"):
        Reprogrammer(rp2.transform, oracle, rp2.mapping, "spsa-gc", theta0=start[:-1])
    np.testing.assert_array_equal(Reprogrammer(rp2.transform, oracle, rp2.mapping, "spsa-gc", theta0=start).theta,
                                  start)


RUN = textwrap.dedent("""
    import hashlib, json, sys
    from blackbox_rp.data import load_dataset, split_dataset
    from blackbox_rp.reprogram import Reprogrammer
    from oracles import TorchOracle
    train, val, test = split_dataset(load_dataset("digits"), (300, 100, 100), seed=0)
    o = TorchOracle("fmnist-cnn", journal=sys.argv[1], max_batch=32)
    rp = Reprogrammer.build("lowdim", o, "blm+", "spsa-gc", train, out_size=28, transform_params={"image_size": 20},
                            max_steps=30, eval_every=5, seed=3)
    r = rp.fit(train, val, callback=lambda s: print("step", s.step, flush=True))
    t = o.ledger.total()
    print(json.dumps({"theta": hashlib.sha256(r.theta.tobytes()).hexdigest(), "val": r.val_accuracy,
                      "test": rp.evaluate(test)["accuracy"], "queries": t.queries, "calls": t.calls,
                      "cache_hits": t.cache_hits}), flush=True)
""")


def _run(journal: Path, kill_after: int | None = None) -> dict | None:
    return run_killable(RUN, str(journal), kill_after=kill_after, seconds=240, env={"OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_killed_fit_resumes_to_the_same_result_without_paying_again(tmp_path):
    from blackbox_rp import Journal

    ref = _run(tmp_path / "ref.sqlite")
    journal = tmp_path / "killed.sqlite"
    assert _run(journal, kill_after=12) is None
    with Journal(journal) as j:
        answered = len(j)
    assert answered > 0
    resumed = _run(journal)
    assert (resumed["theta"], resumed["val"], resumed["test"]) == (ref["theta"], ref["val"], ref["test"])
    assert resumed["queries"] == ref["queries"], "queries are the algorithm's, wherever answers came from"
    assert resumed["cache_hits"] >= answered, "every answer journaled before the kill is replayed"
    assert resumed["calls"] < ref["calls"]
    again = _run(journal)  # everything is answered now: the same result for zero calls
    assert again["theta"] == ref["theta"] and again["calls"] == 0


@pytest.mark.parametrize("exposure", ["probs", "top3"])
def test_multiview_probe_is_the_probe_with_one_view_and_charges_k_queries_per_image(splits, exposure):
    from blackbox_rp.baselines import multiview_probe, output_only

    train, _, test = splits
    one = TorchOracle("fmnist-cnn", exposure=exposure)
    single = output_only(one, "linear", train, test, out_size=SIZE, canvas={"image_size": IMAGE})
    mv = multiview_probe(one, train, test, out_size=SIZE, views=[{"image_size": IMAGE}])
    assert mv["accuracy"] == single["accuracy"]
    two = TorchOracle("fmnist-cnn", exposure=exposure)
    r = multiview_probe(two, train, test, out_size=SIZE, views=[{"image_size": IMAGE}, {"image_size": SIZE}])
    assert two.ledger.counts("baseline").queries == 2 * (len(train) + len(test)) == r["train_queries"] + r["test_queries"]
    assert 0.5 < r["accuracy"] <= 1.0  # far above chance on digits
    with pytest.raises(ValueError, match="a view is a canvas"):
        multiview_probe(two, train, test, out_size=SIZE, views=[{"image_size": IMAGE, "low_res": (4, 4)}])
    with pytest.raises(ValueError, match="at least one view"):
        multiview_probe(two, train, test, out_size=SIZE, views=[])
