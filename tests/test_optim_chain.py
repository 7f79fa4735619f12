"""zo-chain: per-example zeroth order at the model's inputs, exact backprop through our own transform.

The model is a real TorchOracle on a tiny torch network (8×8 grey images, 4 classes), so the exact
chain-rule gradient is known by autograd through model ∘ transform; the transform is the real U-Net.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blackbox_rp import Budget, InputSpec, Ledger
from blackbox_rp.data import Dataset
from blackbox_rp.mapping import make_mapping
from blackbox_rp.objective import Objective
from blackbox_rp.optim import ConfigError, make, minimize
from blackbox_rp.optim.chain import InputPrior, ZOChain, chain_gradient
from blackbox_rp.reprogram import Reprogrammer
from blackbox_rp.losses import make_loss
from blackbox_rp.space import SearchSpace
from blackbox_rp.transforms import InputTransform, make_transform
from oracles import TorchOracle

CLASSES = ("a", "b", "c", "d")


def _net() -> torch.nn.Module:
    """A small tanh MLP with seeded weights (a private generator: the global RNG is untouched)."""
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.8)
    return net


def _oracle(budget: int | None = None) -> TorchOracle:
    ledger = Ledger(Budget(max_queries=budget, phases=("train", "validation"))) if budget else Ledger()
    return TorchOracle(_net(), input_spec=InputSpec(channels=1, height=8, width=8), num_classes=4,
                       ledger=ledger, max_batch=4096, name="tiny-mlp")


def _data(n: int = 8, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset(rng.uniform(0, 1, (n, 1, 8, 8)).astype(np.float32), rng.integers(0, 4, n), CLASSES, "tiny")


def _unet(seed: int = 0):
    t = make_transform("unet", in_shape=(1, 8, 8), out_size=8, channels=1, seed=seed, image_size=8, width=2)
    theta = t.init_theta() + 0.3 * np.random.default_rng(seed + 1).standard_normal(t.dim)
    return t, theta


def _exact_gradient(t, theta, oracle, mapping, d) -> np.ndarray:
    th = torch.tensor(theta, dtype=torch.float32, requires_grad=True)
    logits = oracle.torch_module(t.torch_forward(th, torch.from_numpy(d.x)))
    loss = torch.nn.functional.nll_loss(mapping.torch_log_probs(logits), torch.from_numpy(d.y))
    loss.backward()
    return th.grad.double().numpy()


def _problem(n: int):
    """n examples, the U-Net at a random θ, the tiny model, a derangement, the objective, the exact gradient."""
    d = _data(n)
    t, theta = _unet()
    oracle = _oracle()
    mapping = make_mapping("derangement", 4, 4, seed=0)
    obj = Objective(t, oracle, mapping, make_loss("ce"))
    return d, t, theta, oracle, mapping, obj, _exact_gradient(t, theta, oracle, mapping, d)


@pytest.mark.slow
def test_the_mean_estimate_is_the_exact_chain_rule_gradient_and_each_step_costs_b_times_q_plus_1():
    d, t, theta, oracle, mapping, obj, exact = _problem(8)
    opt = make("zo-chain", t.dim, seed=3, x0=theta, q=128, mu=1e-3)
    draws = 100
    total = np.zeros(t.dim)
    before = oracle.ledger.counts("train").queries
    for k in range(draws):
        est = chain_gradient(opt, t, obj, d.x, d.y)
        total += est.gradient
        if k == 0:  # one estimate: B(q+1) queries, exactly
            assert oracle.ledger.counts("train").queries - before == len(d) * 129
            assert est.answers.scores.shape == (len(d) * 129, 4) and len(est.labels) == len(d) * 129
            assert est.clipped == 0.0  # sigmoid outputs inside (0, 1), a small step: nothing clipped
    assert oracle.ledger.counts("train").queries - before == draws * len(d) * 129
    mean = total / draws
    rel = np.linalg.norm(mean - exact) / np.linalg.norm(exact)
    cos = float(mean @ exact / (np.linalg.norm(mean) * np.linalg.norm(exact)))
    # one estimate is noisy (per example 64-d from q directions) but unbiased up to O(μ): the mean of
    # 100 estimates of 128 directions comes within 10% of the exact gradient
    assert rel < 0.10 and cos > 0.99, (rel, cos)
    single = chain_gradient(make("zo-chain", t.dim, seed=4, x0=theta, q=8, mu=1e-3), t, obj, d.x, d.y).gradient
    assert np.linalg.norm(single - exact) / np.linalg.norm(exact) > rel  # averaging is what got it close


def test_directions_come_from_the_seed_and_the_update_is_adam():
    d = _data(4)
    t, theta = _unet()
    obj = Objective(t, _oracle(), make_mapping("derangement", 4, 4, seed=0), make_loss("ce"))
    g = [chain_gradient(make("zo-chain", t.dim, seed=s, x0=theta), t, obj, d.x, d.y).gradient for s in (5, 5, 6)]
    assert np.array_equal(g[0], g[1]) and not np.array_equal(g[0], g[2])
    opt = make("zo-chain", t.dim, seed=0, x0=theta, lr=0.01)
    opt.apply_gradient(g[0])
    # Adam's first step moves every coordinate with a non-zero gradient by lr (bias-corrected m/√v = sign)
    moved = np.abs(opt.recommend() - theta)
    nz = np.abs(g[0]) > 1e-6
    assert np.allclose(moved[nz], 0.01, rtol=1e-3) and opt.step == 1
    slow = make("zo-chain", t.dim, seed=0, x0=theta, lr=0.01, decay=0.5)
    for _ in range(4):
        slow.apply_gradient(g[0])  # a constant gradient: Adam's normalised step is lr_k = lr / k^0.5
    assert np.allclose(np.abs(slow.recommend() - theta)[nz], 0.01 * sum(k ** -0.5 for k in range(1, 5)), rtol=1e-3)
    state = opt.state_dict()
    again = make("zo-chain", t.dim, seed=0, x0=theta, lr=0.01)
    again.load_state_dict(state)
    assert np.array_equal(again.recommend(), opt.recommend())


def test_the_reprogrammer_drives_it_under_the_budget_with_b_times_q_plus_1_queries_per_step_reproducibly():
    train, val = _data(48, seed=1), _data(16, seed=2)

    def fit(budget):
        oracle = _oracle(budget)
        rp = Reprogrammer.build("unet", oracle, "derangement", "zo-chain", train, out_size=8, seed=4,
                                transform_params={"image_size": 8, "width": 2}, optimizer_params={"q": 3},
                                batch_size=8, eval_every=2, refit="none", final_refit=False)
        return rp, rp.fit(train, val), oracle.ledger

    rp, res, led = fit(48 + 16 + 5 * 8 * 4 + 3 * 16)  # θ₀ fit + validation, 5 steps, 3 more validations
    assert rp.budget_plan(48, 16).per_step == 8 * 4
    assert res.steps == 5 and "budget" in res.stop_reason
    assert led.counts("train").queries == 48 + 5 * 8 * 4      # the θ₀ pass, then exactly B(q+1) per step
    assert led.counts("validation").queries == 4 * 16
    rp2, res2, _ = fit(48 + 16 + 5 * 8 * 4 + 3 * 16)
    assert np.array_equal(res.theta, res2.theta) and res.curve == res2.curve
    assert not np.array_equal(rp.optimizer.recommend(), rp.transform.init_theta())  # it moved


@pytest.mark.slow
def test_it_learns_on_the_tiny_problem():
    """Not just unbiased: steps of the estimate lower the training loss (REFINE's: the model's own answers,
    through a derangement, from the transformed images)."""
    x = _data(64, seed=1).x
    oracle = _oracle()
    train = Dataset(x, oracle.forward(x).argmax(1), CLASSES, "pseudo")
    rp = Reprogrammer.build("unet", oracle, "derangement", "zo-chain", train, out_size=8, seed=0,
                            transform_params={"image_size": 8, "width": 4}, optimizer_params={"q": 4, "lr": 0.03},
                            batch_size=32, eval_every=20, max_steps=60, refit="none", final_refit=False)
    loss0 = rp.objective.score([rp.theta], train.x, train.y).losses[0]
    res = rp.fit(train, train)
    loss1 = rp.objective.score([res.theta], train.x, train.y).losses[0]
    assert loss1 < 0.8 * loss0, (loss0, loss1, res.curve)


class _NumpyShift(InputTransform):
    """A user's transform written in numpy only (adds θ₀ to every pixel): continuous θ, no torch form."""

    name = "numpy-shift"

    @property
    def space(self) -> SearchSpace:
        return SearchSpace.box(1)

    def init_theta(self) -> np.ndarray:
        return np.zeros(1)

    def apply(self, theta: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        return np.clip(inputs + np.float32(theta[0]), 0, 1).astype(np.float32)

    def describe(self) -> dict:
        return {"name": self.name}

    @classmethod
    def for_task(cls, train, input_spec, *, seed=0, **params):
        return cls()


def test_a_transform_without_a_torch_form_is_refused_at_build_naming_both():
    oracle = _oracle()
    t = _NumpyShift()
    with pytest.raises(ValueError, match=r"zo-chain.*numpy-shift.*no torch form"):
        Reprogrammer(t, oracle, make_mapping("derangement", 4, 4), make("zo-chain", 1))
    Reprogrammer(t, oracle, make_mapping("derangement", 4, 4), make("zo-adam", 1))  # others still take it


def test_it_cannot_be_driven_by_ask_tell_or_minimize_and_says_why():
    opt = make("zo-chain", 3)
    assert isinstance(opt, ZOChain) and opt.queries_per_step == 9
    with pytest.raises(ConfigError, match="does not propose θ candidates"):
        opt.ask()
    with pytest.raises(ConfigError, match="minimize\\(\\) has neither"):
        minimize(lambda th: float(th @ th), opt, budget=100)
    with pytest.raises(ConfigError, match="q must be a positive int"):
        make("zo-chain", 3, q=0)
    with pytest.raises(ConfigError, match="'gaussian', 'sphere'"):
        make("zo-chain", 3, directions="cube")


def test_grid_directions_are_block_constant_and_need_a_side_that_is_a_multiple():
    opt = make("zo-chain", 3, seed=0, q=2, grid=4)
    u = opt.draw(5, (1, 1, 8, 8))
    assert u.shape == (2, 5, 1, 1, 8, 8)
    blocks = u.reshape(2, 5, 1, 1, 4, 2, 4, 2)
    assert np.array_equal(blocks, np.broadcast_to(blocks[..., :1, :, :1], blocks.shape))  # constant on 2×2 blocks
    assert not np.array_equal(u[0, 0], u[0, 1])  # each example its own directions
    with pytest.raises(ConfigError, match="multiple"):
        opt.draw(5, (1, 1, 9, 9))
    with pytest.raises(ConfigError, match="grid must be a positive int"):
        make("zo-chain", 3, grid=0)


def test_per_example_losses_need_a_loss_that_decomposes():
    d = _data(4)
    t, theta = _unet()
    obj = Objective(t, _oracle(), make_mapping("derangement", 4, 4), lambda s, y: 0.0)
    with pytest.raises(ValueError, match="per-example losses need a loss built by"):
        chain_gradient(make("zo-chain", t.dim, x0=theta), t, obj, d.x, d.y)
    loss = make_loss("ce")
    s = np.array([[0.5, 0.5], [0.9, 0.1]])
    assert np.allclose(loss.per_example(s, np.array([0, 1])), [np.log(2), -np.log(0.1)])
    assert loss(s, np.array([0, 1])) == pytest.approx(loss.per_example(s, np.array([0, 1])).mean())


class _ExactPrior(InputPrior):
    """A prior that knows the model: its gradients are autograd's, per example, at the model inputs."""

    def __init__(self, oracle, mapping, noise: float = 0.0, seed: int = 0):
        self.oracle, self.mapping, self.noise = oracle, mapping, noise
        self.rng = np.random.default_rng(seed)

    def gradients(self, inputs, labels):
        z = torch.from_numpy(inputs.reshape(-1, *inputs.shape[2:]).astype(np.float32)).requires_grad_(True)
        lp = self.mapping.torch_log_probs(self.oracle.torch_module(z))
        torch.nn.functional.nll_loss(lp, torch.from_numpy(labels), reduction="sum").backward()
        g = z.grad.numpy().reshape(inputs.shape)
        return g + self.noise * np.abs(g).mean() * self.rng.standard_normal(g.shape)


def test_a_prior_takes_the_first_direction_and_the_others_are_orthogonal_to_it():
    opt = make("zo-chain", 10, seed=0, q=4)
    prior = np.random.default_rng(1).standard_normal((3, 1, 8, 8))
    prior[2] = 0.0  # an example without a guess keeps a random first direction
    u = opt.draw(3, (1, 8, 8), prior).reshape(4, 3, -1).astype(np.float64)
    unit = prior.reshape(3, -1)[:2] / np.linalg.norm(prior.reshape(3, -1)[:2], axis=1, keepdims=True)
    np.testing.assert_allclose(u[0, :2], unit * 8.0, rtol=1e-5)  # along the prior, at norm √64
    np.testing.assert_allclose(np.einsum("qnd,nd->qn", u[1:, :2], unit), 0.0, atol=1e-4)
    assert np.linalg.norm(u[0, 2]) > 0 and not np.allclose(u[0, 2], 0.0)


def test_a_good_prior_makes_the_estimate_point_along_the_exact_gradient():
    """With the model's own gradient as the prior, one estimate of q = 4 directions is nearly the exact
    chain-rule gradient in direction; a random-direction estimate of the same cost is not; a noisy prior
    lies between. The query count is the same: the prior costs no query."""
    d, t, theta, oracle, mapping, obj, exact = _problem(16)

    def cos(prior, seed):
        before = oracle.ledger.counts("train").queries
        g = chain_gradient(make("zo-chain", t.dim, seed=seed, x0=theta, q=4, mu=1e-3), t, obj, d.x, d.y,
                           prior=prior).gradient
        assert oracle.ledger.counts("train").queries - before == len(d) * 5
        return float(g @ exact / (np.linalg.norm(g) * np.linalg.norm(exact)))

    random = np.mean([cos(None, s) for s in range(5)])
    good = np.mean([cos(_ExactPrior(oracle, mapping), s) for s in range(5)])
    noisy = np.mean([cos(_ExactPrior(oracle, mapping, noise=2.0, seed=s), s) for s in range(5)])
    assert good > 0.95 and good > noisy > random, (good, noisy, random)
