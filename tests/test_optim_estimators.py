"""Every gradient estimator against the true gradient from torch autograd.

What is checked, with the tolerance derived from the estimator's variance:
the mean of N single-direction estimates is an unbiased estimate of ∇f
(for RGE gaussian φ=1, RGE sphere φ=d, SPSA, random-block CGE φ=d/b), so
||mean − ∇f|| / ||∇f|| shrinks like sqrt(d/N): with d=26, N=3000 it is about
0.1; the tests allow 0.25. Full CGE is deterministic and exact to O(μ²).
The cosine between one q-direction estimate and ∇f grows with q, as
sqrt(q/(q+d)) for Gaussian RGE (Nesterov & Spokoiny 2017).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blackbox_rp.optim import make
from blackbox_rp.optim.functions import make_function
from blackbox_rp.optim.zo import EstimatorConfig, GradientEstimator


def _mlp_problem():
    """A tiny MLP's cross-entropy loss as a function of its flat parameter vector (dim 26), float64."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (16,), generator=gen)
    shapes = [(4, 3), (4,), (2, 4), (2,)]
    sizes = [int(np.prod(s)) for s in shapes]

    def torch_loss(theta: torch.Tensor) -> torch.Tensor:
        parts = torch.split(theta, sizes)
        w1, b1, w2, b2 = (p.reshape(s) for p, s in zip(parts, shapes))
        h = torch.tanh(x @ w1.T + b1)
        return torch.nn.functional.cross_entropy(h @ w2.T + b2, y)

    theta0 = 0.5 * np.random.default_rng(1).standard_normal(sum(sizes))

    def loss(theta: np.ndarray) -> float:
        with torch.no_grad():
            return float(torch_loss(torch.as_tensor(theta, dtype=torch.float64)))

    return loss, torch_loss, theta0


def _quadratic_problem():
    f = make_function("ellipsoid", 26, cond=100.0)
    theta0 = np.random.default_rng(2).standard_normal(26)
    return f, f.torch_fn, theta0


PROBLEMS = {"mlp": _mlp_problem, "quadratic": _quadratic_problem}


def _true_gradient(torch_fn, theta: np.ndarray) -> np.ndarray:
    t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    torch_fn(t).backward()
    return t.grad.numpy()


def _rel_err(est: np.ndarray, g: np.ndarray) -> float:
    return float(np.linalg.norm(est - g) / np.linalg.norm(g))


def _estimate(est: GradientEstimator, f, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u, scale = est.draw(rng)
    losses = np.array([f(c) for c in est.candidates(theta, u)])
    return est.estimate(losses, u, scale)


ESTIMATORS = {
    "rge-gaussian-central": dict(estimator="rge", directions="gaussian", difference="central"),
    "rge-gaussian-forward": dict(estimator="rge", directions="gaussian", difference="forward"),
    "rge-sphere-central": dict(estimator="rge", directions="sphere", difference="central"),
    "rge-sphere-forward": dict(estimator="rge", directions="sphere", difference="forward"),
    "cge-random-block": dict(estimator="cge", block=4, difference="central"),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_mean_of_estimates_is_the_true_gradient(problem, kind):
    f, torch_fn, theta = PROBLEMS[problem]()
    g = _true_gradient(torch_fn, theta)
    est = GradientEstimator(EstimatorConfig(q=1, mu=1e-4, **ESTIMATORS[kind]), theta.size)
    rng = np.random.default_rng(0)
    mean = np.mean([_estimate(est, f, theta, rng) for _ in range(3000)], axis=0)
    assert _rel_err(mean, g) < 0.25, (kind, problem, _rel_err(mean, g))
    # and not by accident: a single estimate is far noisier than the mean (d=26 directions' worth)
    single = _estimate(est, f, theta, rng)
    assert _rel_err(single, g) > _rel_err(mean, g)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("difference,tol", [("central", 1e-6), ("forward", 1e-3)])
def test_full_coordinate_estimate_is_exact_to_the_difference_order(problem, difference, tol):
    f, torch_fn, theta = PROBLEMS[problem]()
    g = _true_gradient(torch_fn, theta)
    est = GradientEstimator(EstimatorConfig(estimator="cge", difference=difference, mu=1e-5), theta.size)
    assert est.queries == (2 * theta.size if difference == "central" else theta.size + 1)
    assert _rel_err(_estimate(est, f, theta, np.random.default_rng(0)), g) < tol


def test_fixed_coordinates_estimate_only_those():
    f, torch_fn, theta = PROBLEMS["quadratic"]()
    g = _true_gradient(torch_fn, theta)
    est = GradientEstimator(EstimatorConfig(estimator="cge", coords=(3, 7)), theta.size)
    ghat = _estimate(est, f, theta, np.random.default_rng(0))
    np.testing.assert_allclose(ghat[[3, 7]], g[[3, 7]], rtol=1e-6)
    assert np.count_nonzero(ghat) == 2


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("perturbation", ["rademacher", "segmented"])
def test_spsa_estimate_mean_is_the_true_gradient(problem, perturbation):
    f, torch_fn, theta = PROBLEMS[problem]()
    g = _true_gradient(torch_fn, theta)
    draws = []
    for seed in range(3000):
        opt = make("spsa", theta.size, seed=seed, x0=theta, c=1e-4, a=1.0, perturbation=perturbation)
        cands = opt.ask()
        opt.tell(cands, [f(c) for c in cands])
        draws.append(opt.last_gradient)
    mean = np.mean(draws, axis=0)
    # segmented perturbations have E[1/Δ²] ≈ 1.33: a little more variance than Rademacher
    assert _rel_err(mean, g) < 0.25, _rel_err(mean, g)


def _mean_cosine(make_estimate, g: np.ndarray, n: int = 200) -> float:
    cos = [float(e @ g / (np.linalg.norm(e) * np.linalg.norm(g))) for e in (make_estimate() for _ in range(n))]
    return float(np.mean(cos))


@pytest.mark.parametrize("directions", ["gaussian", "sphere"])
def test_rge_cosine_grows_with_q_as_theory_says(directions):
    f, torch_fn, theta = PROBLEMS["mlp"]()
    g = _true_gradient(torch_fn, theta)
    d = theta.size
    rng = np.random.default_rng(0)
    cosines = []
    for q in (1, 4, 16, 64):
        est = GradientEstimator(EstimatorConfig(q=q, mu=1e-4, directions=directions), d)
        cosines.append(_mean_cosine(lambda: _estimate(est, f, theta, rng), g))
        # E cos ≈ sqrt(q / (q + d)) for isotropic directions (to within the Jensen gap)
        theory = np.sqrt(q / (q + d))
        assert 0.6 * theory < cosines[-1] < 1.3 * theory + 0.02, (q, cosines[-1], theory)
    assert all(a < b for a, b in zip(cosines, cosines[1:])), cosines


def test_spsa_cosine_grows_with_q():
    f, torch_fn, theta = PROBLEMS["mlp"]()
    g = _true_gradient(torch_fn, theta)
    cosines = []
    for q in (1, 4, 16, 64):
        seeds = iter(range(10_000))

        def one() -> np.ndarray:
            opt = make("spsa", theta.size, seed=next(seeds), x0=theta, c=1e-4, a=1.0, q=q)
            cands = opt.ask()
            opt.tell(cands, [f(c) for c in cands])
            return opt.last_gradient

        cosines.append(_mean_cosine(one, g, n=100))
    assert all(a < b for a, b in zip(cosines, cosines[1:])), cosines
    assert cosines[-1] > 0.7
