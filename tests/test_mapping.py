"""Label mappings: each against a hand-worked example, plus exposure checks and state round-trips."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch

from blackbox_rp.exposure import ExposureError, LabelOnly, Response, TopK
from blackbox_rp.mapping import MAPPINGS, make_mapping
from blackbox_rp.mapping.bayesian import default_k, topk_mass_matrix
from blackbox_rp.mapping.linear import log_features
from blackbox_rp.mapping.tokens import TokenMapping
from blackbox_rp.mapping.onetoone import greedy_one_to_one


#: mappings over class scores; the token mappings (verbalizer, token-*) are tests/test_token_mappings.py's
CLASS_MAPPINGS = sorted(n for n in MAPPINGS if not issubclass(MAPPINGS[n], TokenMapping))


def _onehot(labels, c):
    return np.eye(c)[labels]


def test_registry_and_needs():
    assert sorted(MAPPINGS) == ["blm", "blm+", "derangement", "flm", "identity", "ilm", "linear", "rlm", "token-blm",
                                "token-blm+", "token-flm", "token-linear", "verbalizer"]
    assert CLASS_MAPPINGS == ["blm", "blm+", "derangement", "flm", "identity", "ilm", "linear", "rlm"]
    needs = {n: make_mapping(n, 10, 10).needs for n in CLASS_MAPPINGS}  # a derangement permutes one label space
    assert needs == {"identity": "label", "rlm": "label", "derangement": "label", "flm": "label", "ilm": "label",
                     "blm": "label", "blm+": "topk", "linear": "topk"}
    assert make_mapping("ilm", 10, 3).refit_every == "epoch"
    assert make_mapping("flm", 10, 3).refit_every is None


# ---------------------------------------------------------------- identity, RLM
def test_identity_hand_worked():
    # S = 4, T = 3: target t reads source t, renormalised over the 3 targets.
    # row 0: [.1, .2, .3] / .6 = [1/6, 1/3, 1/2] -> 2 ; row 1: [.5, .25, .25] / 1 -> 0
    p = np.array([[.1, .2, .3, .4], [.5, .25, .25, 0.]])
    m = make_mapping("identity", 4, 3)
    np.testing.assert_allclose(m.scores(p), [[1 / 6, 1 / 3, 1 / 2], [.5, .25, .25]])
    assert m.predict(p).tolist() == [2, 0]


def test_rlm_is_seeded_one_to_one_and_ignores_data():
    m = make_mapping("rlm", 6, 3, seed=0)
    # numpy's PCG64 stream: default_rng(0).choice(6, 3, replace=False) = [4, 5, 3]
    assert m.source_of.tolist() == [4, 5, 3]
    # scores read sources 4, 5, 3: row [0, 0, 0, .2, .3, .5] -> [.3, .5, .2] -> predicts 1
    p = np.array([[0, 0, 0, .2, .3, .5]])
    np.testing.assert_allclose(m.scores(p), [[.3, .5, .2]])
    m.fit(_onehot([0, 1, 2], 6), np.array([0, 1, 2]))
    assert m.source_of.tolist() == [4, 5, 3]
    assert make_mapping("rlm", 6, 3, seed=0).source_of.tolist() == [4, 5, 3]
    assert len(set(make_mapping("rlm", 1000, 10, seed=3).source_of.tolist())) == 10


# ----------------------------------------------------------------- FLM, ILM
# 7 samples, S = 4 source classes, T = 3 target classes:
#   oracle top-1 : 0 0 2 2 2 3 1
#   target label : 0 0 0 1 1 1 2
# N[s, t]       t=0 t=1 t=2
#   s=0          2   0   0
#   s=1          0   0   1
#   s=2          1   2   0
#   s=3          0   1   0
# greedy: largest 2 at (0,0) (first in row-major order) -> s0→t0, delete row 0 / col 0;
#         largest left 2 at (2,1) -> s2→t1, delete row 2 / col 1; left: (1,2)=1, (3,2)=0 -> s1→t2.
FLM_TOP1 = np.array([0, 0, 2, 2, 2, 3, 1])
FLM_Y = np.array([0, 0, 0, 1, 1, 1, 2])


def test_flm_hand_worked_from_label_only_answers():
    resp = Response("label", 4, FLM_TOP1)
    m = make_mapping("flm", 4, 3, exposure="label").fit(resp, FLM_Y)
    assert m.source_of.tolist() == [0, 2, 1]
    # label-only predictions: top-1 0 -> t0, 2 -> t1, 1 -> t2, 3 is unmapped -> uniform row -> argmax 0
    test = Response("label", 4, np.array([0, 2, 1, 3]))
    np.testing.assert_allclose(m.scores(test), [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3]])
    assert m.predict(test).tolist() == [0, 1, 2, 0]
    # probabilities: [.1, .4, .3, .2] reads sources [0, 2, 1] = [.1, .3, .4] / .8
    np.testing.assert_allclose(m.scores(np.array([[.1, .4, .3, .2]])), [[.125, .375, .5]])


def test_greedy_assignment_is_one_to_one():
    counts = np.array([[5, 5, 0], [5, 1, 0], [0, 0, 0], [0, 0, 0]])
    # (0,0) and (0,1) tie at 5: row-major first is (0,0); then (1,1)=1; then col 2 only zeros: s2 (first row left)
    assert greedy_one_to_one(counts).tolist() == [0, 1, 2]


def test_ilm_refits_with_new_answers():
    m = make_mapping("ilm", 4, 3)
    m.fit(_onehot(FLM_TOP1, 4), FLM_Y)
    assert m.source_of.tolist() == [0, 2, 1]
    # a later epoch: the prompt now sends class 0 -> s3, class 1 -> s1, class 2 -> s0
    m.fit(_onehot([3, 3, 1, 1, 0], 4), np.array([0, 0, 1, 1, 2]))
    assert m.source_of.tolist() == [3, 1, 0]


# ------------------------------------------------------------------- BLM
# 6 samples, S = 3, T = 2:  top-1 = 0 0 0 1 1 2 ; y = 0 0 1 1 1 0
#   N = [[2, 1], [0, 2], [1, 0]]
#   row-smoothed with λ = 1: s0 [2/4, 1/4], s1 [0, 2/3], s2 [1/2, 0]
#   column sums: 1/2 + 0 + 1/2 = 1 ; 1/4 + 2/3 = 11/12
#   ω = [[1/2, 3/11], [0, 8/11], [1/2, 0]]
#   f(x) = [.2, .5, .3]: f·ω = [.1 + .15, .6/11 + 4/11] = [1/4, 23/55] -> / (147/220) = [55/147, 92/147]
def test_blm_hand_worked():
    m = make_mapping("blm", 3, 2).fit(_onehot([0, 0, 0, 1, 1, 2], 3), np.array([0, 0, 1, 1, 1, 0]))
    np.testing.assert_allclose(m.omega, [[1 / 2, 3 / 11], [0, 8 / 11], [1 / 2, 0]])
    np.testing.assert_allclose(m.scores(np.array([[.2, .5, .3]])), [[55 / 147, 92 / 147]])
    assert m.predict(np.array([[.2, .5, .3], [0, 0, 1]])).tolist() == [1, 0]
    # label-only answers give the same fit and one-hot f(x): top-1 2 -> row [1/2, 0] -> [1, 0]
    lab = make_mapping("blm", 3, 2, exposure="label").fit(Response("label", 3, np.array([0, 0, 0, 1, 1, 2])),
                                                           np.array([0, 0, 1, 1, 1, 0]))
    np.testing.assert_allclose(lab.omega, m.omega)
    np.testing.assert_allclose(lab.scores(Response("label", 3, np.array([2]))), [[1, 0]])


def test_blm_lambda_is_a_parameter():
    m = make_mapping("blm", 3, 2, lam=3.0).fit(_onehot([0, 0, 0, 1, 1, 2], 3), np.array([0, 0, 1, 1, 1, 0]))
    # rows / (total + 3): s0 [2/6, 1/6], s1 [0, 2/5], s2 [1/4, 0]; columns: 7/12 and 17/30
    np.testing.assert_allclose(m.omega, [[4 / 7, 5 / 17], [0, 12 / 17], [3 / 7, 0]])


# ------------------------------------------------------------------ BLM+
# S = 4, T = 2, so k = max(1, ⌊0.15 · 2⌋) = max(1, 0) = 1 (the published formula gives 0 here).
#   f(x_i)                  y   top-1 mass
#   [.6, .3, .1, 0 ]        0   s0 .6
#   [.2, .5, .3, 0 ]        0   s1 .5
#   [.1, .1, .7, .1]        1   s2 .7
#   [.4, 0 , .1, .5]        1   s3 .5
#   N = [[.6, 0], [.5, 0], [0, .7], [0, .5]]
#   smoothed: s0 .6/1.6 = 3/8, s1 .5/1.5 = 1/3, s2 .7/1.7 = 7/17, s3 .5/1.5 = 1/3
#   columns: 3/8 + 1/3 = 17/24 ; 7/17 + 1/3 = 38/51
#   ω = [[9/17, 0], [8/17, 0], [0, 21/38], [0, 17/38]]
#   f = [.3, .3, .2, .2]  -> [.3, .2] / .5 = [.6, .4]
#   f = [.4, 0, .1, .5]   -> [18/85, 53/190] -> [684/1585, 901/1585]
BLMP_P = np.array([[.6, .3, .1, 0], [.2, .5, .3, 0], [.1, .1, .7, .1], [.4, 0, .1, .5]])
BLMP_Y = np.array([0, 0, 1, 1])


def test_blm_plus_hand_worked_with_two_classes():
    assert default_k(2) == 1 and default_k(10) == 1 and default_k(100) == 15
    m = make_mapping("blm+", 4, 2).fit(BLMP_P, BLMP_Y)
    assert m.k == 1
    np.testing.assert_allclose(m.omega, [[9 / 17, 0], [8 / 17, 0], [0, 21 / 38], [0, 17 / 38]])
    s = m.scores(np.array([[.3, .3, .2, .2], [.4, 0, .1, .5]]))
    np.testing.assert_allclose(s, [[.6, .4], [684 / 1585, 901 / 1585]])
    assert m.predict(np.array([[.3, .3, .2, .2], [.4, 0, .1, .5]])).tolist() == [0, 1]
    # the same from a top-2 exposure (what an API would show): top-1 mass is unchanged
    top2 = TopK(2).apply(Response.from_probs(BLMP_P))
    m2 = make_mapping("blm+", 4, 2, exposure="top2").fit(top2, BLMP_Y)
    np.testing.assert_allclose(m2.omega, m.omega, atol=1e-7)


def test_blm_plus_counts_each_samples_top_k_mass():
    # k = 2: sample 0 gives s0 .6, s1 .3 to t0; sample 1 s1 .5, s2 .3 to t0;
    # sample 2 s2 .7 and (tie of .1 at s0, s1, s3 -> lowest index) s0 .1 to t1; sample 3 s3 .5, s0 .4 to t1
    n = topk_mass_matrix(BLMP_P, BLMP_Y, 2, k=2)
    np.testing.assert_allclose(n, [[.6, .5], [.8, 0], [.3, .7], [0, .5]])


def test_blm_plus_on_a_real_oracle_with_two_classes():
    from sklearn.datasets import load_digits

    from oracles import TorchOracle

    d = load_digits()
    keep = np.isin(d.target, [0, 1])
    x = np.kron(d.images[keep] / 16.0, np.ones((4, 4)))[:, None, 2:30, 2:30].astype(np.float32)
    y = d.target[keep].astype(np.int64)
    o = TorchOracle("fmnist-cnn", exposure="top3")
    m = make_mapping("blm+", 10, 2, exposure=o)
    r = o(x)
    s = m.fit(r, y).scores(r)
    np.testing.assert_allclose(s.sum(axis=1), 1.0)
    assert m.k == 1 and np.isfinite(m.omega).all()
    assert (m.predict(r) == y).mean() > 0.9  # 0.956 measured: the fashion model still tells 0 from 1


# ----------------------------------------------------------------- linear
def test_linear_logits_by_hand():
    # an unfitted mapping has mu = 0, sd = 1, so features are plain log-probabilities.
    # W = I, b = [0, 1]: f = [.5, .5] -> logits [ln .5, ln .5 + 1] -> softmax [1/(1+e), e/(1+e)]
    m = make_mapping("linear", 2, 2)
    m.set_params(np.array([1., 0., 0., 1., 0., 1.]))
    np.testing.assert_allclose(m.logits(np.array([[.5, .5]])), [[np.log(.5), np.log(.5) + 1]])
    np.testing.assert_allclose(m.scores(np.array([[.5, .5]])), [[1 / (1 + np.e), np.e / (1 + np.e)]])
    # candidate params are evaluated without being adopted: W = 0, b = [2, 0] -> [e²/(1+e²), 1/(1+e²)]
    cand = np.array([0., 0., 0., 0., 2., 0.])
    np.testing.assert_allclose(m.scores(np.array([[.5, .5]]), params=cand),
                               [[np.e ** 2 / (1 + np.e ** 2), 1 / (1 + np.e ** 2)]])
    assert m.params.tolist() == [1., 0., 0., 1., 0., 1.]


def test_linear_topk_features_fill_the_unshown_mass():
    # top-2 of 4 classes shown: class 2 .6, class 0 .3; unshown mass .1 spread over 2 classes = .05
    # (capped at the smallest shown .3, so it stays .05): p = [.3, .05, .6, .05]
    r = Response("topk", 4, np.array([2]), np.array([[.6, .3]], np.float32), np.array([[2, 0]]))
    np.testing.assert_allclose(log_features(r, 4, 1e-8), np.log([[.3, .05, .6, .05]]), rtol=1e-6)


# Eight samples where target 0 = "oracle says 0 or 2" and target 1 = "oracle says 1 or 3": no
# one-to-one mapping exceeds 6/8, the linear readout separates them.
LIN_TOP = np.array([0, 2, 0, 2, 1, 3, 1, 3])
LIN_Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
LIN_P = 0.1 + 0.6 * np.eye(4)[LIN_TOP]


def test_linear_fit_is_optimal_and_beats_one_to_one():
    m = make_mapping("linear", 4, 2, l2=1e-2).fit(LIN_P, LIN_Y)
    assert m.predict(LIN_P).tolist() == LIN_Y.tolist()
    flm = make_mapping("flm", 4, 2).fit(LIN_P, LIN_Y)
    assert (flm.predict(LIN_P) == LIN_Y).mean() == 0.75
    # first-order optimality of mean CE + l2/2 ‖W‖², checked in numpy
    x = (np.log(LIN_P) - m.mu) / m.sd
    p = m.scores(LIN_P)
    err = p - np.eye(2)[LIN_Y]
    grad_w = err.T @ x / len(x) + 1e-2 * m.weight
    grad_b = err.mean(axis=0)
    assert np.abs(grad_w).max() < 1e-5 and np.abs(grad_b).max() < 1e-5


def test_linear_warm_start_keeps_standardisation_and_refits():
    m = make_mapping("linear", 4, 2).fit(LIN_P, LIN_Y)
    mu = m.mu.copy()
    shifted = 0.5 * LIN_P + 0.125  # the prompt moved the answers
    m.fit(shifted, LIN_Y, warm_start=True, max_iter=5)
    np.testing.assert_array_equal(m.mu, mu)
    m.fit(shifted, LIN_Y)
    assert not np.allclose(m.mu, mu)


def test_linear_torch_logits_match_and_are_differentiable():
    m = make_mapping("linear", 4, 2).fit(LIN_P, LIN_Y)
    logp = torch.log(torch.tensor(LIN_P, requires_grad=True))
    params = torch.tensor(m.params, requires_grad=True)
    z = m.torch_logits(logp, params)
    np.testing.assert_allclose(z.detach().numpy(), m.logits(LIN_P), atol=1e-10)
    torch.nn.functional.cross_entropy(z, torch.from_numpy(LIN_Y)).backward()
    assert params.grad.abs().sum() > 0


def test_linear_gradient_matches_autograd_and_joint_steps_train_the_readout():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(6), size=40)
    y = rng.integers(0, 3, size=40)
    m = make_mapping("linear", 6, 3, l2=0.05).fit(probs[:10], y[:10])  # fitted on a few rows only
    params = rng.normal(size=m.num_params)
    loss, grad = m.loss_and_grad(probs, y, params)
    v = torch.tensor(params, requires_grad=True)
    w = v[:18].view(3, 6)
    ref = torch.nn.functional.cross_entropy(m.torch_logits(torch.log(torch.tensor(probs)), v), torch.from_numpy(y)) \
        + 0.5 * 0.05 * (w * w).sum()
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, v.grad.numpy(), rtol=1e-10, atol=1e-12)
    # Adam on the exact gradient: the first step moves every weight by lr against its gradient's sign
    before, (start, _) = m.params, m.loss_and_grad(probs, y)
    assert m.train_step(probs, y, lr=0.01) == pytest.approx(start)
    g = m.loss_and_grad(probs, y, before)[1]
    np.testing.assert_allclose(m.params - before, -0.01 * np.sign(g), atol=1e-6)
    for _ in range(200):
        m.train_step(probs, y, lr=0.01)
    assert m.loss_and_grad(probs, y)[0] < start - 0.1
    # a replaced readout starts Adam afresh: the next step is again lr against the gradient's sign
    state = m.state_dict()
    m.set_params(before)
    m.train_step(probs, y, lr=0.01)
    np.testing.assert_allclose(m.params - before, -0.01 * np.sign(g), atol=1e-6)
    m.load_state_dict(state)  # a mapping with moments, loaded, steps like a fresh one loaded alike
    fresh = make_mapping("linear", 6, 3, l2=0.05)
    fresh.load_state_dict(state)
    m.train_step(probs, y, lr=0.01)
    fresh.train_step(probs, y, lr=0.01)
    np.testing.assert_array_equal(m.params, fresh.params)
    with pytest.raises(RuntimeError, match="call fit"):
        make_mapping("linear", 6, 3).train_step(probs, y)
    with pytest.raises(ValueError, match="lr must be > 0"):
        m.train_step(probs, y, lr=0)


# ------------------------------------------------------- common behaviour
@pytest.mark.parametrize("name", CLASS_MAPPINGS)
@pytest.mark.parametrize("kind", ["probs", "logits", "top3", "label"])
def test_scores_rows_sum_to_one_and_state_round_trips(name, kind):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((40, 6)) * 2
    t = 6 if name == "derangement" else 3  # a derangement permutes the source's own label space
    y = rng.integers(0, t, 40)
    full = Response.from_logits(logits)
    resp = {"probs": Response.from_probs(full.probs()), "logits": full,
            "top3": TopK(3).apply(full), "label": LabelOnly().apply(full)}[kind]
    m = make_mapping(name, 6, t, seed=1)
    if kind == "label" and m.needs == "topk":
        with pytest.raises(ExposureError):
            m.check("label")
        with pytest.raises(ExposureError):
            m.fit(resp, y)
        return
    m.fit(resp, y)
    s = m.scores(resp)
    assert s.shape == (40, t) and s.dtype == np.float64
    np.testing.assert_allclose(s.sum(axis=1), 1.0)
    other = make_mapping(name, 6, t, seed=2)
    other.load_state_dict(pickle.loads(pickle.dumps(m.state_dict())))
    np.testing.assert_allclose(other.scores(resp), s)
    assert other.predict(resp).tolist() == m.predict(resp).tolist()


def test_mappings_needing_probabilities_refuse_a_label_only_oracle_at_construction():
    from oracles import TorchOracle

    o = TorchOracle("fmnist-cnn", exposure="label")
    for name in ("blm+", "linear"):
        with pytest.raises(ExposureError, match=re.escape(f"label mapping '{name}' needs 'topk'") + ".*only 'label'"):
            make_mapping(name, 10, 10, exposure=o)
        with pytest.raises(ExposureError):
            make_mapping(name, 10, 10).check(o)
    for name in ("identity", "rlm", "flm", "ilm", "blm"):
        make_mapping(name, 10, 10, exposure=o).check(o)
    assert o.ledger.queries == 0


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match=r"unknown label mapping 'bayes'; available"):
        make_mapping("bayes", 10, 2)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['lambda'\]; accepted: \['lam'\]"):
        make_mapping("blm", 10, 2, **{"lambda": 1.0})
    with pytest.raises(ValueError, match="at least as many source classes"):
        make_mapping("flm", 3, 5)
    with pytest.raises(RuntimeError, match="call fit"):
        make_mapping("flm", 4, 2).scores(np.ones((1, 4)) / 4)
    m = make_mapping("blm", 4, 2)
    with pytest.raises(ValueError, match="integers"):
        m.fit(np.ones((2, 4)) / 4, np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"lie in \[0, 2\)"):
        m.fit(np.ones((2, 4)) / 4, np.array([0, 2]))
    with pytest.raises(ValueError, match="2 target labels"):
        m.fit(np.ones((2, 4)) / 4, np.array([0]))
    with pytest.raises(ValueError, match="built for 4 source classes"):
        m.fit(Response.from_probs(np.ones((2, 5)) / 5), np.array([0, 1]))
    with pytest.raises(ValueError, match="k must be"):
        make_mapping("blm+", 4, 2, k=0)
    with pytest.raises(ValueError, match="state is for mapping"):
        make_mapping("flm", 4, 2).load_state_dict(make_mapping("blm", 4, 2).state_dict())


def test_linear_constant_features_are_not_blown_up():
    # source class 3 is always floored at eps in the fitting data; a later answer that gives it mass
    # must not turn into a feature of size 1e7
    p = np.array([[.7, .3, 0, 0], [.2, .8, 0, 0], [.6, .4, 0, 0], [.1, .9, 0, 0]])
    m = make_mapping("linear", 4, 2).fit(p, np.array([0, 1, 0, 1]))
    assert m.sd[3] == 1.0 and m.sd[0] != 1.0
    assert np.abs(m.features(np.array([[.25, .25, .25, .25]]))).max() < 100
