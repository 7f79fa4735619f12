"""REFINE: the derangement is fixed with no fixed point; the defense never reads ground-truth labels."""

from dataclasses import replace

import numpy as np
import pytest

from blackbox_rp.data import Dataset
from blackbox_rp.exposure import Response
from blackbox_rp.ledger import Budget, BudgetExhausted, Ledger
from blackbox_rp.mapping import make_mapping
from blackbox_rp.optim import make
from blackbox_rp.reprogram import recommended_optimizer_params
from blackbox_rp.studies.refine import RefineConfig, pseudo_labels, refine_blackbox, refine_whitebox
from blackbox_rp.studies.surrogate import SurrogateConfig


@pytest.mark.parametrize("n", [2, 3, 10, 1000])
def test_derangement_has_no_fixed_point_for_any_seed(n):
    for seed in range(50 if n < 1000 else 3):
        m = make_mapping("derangement", n, n, seed=seed)
        assert sorted(m.source_of.tolist()) == list(range(n))
        assert (m.source_of != np.arange(n)).all()


def test_derangement_is_fixed_and_scores_are_the_permuted_probabilities():
    m = make_mapping("derangement", 10, 10, seed=4)
    before = m.source_of.copy()
    p = np.random.default_rng(0).dirichlet(np.ones(10), size=50)
    m.fit(p, np.random.default_rng(1).integers(0, 10, 50))  # fitting must not move it
    assert np.array_equal(m.source_of, before)
    np.testing.assert_allclose(m.scores(Response.from_probs(p)), p[:, before], atol=1e-6)
    # predicted target t exactly when the model says source_of[t]
    assert np.array_equal(before[m.predict(p)], p.argmax(1))
    assert not np.array_equal(make_mapping("derangement", 10, 10, seed=5).source_of, before)
    state = m.state_dict()
    m2 = make_mapping("derangement", 10, 10, seed=9)
    m2.load_state_dict(state)
    assert np.array_equal(m2.source_of, before)
    with pytest.raises(ValueError, match="as many source as target"):
        make_mapping("derangement", 1000, 10)


class _Tripwire(Dataset):
    """A dataset whose labels must not be read once armed (the benign set given to the defense)."""

    def __getattribute__(self, name):
        if name == "y" and object.__getattribute__(self, "__dict__").get("_armed"):
            raise AssertionError("the defense read the ground-truth labels of its benign data")
        return super().__getattribute__(name)


@pytest.fixture(scope="module")
def benign():
    from blackbox_rp.data import load_fashion_mnist

    try:
        te = load_fashion_mnist("test")
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"Fashion-MNIST not installed: {e}")
    d = _Tripwire(te.x[:240].copy(), te.y[:240].copy(), te.classes, "benign")
    object.__setattr__(d, "_armed", True)
    return d


def _oracle(budget, exposure="probs"):
    from oracles import TorchOracle

    return TorchOracle("fmnist-cnn-badnets", exposure=exposure,
                       ledger=Ledger(Budget(max_queries=budget, phases=("train", "validation"))))


def test_blackbox_refine_never_reads_labels_counts_every_query_and_keeps_the_budget(benign):
    with pytest.raises(AssertionError, match="ground-truth"):
        benign.y  # the tripwire is armed
    oracle = _oracle(2000)
    d = refine_blackbox(oracle, benign, RefineConfig(transform="lowdim", transform_params={"mask": "ones"},
                                                     max_steps=4, eval_every=2, seed=1, warm_start="none",
                                                     optimizer="zo-adam"))
    assert d.black_box and d.theta.size == 64
    led = oracle.ledger
    spent = led.counts("train").queries + led.counts("validation").queries
    assert d.queries == spent <= 2000
    # pseudo-labels (240) + the first pass over the 192 training images + 4 steps × candidates × 64 + 3 validations
    per_step = make("zo-adam", 64, **recommended_optimizer_params("zo-adam", "derangement")).queries_per_step
    assert spent == 240 + 192 + 4 * per_step * 64 + 3 * 48
    assert d.info["val_agreement"] >= 0.0  # θ₀ agrees nowhere (a derangement); selection keeps the best point
    assert (d.mapping.source_of != np.arange(10)).all()
    pred = d.predict(benign.x[:20], phase="test")
    assert pred.shape == (20,) and led.counts("test").queries == 20
    # the budget is the oracle's: a tighter one stops the run cleanly and is never crossed
    tight = _oracle(800)
    d2 = refine_blackbox(tight, benign, RefineConfig(transform="lowdim", transform_params={"mask": "ones"}, seed=1,
                                                     warm_start="none", optimizer="zo-adam"))
    assert d2.queries <= 800 and "budget" in d2.info["stop_reason"] and d2.info["steps"] >= 1
    # one that cannot pay for the pseudo-labels and a judged step is refused before the first query
    from blackbox_rp.reprogram import BudgetTooSmall
    from blackbox_rp.studies.refine import plan_refine

    small = _oracle(700)
    cfg = RefineConfig(transform="lowdim", transform_params={"mask": "ones"}, optimizer="zo-adam")
    # pseudo-labels, the warm start's 4 rounds over the 192 training images, the θ₀ pass, 2 validations, a step
    assert plan_refine(small, benign, cfg).minimum == 240 + 4 * 192 + 192 + 2 * 48 + per_step * 64
    assert plan_refine(small, benign, replace(cfg, warm_start="none")).minimum == 240 + 192 + 2 * 48 + per_step * 64
    with pytest.raises(BudgetTooSmall, match="pseudo-labels cost 240 .*, the warm start's rounds 768"):
        refine_blackbox(small, benign, cfg)
    assert small.ledger.counts("train").queries == 0 and small.ledger.counts("validation").queries == 0
    with pytest.raises(ValueError, match="needs a bound"):
        refine_blackbox(_oracle_unbounded(), benign, RefineConfig())


