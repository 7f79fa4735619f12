"""Optimizers over categorical slots: BDPL, greedy edit search, random search, nevergrad's discrete ones."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

from blackbox_rp.optim import ConfigError, make, minimize
from blackbox_rp.optim.bdpl import project_simplex, score_gradient
from blackbox_rp.space import SearchSpace

SPACE = SearchSpace.categorical((4, 3, 5))
TARGET = np.array([3, 0, 2])


def hamming(theta: np.ndarray) -> float:
    return float((np.asarray(theta) != TARGET).sum())


# ----------------------------------------------------------------- BDPL estimator
def test_bdpl_estimator_mean_is_the_exact_gradient_of_the_expected_loss():
    """Two slots (3 and 2 options), a known loss table L[a, b], fixed probabilities p, q.

    E(p, q) = Σ_ab p_a q_b L[a, b], so ∂E/∂p_a = Σ_b q_b L[a, b] and ∂E/∂q_b = Σ_a p_a L[a, b].
    The estimator differentiates log P with respect to the probabilities themselves, and
    E[e_s / p_s] = 𝟙, so its mean is the exact gradient minus E·𝟙 per slot — a shift along 𝟙,
    which the projection onto the simplex ignores (Π(v + c𝟙) = Π(v)). We check the mean against
    ∇E − E·𝟙 within 5 standard errors of the 40,000-draw average (the tolerance, per entry).
    """
    rng = np.random.default_rng(0)
    table = np.array([[0.2, 1.0], [0.7, 0.1], [0.4, 0.9]])
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.6, 0.4])
    probs = np.array([[0.5, 0.3, 0.2], [0.6, 0.4, 0.0]])
    expected = p @ table @ q
    exact = np.array([list(table @ q), list(p @ table) + [0.0]])
    mask = np.array([[True] * 3, [True, True, False]])
    draws, I = 40_000, 4
    a = rng.choice(3, size=(draws, I), p=p)
    b = rng.choice(2, size=(draws, I), p=q)
    g = np.stack([score_gradient(probs, np.stack([a[d], b[d]], axis=1), table[a[d], b[d]]) for d in range(draws)])
    mean, se = g.mean(axis=0), g.std(axis=0) / np.sqrt(draws)
    want = np.where(mask, exact - expected, 0.0)
    assert np.all(np.abs(mean - want) <= 5 * se + 1e-12), (mean, want, se)
    # and centred per slot, mean and exact gradient agree: the part the simplex step uses
    centred = lambda v: np.where(mask, v - (v * mask).sum(1, keepdims=True) / mask.sum(1, keepdims=True), 0.0)
    assert np.allclose(centred(mean), centred(np.where(mask, exact, 0.0)), atol=5 * se.max())


def test_bdpl_estimator_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        score_gradient(np.full((1, 2), 0.5), np.array([[0]]), np.array([1.0]))
    with pytest.raises(ConfigError, match="samples must be an int >= 2"):
        make("bdpl", SPACE, samples=1)


# ------------------------------------------------------------------ projection
def brute_force_projection(v: np.ndarray) -> np.ndarray:
    """argmin ‖p − v‖ over the simplex by trying every support S: p_S = v_S − τ, τ = (Σ v_S − 1)/|S|."""
    best, best_d = None, np.inf
    for r in range(1, len(v) + 1):
        for support in itertools.combinations(range(len(v)), r):
            s = list(support)
            p = np.zeros_like(v)
            p[s] = v[s] - (v[s].sum() - 1.0) / len(s)
            if (p >= -1e-12).all():
                d = np.sum((p - v) ** 2)
                if d < best_d:
                    best, best_d = p, d
    return best


@pytest.mark.parametrize("seed", range(20))
def test_simplex_projection_is_exact(seed):
    rng = np.random.default_rng(seed)
    v = rng.normal(scale=[0.1, 1.0, 3.0][seed % 3], size=1 + seed % 6)
    p = project_simplex(v)
    assert np.allclose(p, brute_force_projection(v), atol=1e-12)
    assert abs(p.sum() - 1.0) < 1e-12 and (p >= 0).all()
    # KKT: v − p = τ on the support, v − τ ≤ 0 off it
    on = p > 0
    tau = (v - p)[on]
    assert np.allclose(tau, tau[0], atol=1e-12)
    assert np.all(v[~on] <= tau[0] + 1e-12)


def test_simplex_projection_keeps_points_of_the_simplex():
    p = np.array([0.2, 0.5, 0.3])
    assert np.allclose(project_simplex(p), p)
    assert np.allclose(project_simplex(p + 7.0), p), "a shift along 𝟙 projects to the same point"
    assert project_simplex(np.array([-3.0])).tolist() == [1.0]


# ------------------------------------------------------- kinds: refused at build
@pytest.mark.parametrize("name", ["zo-adam", "cma", "spsa"])
def test_categorical_theta_to_a_continuous_only_optimizer_is_refused_naming_both(name):
    with pytest.raises(ConfigError) as e:
        make(name, SPACE)
    msg = str(e.value)
    assert repr(name) in msg and "categorical" in msg and "continuous" in msg
    assert "bdpl" in msg and "greedy" in msg and "ng:<name>" in msg, "it lists optimizers that would do"


@pytest.mark.parametrize("name", ["bdpl", "greedy"])
def test_categorical_only_optimizers_refuse_a_box(name):
    with pytest.raises(ConfigError, match=f"'{name}' searches categorical spaces; this θ is continuous"):
        make(name, 5)


# --------------------------------------------------------------------- search
@pytest.mark.parametrize("name, params, budget", [
    ("bdpl", {"samples": 8, "lr": 0.5}, 800),
    ("greedy", {"popsize": 4}, 200),
    ("greedy", {"popsize": 4, "confirm": True}, 300),
    ("random", {"popsize": 20}, 600),
    ("ng:DiscreteOnePlusOne", {}, 300),
    ("ng:PortfolioDiscreteOnePlusOne", {}, 300),
    ("ng:NGOpt", {}, 300),
])
def test_categorical_optimizers_find_the_target(name, params, budget):
    opt = make(name, SPACE, seed=1, x0=[0, 1, 0], **params)
    res = minimize(hamming, opt, budget=budget)
    assert res.fun == 0.0 and res.x.tolist() == TARGET.tolist()
    for cand in opt.ask():
        assert SPACE.contains(cand), "every candidate is a valid option index per slot"
    opt.close()


def test_bdpl_recommends_argmax_and_keeps_each_slot_on_the_simplex():
    opt = make("bdpl", SPACE, seed=0, samples=6, lr=0.3)
    for _ in range(30):
        c = opt.ask()
        opt.tell(c, [hamming(x) for x in c])
    dist = opt.distribution()
    assert [len(d) for d in dist] == [4, 3, 5]
    for d in dist:
        assert abs(d.sum() - 1) < 1e-9 and (d >= 0).all()
    assert opt.recommend().tolist() == [float(np.argmax(d)) for d in dist]


def test_bdpl_x0_mass_starts_near_the_hand_written_prompt():
    opt = make("bdpl", SPACE, seed=0, x0=[2, 1, 4], x0_mass=0.5)
    assert opt.recommend().tolist() == [2, 1, 4]
    assert np.isclose(opt.distribution()[0][2], 0.5 + 0.5 / 4)


def test_greedy_keeps_the_current_prompt_unless_an_edit_beats_it_on_the_same_batch():
    opt = make("greedy", SPACE, seed=0, popsize=2)
    c = opt.ask()
    assert len(c) == 3 and c[0].tolist() == [0, 0, 0], "the incumbent is scored beside the edits"
    assert sum(int((x != c[0]).sum()) for x in c[1:]) == 2, "each edit changes exactly one slot"
    opt.tell(c, [1.0, 1.0, 1.0])  # a tie does not move
    assert opt.recommend().tolist() == [0, 0, 0]


def test_greedy_with_confirm_moves_only_after_an_edit_wins_on_two_minibatches():
    opt = make("greedy", SPACE, seed=0, popsize=2, confirm=True)
    assert opt.queries_per_step == 4
    c = opt.ask()
    assert c[1].tolist() == c[0].tolist() == [0, 0, 0], "no challenger yet: slot 1 repeats the incumbent"
    opt.tell(c, [1.0, 1.0, 0.5, 2.0])  # edit c[2] wins once: it becomes the challenger, the prompt stays
    assert opt.recommend().tolist() == [0, 0, 0]
    winner = c[2].copy()
    c = opt.ask()
    assert c[1].tolist() == winner.tolist(), "the challenger is scored again, beside the incumbent"
    opt.tell(c, [1.0, 1.2, 3.0, 3.0])  # it loses on the fresh minibatch: dropped, no move
    assert opt.recommend().tolist() == [0, 0, 0] and opt.challenger is None
    c = opt.ask()
    opt.tell(c, [1.0, 1.0, 0.2, 3.0])
    winner = c[2].copy()
    c = opt.ask()
    assert c[1].tolist() == winner.tolist()
    slot = int(np.flatnonzero(c[2] != c[0])[0])  # this step's edit is of another slot or the same
    opt.tell(c, [1.0, 0.5, 0.1, 3.0])  # the challenger wins again: the prompt moves to it, and this step's
    # winning edit becomes the next challenger, applied on top of the prompt it moved to
    assert opt.recommend().tolist() == winner.tolist()
    expected = winner.copy()
    expected[slot] = c[2][slot]
    assert (opt.challenger is None and expected.tolist() == winner.tolist()) or \
        opt.challenger.tolist() == expected.tolist()


def test_random_search_on_a_box_draws_as_before_and_mixed_spaces_work():
    rng = np.random.default_rng(0)
    opt = make("random", 3, seed=0, popsize=4)
    assert np.array_equal(np.stack(opt.ask()), 0.5 * rng.standard_normal((4, 3)))
    mixed = SearchSpace(continuous=2, choices=(3,))
    cands = make("random", mixed, seed=0).ask()
    assert all(mixed.contains(c) for c in cands)
    ng_mixed = make("ng:DiscreteOnePlusOne", mixed, seed=0, x0=[0.5, -0.5, 2])
    assert all(mixed.contains(c) for c in ng_mixed.ask())


# ------------------------------------------------------------- resume exactly
@pytest.mark.parametrize("name, params", [("bdpl", {"samples": 4}), ("greedy", {"popsize": 3}),
                                          ("greedy", {"popsize": 3, "confirm": True}),
                                          ("random", {"popsize": 5}), ("ng:DiscreteOnePlusOne", {}),
                                          ("ng:PortfolioDiscreteOnePlusOne", {})])
def test_state_saves_and_loads_mid_run_and_continues_bit_for_bit(name, params):
    def run(opt, steps, trace):
        for _ in range(steps):
            c = opt.ask()
            trace.append(np.stack(c).copy())
            opt.tell(c, [hamming(x) + 0.01 * i for i, x in enumerate(c)])

    ref = make(name, SPACE, seed=3, **params)
    ref_trace: list[np.ndarray] = []
    run(ref, 12, ref_trace)

    first = make(name, SPACE, seed=3, **params)
    trace: list[np.ndarray] = []
    run(first, 5, trace)
    first.ask()  # a pending ask is part of the state
    blob = pickle.dumps(first.state_dict())
    del first
    second = make(name, SPACE, seed=99, **params)  # another seed: everything must come from the state
    second.load_state_dict(pickle.loads(blob))
    run(second, 7, trace)
    assert all(np.array_equal(a, b) for a, b in zip(trace, ref_trace)) and len(trace) == len(ref_trace)
    assert np.array_equal(second.recommend(), ref.recommend())
