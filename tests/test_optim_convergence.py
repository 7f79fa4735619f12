"""Every optimizer, with its untuned defaults, reaches a stated loss within a stated query budget.

Thresholds were measured (seeds 0, 1, 2; the tests run seed 0, which is
deterministic) and set above the worst seed: about 2x above it where the loss
falls by orders of magnitude, between the worst seed and the start for
Rosenbrock, where every method ends near its start. They are regression
bounds, not wishes. Starting losses: sphere 10 / 200, rotated
ellipsoid (condition 1e3) 3.73 / 170, Rosenbrock 9 / 199 (d = 10 / 200).

Honest notes on what the numbers say:
* Rosenbrock in 200 dimensions at 50·d evaluations is out of reach for every
  method here (nevergrad's included): the bound checks progress without
  divergence (below the start) for the gradient methods and CMA-ES, and that
  the subspace CMA-ES and random search stay bounded (they never evaluate x0,
  so their best point can be worse than the start).
* Random search is the baseline; its rows show what "not learning" looks like.
"""

from __future__ import annotations

import numpy as np
import pytest

from blackbox_rp.optim import BatchObjective, make, minimize
from blackbox_rp.optim.functions import make_function

# (dim, function, budget) -> {optimizer: loss it must reach}
TARGETS: dict[tuple[int, str, int], dict[str, float]] = {
    (10, "sphere", 2000): {"spsa": 0.5, "spsa-gc": 1e-3, "zo-sgd": 0.2, "zo-adam": 2e-3, "cma": 1e-9,
                           "cma-subspace": 0.05, "random": 8.0, "ng:OnePlusOne": 1e-9},
    (10, "ellipsoid", 2000): {"spsa": 0.3, "spsa-gc": 0.1, "zo-sgd": 0.3, "zo-adam": 0.25, "cma": 1e-8,
                              "cma-subspace": 0.15, "random": 0.6},
    (10, "rosenbrock", 2000): {"spsa": 8.0, "spsa-gc": 7.0, "zo-sgd": 8.0, "zo-adam": 7.0, "cma": 5.0,
                               "cma-subspace": 8.95, "random": 60.0},
    (200, "sphere", 4000): {"spsa": 40.0, "spsa-gc": 0.3, "zo-sgd": 10.0, "zo-adam": 1.0, "cma": 3.0,
                            "cma-subspace": 60.0, "random": 210.0},
    (200, "ellipsoid", 4000): {"spsa": 40.0, "spsa-gc": 15.0, "zo-sgd": 25.0, "zo-adam": 12.0, "cma": 15.0,
                               "cma-subspace": 30.0, "random": 155.0},
    (200, "rosenbrock", 10000): {"spsa": 198.0, "spsa-gc": 198.5, "zo-sgd": 198.0, "zo-adam": 199.0,
                                 "cma": 198.5, "cma-subspace": 225.0, "random": 5000.0},
}
SLOW = {("cma", 200), ("cma-subspace", 200)}  # pycma on d=200 takes seconds per case


def _cases():
    for (dim, fn, budget), targets in TARGETS.items():
        for name, target in targets.items():
            marks = [pytest.mark.slow] if (name, dim) in SLOW else []
            yield pytest.param(name, dim, fn, budget, target, id=f"{name}-{fn}-{dim}", marks=marks)


@pytest.mark.parametrize("name,dim,fn,budget,target", list(_cases()))
def test_reaches_the_stated_loss_within_the_budget(name, dim, fn, budget, target):
    f = make_function(fn, dim)
    res = minimize(f, make(name, dim, seed=0, x0=f.x0), budget=budget)
    assert res.queries <= budget
    assert res.fun < target, f"{name} on {fn}-{dim}: {res.fun:.4g} after {res.queries} evaluations (target {target})"
    assert res.fun == pytest.approx(f(res.x))


def test_learning_optimizers_beat_random_search_at_equal_budget():
    f = make_function("ellipsoid", 50)
    base = minimize(f, make("random", 50, seed=0, x0=f.x0), budget=3000).fun
    for name in ("spsa", "spsa-gc", "zo-sgd", "zo-adam", "cma", "cma-subspace"):
        assert minimize(f, make(name, 50, seed=0, x0=f.x0), budget=3000).fun < base / 3, name


def test_blocking_keeps_spsa_from_diverging_where_the_calibrated_gain_is_too_large():
    """Rosenbrock-200: the gain calibrated at 0 is far too large on the walls; without blocking θ explodes."""
    f = make_function("rosenbrock", 200)
    free = minimize(f, make("spsa", 200, seed=0, x0=f.x0, blocking=None), budget=4000)
    guarded = minimize(f, make("spsa", 200, seed=0, x0=f.x0), budget=4000)
    assert f(free.recommendation) > 1e3 * f(f.x0)
    assert f(guarded.recommendation) < f(f.x0)


def test_calibration_sets_the_first_step_size():
    """Spall's rule: the first update moves the mean coordinate by first_step (no clipping at 10x)."""
    f = make_function("ellipsoid", 20)
    for name in ("spsa", "zo-sgd"):
        opt = make(name, 20, seed=0, x0=f.x0, first_step=0.02)
        c = opt.ask()
        opt.tell(c, [f(x) for x in c])
        assert np.mean(np.abs(opt.recommend() - f.x0)) == pytest.approx(0.02, rel=1e-9), name


class _HeavyTailedMinibatch(BatchObjective):
    """Mean squared distance to 16 samples of a heavy-tailed cloud (Student t, 2.5 dof): a noisy,
    outlier-prone minibatch loss like a classifier's, with its optimum at the cloud's mean."""

    def __init__(self, seed: int = 0):
        self.data = np.random.default_rng(seed).standard_t(2.5, size=(2000, 5)) * 0.3 + 1.0
        self.rng = np.random.default_rng(seed + 1)

    def batch(self, thetas):
        idx = self.rng.choice(len(self.data), 16, replace=False)
        return [float(np.mean(np.sum((self.data[idx] - t) ** 2, axis=1))) for t in thetas]

    def __call__(self, theta):
        return self.batch([theta])[0]


@pytest.mark.parametrize("name", ["spsa", "spsa-gc", "zo-sgd", "zo-adam"])
def test_blocking_ignores_minibatch_noise(name):
    """Blocking reacts to divergence, not to noise: on heavy-tailed minibatch losses the gain is never
    halved and θ reaches the optimum (distance² 5 at the start; measured ≤ 0.016 for all four)."""
    obj = _HeavyTailedMinibatch()
    opt = make(name, 5, seed=0)
    minimize(obj, opt, budget=6000)
    assert opt.blocking.gain_scale == 1.0
    assert float(np.sum((opt.recommend() - obj.data.mean(axis=0)) ** 2)) < 0.05