@pytest.mark.parametrize("warm", ["none", "surrogate"])
def test_blackbox_refine_with_zo_chain_reads_no_labels_and_pays_b_times_q_plus_1_per_step(benign, warm):
    """The chain-rule estimator in REFINE: the tripwire holds, every query is in the ledger, the budget is kept
    — and the surrogate warm start costs exactly its rounds: the training images once per round."""
    oracle = _oracle(3000)
    cfg = RefineConfig(transform="unet", optimizer="zo-chain", optimizer_params={"q": 3}, batch_size=16,
                       max_steps=3, eval_every=3, seed=2, warm_start=warm, whitebox_steps=5,
                       surrogate=SurrogateConfig(epochs=1), rounds=2, round_steps=3)
    d = refine_blackbox(oracle, benign, cfg)
    led = oracle.ledger
    assert d.black_box and d.info["optimizer"] == "zo-chain" and d.info["steps"] == 3
    rounds = 2 * 192 if warm == "surrogate" else 0
    # pseudo-labels (240) + rounds + the θ₀ pass over 192 training images + 3 steps × 16 × (3+1) + 2 validations of 48
    assert led.counts("train").queries == 240 + rounds + 192 + 3 * 16 * 4
    assert d.queries == led.counts("train").queries + led.counts("validation").queries == 240 + rounds + 192 + 192 + 96
    assert (d.info["warm_start"] is None) == (warm == "none")
    from blackbox_rp.studies.refine import plan_refine

    assert plan_refine(_oracle(3000), benign, cfg).warm_start == rounds


def test_each_warm_start_round_queries_the_transformed_training_images_and_measures_that_theta(benign, tmp_path):
    """A round sends I_θ(x) of the training images — θ the transform of the round before — through the oracle
    once, and its record's agreement is that θ's agreement with the pseudo-labels through the suspect."""
    from blackbox_rp.studies.refine import _split, _transform

    cfg = RefineConfig(transform="unet", optimizer="zo-chain", optimizer_params={"q": 2}, batch_size=16,
                       max_steps=1, seed=6, whitebox_steps=10, surrogate=SurrogateConfig(epochs=3, refit_epochs=1),
                       rounds=2, round_steps=30, round_lr=0.05)
    oracle = _oracle(3000)
    seen: list[np.ndarray] = []
    forward = oracle.forward
    oracle.forward = lambda x: (seen.append(np.array(x)), forward(x))[1]  # every image the suspect is shown
    d = refine_blackbox(oracle, benign, cfg, warm_cache=tmp_path)
    rounds = d.info["warm_start"]["rounds"]
    assert [r["round"] for r in rounds] == [0, 1] and all(r["queries"] == 192 for r in rounds)
    (cached,) = tmp_path.glob("warm-*.npz")
    tr, _ = _split(len(benign.x), cfg)
    x_tr, plain = benign.x[tr], _oracle_unbounded()
    pseudo = plain.forward(x_tr).argmax(1)
    t = _transform(cfg, plain, benign.x)
    with np.load(cached) as f:
        thetas = [f[f"round/{r}"] for r in range(2)]
    assert not np.array_equal(thetas[0], thetas[1])  # the transform moved between the rounds
    for theta, rec in zip(thetas, rounds):
        z = t(theta, x_tr)
        assert _shown(z, seen)  # the round showed the suspect exactly these images
        agree = float((d.mapping.predict(plain(z, phase="test")) == pseudo).mean())
        assert rec["agreement"] == pytest.approx(agree)
    # the last round's θ is where the fit starts, and a second run reusing the cache shows the suspect the same
    # transformed images again (a cache saves compute, not queries)
    seen.clear()
    again = refine_blackbox(oracle, benign, cfg, warm_cache=tmp_path)
    assert np.array_equal(again.theta0, d.theta0) and again.queries == d.queries
    assert all(_shown(t(theta, x_tr), seen) for theta in thetas)


def _shown(z: np.ndarray, calls: list[np.ndarray]) -> bool:
    """Whether the images ``z`` were sent, in order, as consecutive rows of the oracle's calls."""
    rows = np.concatenate(calls)
    starts = np.flatnonzero((rows == z[0]).reshape(len(rows), -1).all(1))
    return any(s + len(z) <= len(rows) and np.array_equal(rows[s:s + len(z)], z) for s in starts)


def test_the_surrogate_warm_start_is_where_the_fit_starts_and_what_step_0_measures(benign):
    """The fit starts at the warm θ (white-box REFINE against the distilled stand-in): step 0's validation is
    that θ's agreement with the suspect on the held-out benign images, through the oracle; the warm start is
    deterministic by seed and reads no label."""
    from blackbox_rp.studies.refine import _split

    cfg = RefineConfig(transform="unet", optimizer="zo-chain", optimizer_params={"q": 2}, batch_size=16,
                       max_steps=2, eval_every=2, seed=3, whitebox_steps=20, surrogate=SurrogateConfig(epochs=2),
                       rounds=1, round_steps=5)
    d = refine_blackbox(_oracle(3000), benign, cfg)
    ws = d.info["warm_start"]
    assert d.theta0 is not None and not np.allclose(d.theta0, 0.0)
    assert set(ws) >= {"surrogate_agreement", "agreement_through_surrogate", "agreement", "kept"}
    _, va = _split(len(benign.x), cfg)
    plain = _oracle_unbounded()
    agree = float((d.at(d.theta0).predict(benign.x[va]) == plain.forward(benign.x[va]).argmax(1)).mean())
    assert ws["agreement"] == pytest.approx(agree)
    assert ws["kept"] == (d.info["best_step"] == 0) and (ws["kept"] == np.array_equal(d.theta, d.theta0))
    again = refine_blackbox(_oracle(3000), benign, cfg)
    assert np.array_equal(again.theta0, d.theta0) and np.array_equal(again.theta, d.theta)


def test_warm_start_refuses_a_transform_without_a_torch_form_and_bad_values_before_any_query(benign, monkeypatch):
    from blackbox_rp.space import SearchSpace
    from blackbox_rp.studies import refine
    from blackbox_rp.transforms import InputTransform

    class NoTorchForm(InputTransform):  # a transform the warm start cannot backpropagate through
        name = "no-torch-form"
        space = SearchSpace.box(4)

        def init_theta(self):
            return np.zeros(4)

        def apply(self, theta, inputs):
            return inputs

        def describe(self):
            return {"name": self.name}

        @classmethod
        def for_task(cls, train, input_spec, *, seed=0, **params):
            return cls()

    monkeypatch.setattr(refine, "_transform", lambda cfg, oracle, x: NoTorchForm())
    oracle = _oracle(3000)
    with pytest.raises(ValueError, match="has no torch form: use warm_start='none'"):
        refine_blackbox(oracle, benign, RefineConfig(optimizer="zo-adam"))
    assert oracle.ledger.counts("train").queries == 0 and oracle.ledger.counts("validation").queries == 0
    with pytest.raises(ValueError, match="warm_start must be one of"):
        RefineConfig(warm_start="transfer")
    assert RefineConfig(surrogate={"epochs": 3}).surrogate == SurrogateConfig(epochs=3)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        SurrogateConfig(epochs=0)


def test_distilled_surrogate_agrees_with_its_oracle_far_above_chance_and_keeps_global_rng(benign):
    import torch

    from blackbox_rp.studies.surrogate import distill

    oracle = _oracle_unbounded()
    x = benign.x
    p = torch.softmax(torch.from_numpy(oracle.forward(x)), 1).numpy()
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    s = distill(x[:180], p[:180], x[180:], p[180:].argmax(1), SurrogateConfig(epochs=4), seed=0)
    assert torch.equal(torch.rand(3), before)  # its own generator and a scoped init: global state untouched
    assert s.agreement >= 0.5, s.agreement  # 10 classes: chance is ~0.1
    assert s.agreement == pytest.approx(float((s.predict(x[180:]) == p[180:].argmax(1)).mean()))
    s2 = distill(x[:180], p[:180], x[180:], p[180:].argmax(1), SurrogateConfig(epochs=4), seed=0)
    assert np.array_equal(s.predict(x), s2.predict(x))
    # label-only answers: one-hot targets work the same way
    onehot = np.eye(10, dtype=np.float32)[p[:180].argmax(1)]
    assert distill(x[:180], onehot, x[180:], p[180:].argmax(1), SurrogateConfig(epochs=2), seed=1).agreement > 0.2
    with pytest.raises(ValueError, match="distill needs"):
        distill(x[:10], p[:9], x[10:12], p[10:12].argmax(1))


def _oracle_unbounded():
    from oracles import TorchOracle

    return TorchOracle("fmnist-cnn-badnets")


def test_pseudo_labels_are_the_models_answers_through_the_exposure(benign):
    oracle = _oracle(10_000, exposure="label")
    y = pseudo_labels(oracle, benign.x[:50])
    assert np.array_equal(y, oracle.forward(benign.x[:50]).argmax(1))
    assert oracle.ledger.counts("train").queries == 50


def test_whitebox_refine_is_the_marked_ceiling_and_reads_no_labels(benign):
    oracle = _oracle(10_000)
    d = refine_whitebox(oracle, benign, RefineConfig(transform="full", whitebox_steps=6, batch_size=32))
    assert d.black_box is False and "not a black-box result" in d.info["ceiling"]
    assert d.queries == len(benign.x)  # only the pseudo-labels went through the oracle
    assert 0.0 <= d.info["val_agreement"] <= 1.0 and d.theta.size == 784
    with pytest.raises(BudgetExhausted):
        refine_whitebox(_oracle(100), benign, RefineConfig(whitebox_steps=2))


@pytest.mark.slow
def test_whitebox_refine_with_the_unet_learns_the_deranged_mapping(benign):
    """The input-dependent transform is trainable through REFINE's loss: from θ₀ (grey image, agreement at
    chance or below) a short white-box fit agrees with the suspect model on held-out benign images well above
    chance — an additive prompt cannot send each class to its own deranged class, the U-Net can."""
    oracle = _oracle(10_000)
    d = refine_whitebox(oracle, benign, RefineConfig(transform="unet", transform_params={}, whitebox_steps=60,
                                                     whitebox_lr=0.01, batch_size=32))
    assert d.black_box is False and d.theta.size == 6025
    assert d.transform.describe()["name"] == "unet"
    assert d.info["val_agreement"] >= 0.25, d.info["val_agreement"]


def test_a_cached_warm_start_is_the_computed_one_and_a_different_answer_misses(benign, tmp_path):
    cfg = RefineConfig(transform="unet", optimizer="zo-chain", optimizer_params={"q": 2}, batch_size=16,
                       max_steps=1, seed=4, whitebox_steps=5, surrogate=SurrogateConfig(epochs=1), rounds=2,
                       round_steps=3)
    d = refine_blackbox(_oracle(3000), benign, cfg, warm_cache=tmp_path)
    assert len(list(tmp_path.glob("warm-*.npz"))) == 1
    again = refine_blackbox(_oracle(3000), benign, cfg, warm_cache=tmp_path)
    assert np.array_equal(again.theta0, d.theta0) and again.info["warm_start"] == d.info["warm_start"]
    assert np.array_equal(again.theta, d.theta)  # the cached stand-in guides the fit exactly as the fresh one did
    assert again.queries == d.queries  # the pseudo-labels and the rounds are bought again: each run pays its own way
    refine_blackbox(_oracle(3000, exposure="top1"), benign, cfg, warm_cache=tmp_path)  # other answers: a miss
    assert len(list(tmp_path.glob("warm-*.npz"))) == 2


def test_whitebox_refine_spends_no_pass_refitting_a_fixed_derangement(benign):
    """The derangement is fixed (a declared FixedMapping): the white-box fit runs the model only on its
    minibatches and its validations — no pass over the training split to refit a mapping that cannot move."""
    import torch

    from oracles import TorchOracle

    seen = []

    class Counting(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            seen.append(len(x))
            return self.inner(x)

    suspect = TorchOracle("fmnist-cnn-badnets")
    oracle = TorchOracle(Counting(suspect.torch_module), input_spec=suspect.input_spec, num_classes=10,
                         ledger=Ledger(), name="counting")
    seen.clear()
    refine_whitebox(oracle, benign, RefineConfig(transform="full", transform_params={"mask": "ones"},
                                                 whitebox_steps=10, whitebox_batch_size=32, warm_start="none"))
    # pseudo-labels (240, through the oracle) + 10 minibatches of 32 + 11 validations of 48 (θ₀ and each step)
    assert sum(seen) == 240 + 10 * 32 + 11 * 48, seen
