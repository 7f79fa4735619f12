"""``zo-chain``: zeroth order on the model's inputs, exact backprop through our own transform.

In ``y = O_ω ∘ f ∘ I_θ(x)`` only the model f is a black box; the transform I_θ is
ours, local and (for image transforms) written in torch. So the gradient of the
minibatch loss L = (1/B) Σ_i L_i splits by the chain rule:

    ∂L/∂θ = (1/B) Σ_i  g_iᵀ · ∂I_θ(x_i)/∂θ,      g_i = ∂L_i/∂z_i at z_i = I_θ(x_i)

The transform-side factor is exact (a vector–Jacobian product, one ``backward``);
only the model-side g_i — a gradient in the model's input space (784-d for a
28×28 grey image) — is estimated, per example, by forward differences along
the example's own random directions u_ij:

    ĝ_i = (1/q) Σ_j (L_i(z_i + μ u_ij) − L_i(z_i)) / μ · u_ij

A minibatch of B examples with q directions costs B(q+1) queries and gives
B·q directional derivatives, each in the model's input space, instead of q
derivatives in θ's space (6,025-d for REFINE's U-Net) for plain RGE on θ — far
more information per query when θ is larger than one model input. BAR (Tsai et
al., ICML 2020) estimates the same input-side gradient for a single additive
program; here it is chained through any transform with a torch form.

**Inputs outside the model's range.** z + μu is clipped to the oracle's range
(images: [0, 1]) before it is sent, and ĝ still uses the drawn u. For a pixel
away from the bounds nothing changes; at a bound the clipped difference shrinks
that pixel's term by a factor in (0, 1] (independently of the others), so the
estimate is unbiased for D·g with D diagonal and positive — still a descent
direction. With a sigmoid output (the U-Net) a pixel at a bound has a near-zero
transform Jacobian anyway.

**A prior** (:class:`InputPrior`, e.g. a local surrogate's exact gradient): each example's first direction
follows the prior's gradient at its input (scaled to a random direction's average norm, √D) and the other
q − 1 lose their component along it — the subspace idea of P-RGF (Cheng et al., NeurIPS 2019) without its
adaptive weighting. The estimate then measures the real model's slope along the prior (no extra query): with
a prior of cosine c to the true gradient it captures c² of the gradient's energy against q/D from random
directions alone. Biased towards the prior's span, but always a descent direction (ĝ·g = Σ_j (g·u_j)² / q ≥ 0).

The update is Adam on the θ-gradient estimate. The optimizer is driven by
:class:`blackbox_rp.reprogram.Reprogrammer` (the one loop) through
:func:`chain_gradient`, which asks the :class:`~blackbox_rp.objective.Objective`
for per-example losses; it cannot be driven by ``ask``/``tell`` (it proposes no
θ candidates), and ``minimize`` refuses it.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exposure import Response
from ..transforms.protocol import DifferentiableTransform
from .base import ConfigError, Optimizer, OptimizerConfig, check, check_choice, register
from .fields import check_types
from .zo import adam_moments, check_adam

logger = logging.getLogger(__name__)

__all__ = ["InputGradientOptimizer", "InputPrior", "ZOChain", "ZOChainConfig", "ChainEstimate", "chain_gradient"]


class InputPrior(ABC):
    """A guess of each example's loss gradient at the model's inputs — e.g. a local surrogate's exact
    gradient — that zo-chain spends one of its q directions on (a transfer prior, as in P-RGF: Cheng et
    al., NeurIPS 2019). It only chooses where to look: the step still measures the real model's change along
    it, so a poor prior costs accuracy of the estimate, never its honesty."""

    @abstractmethod
    def gradients(self, inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``inputs`` (n, views, *shape): the examples' model inputs; returns an array of the same shape."""


class InputGradientOptimizer(Optimizer):
    """Ability: an optimizer that learns from the gradient of the loss at θ, assembled by the driver from
    per-example estimates at the model's inputs (:func:`chain_gradient`) — not from losses of θ candidates.

    ``queries_per_step`` counts model inputs per example per step (a step costs it × batch × views).
    """

    def _ask(self) -> list[np.ndarray]:
        raise ConfigError(f"optimizer {self.name!r} does not propose θ candidates: it estimates gradients at the "
                          f"model's inputs and backpropagates through the transform, so it needs the "
                          f"Reprogrammer (with a transform that has a torch form), not ask()/tell() or minimize(); "
                          f"for a plain objective use zo-adam or spsa-gc")

    def _tell(self, candidates: list[np.ndarray], losses: np.ndarray) -> None:
        self._ask()

    @abstractmethod
    def draw(self, n_examples: int, example_shape: tuple[int, ...], prior: np.ndarray | None = None) -> np.ndarray:
        """Directions for one step: float32 of shape (q, n_examples, *example_shape), from the optimizer's RNG;
        with ``prior`` (n_examples, *example_shape), the first direction of each example follows it."""

    @abstractmethod
    def input_gradients(self, losses: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Per-example gradient estimates (n_examples, *example_shape) from the losses (q+1, n_examples) —
        row 0 at the unperturbed inputs, row j at the inputs moved along ``u[j-1]`` — and the directions."""

    @property
    @abstractmethod
    def mu(self) -> float:
        """The finite-difference step at the model's inputs."""

    @abstractmethod
    def apply_gradient(self, grad: np.ndarray) -> None:
        """Take one step of θ along the gradient estimate ``grad`` (dim,)."""


@dataclass(frozen=True)
class ZOChainConfig(OptimizerConfig):
    """zo-chain's parameters.

    q: random directions per example per step (default 8): a step costs batch × (q+1) queries.
    mu: forward-difference step at the model's inputs (default 0.005, for [0, 1] pixels; float32 answers
        keep the difference's rounding noise near 1e-4 of a loss unit at this step).
    directions: "gaussian" (default) or "sphere" (unit directions scaled by the input's dimension).
    grid: None (default) draws every direction in the model's full input space; an int g draws it on a
        g×g grid per channel and repeats each cell over its block of the S×S image (S a multiple of g):
        the estimate is then of the gradient's block-constant part (unbiased for that projection, times
        the block's area), with (S/g)² times less variance — fewer dimensions, each one coarser.
    lr: Adam's step size on θ (default 0.03; measured on black-box REFINE with the U-Net, badnets, 2,000
        benign images, 10⁵ queries: 21% clean accuracy against 15% at 0.01, which the white-box ceiling uses).
    decay: lr_k = lr / (k+1)^decay (default 0.3). Why: the estimate's noise does not shrink as the
        per-example gradients start to cancel, so a constant step stalls at a noise floor (measured on
        black-box REFINE, badnets, 2,000 benign images: with decay 0, the best validation point of a 3,233-step
        run came at step 280, 21% clean accuracy; with 0.3, 39% at 3·10⁵ queries; 0.5 from lr 0.1 diverged;
        but with 8,000 images 0.3 gave 26% against 31% for 0 — one seed each: a lead, not a settled choice).
    beta1, beta2, eps: Adam's moment decays and stabiliser (defaults 0.9, 0.999, 1e-8).
    """

    q: int = 8
    mu: float = 0.005
    directions: str = "gaussian"
    grid: int | None = None
    lr: float = 0.03
    decay: float = 0.3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        check_types(self)
        check(isinstance(self.q, int) and self.q >= 1, f"q must be a positive int, got {self.q!r}")
        check(self.mu > 0, f"mu must be positive, got {self.mu}")
        check_choice("directions", self.directions, ("gaussian", "sphere"))
        check(self.grid is None or (isinstance(self.grid, int) and self.grid >= 1),
              f"grid must be a positive int or None, got {self.grid!r}")
        check(0 <= self.decay <= 1, f"decay must be in [0, 1], got {self.decay}")
        check_adam(self)


@register("zo-chain")
class ZOChain(InputGradientOptimizer):
    """Per-example zeroth-order gradients at the model's inputs, chained by exact backprop through the transform; Adam."""

    Config = ZOChainConfig
    config: ZOChainConfig
    _state_attrs = ("x", "m", "v")

    def __init__(self, dim: Any, **kw: Any) -> None:
        super().__init__(dim, **kw)
        self.m = np.zeros(self.dim)
        self.v = np.zeros(self.dim)

    @property
    def queries_per_step(self) -> int:
        return self.config.q + 1

    @property
    def mu(self) -> float:
        return float(self.config.mu)

    def recommend(self) -> np.ndarray:
        return self.x.copy()

    def draw(self, n_examples: int, example_shape: tuple[int, ...], prior: np.ndarray | None = None) -> np.ndarray:
        u = self._random(n_examples, example_shape)
        if prior is None:
            return u
        # direction 0 := the prior, at the norm a random direction has on average (√D, D the example's size);
        # the others lose their component along it, so no query measures the prior's direction twice
        flat = u.reshape(self.config.q, n_examples, -1).astype(np.float64)
        p = np.asarray(prior, dtype=np.float64).reshape(n_examples, -1)
        norm = np.linalg.norm(p, axis=1, keepdims=True)
        unit = np.where(norm > 0, p / np.where(norm > 0, norm, 1.0), 0.0)
        flat[1:] -= np.einsum("qnd,nd->qn", flat[1:], unit)[..., None] * unit
        flat[0] = np.where(norm > 0, unit * np.sqrt(flat.shape[-1]), flat[0])  # no prior (zero): stay random
        return flat.reshape(u.shape).astype(np.float32)

    def _random(self, n_examples: int, example_shape: tuple[int, ...]) -> np.ndarray:
        g, q = self.config.grid, self.config.q
        shape = tuple(example_shape)
        if g is not None:
            side = shape[-1]
            if len(shape) < 2 or shape[-2] != side or side % g:
                raise ConfigError(f"{self.name}: grid={g} needs square model inputs whose side is a multiple of "
                                  f"it; the inputs are {shape}")
            shape = (*shape[:-2], g, g)
        u = self.rng.standard_normal((q, n_examples, *shape))
        if self.config.directions == "sphere":
            flat = u.reshape(q, n_examples, -1)
            flat *= np.sqrt(flat.shape[-1]) / np.linalg.norm(flat, axis=-1, keepdims=True)
        if g is not None:  # each cell over its (S/g)×(S/g) block
            k = example_shape[-1] // g
            u = np.repeat(np.repeat(u, k, axis=-2), k, axis=-1)
        return u.astype(np.float32)

    def input_gradients(self, losses: np.ndarray, u: np.ndarray) -> np.ndarray:
        losses = np.asarray(losses, dtype=np.float64)
        q = self.config.q
        if losses.shape != (q + 1, u.shape[1]) or u.shape[0] != q:
            raise ValueError(f"{self.name}: losses must be (q+1, n) = ({q + 1}, {u.shape[1]}) for directions "
                             f"{u.shape}; got {losses.shape}")
        diffs = (losses[1:] - losses[0]) / self.config.mu          # (q, n)
        if not np.all(np.isfinite(diffs)):
            raise ValueError(f"{self.name}: a loss is NaN or inf; losses must be finite (check the objective)")
        return np.einsum("qn,qn...->n...", diffs, u.astype(np.float64)) / q

    def apply_gradient(self, grad: np.ndarray) -> None:
        g = np.asarray(grad, dtype=np.float64).reshape(-1)
        if g.shape != (self.dim,) or not np.all(np.isfinite(g)):
            raise ValueError(f"{self.name}: the gradient must be {self.dim} finite values, got shape {g.shape}")
        c = self.config
        t = self.step + 1
        self.m, self.v, m_hat, v_hat = adam_moments(self.m, self.v, g, t, c.beta1, c.beta2)
        self.x = self.x - c.lr / t ** c.decay * m_hat / (np.sqrt(v_hat) + c.eps)
        self.step += 1


@dataclass
class ChainEstimate:
    """One step's estimate: the θ-gradient of the minibatch's mean loss, that loss at θ, every answer (for
    mappings that refit from answered rows) with its labels, and the share of perturbed pixels clipped."""

    gradient: np.ndarray
    loss: float
    answers: Response
    labels: np.ndarray
    clipped: float


def chain_gradient(opt: InputGradientOptimizer, transform: Any, objective: Any, xb: np.ndarray, yb: np.ndarray,
                   phase: str = "train", prior: InputPrior | None = None) -> ChainEstimate:
    """Estimate ∂L/∂θ at ``opt.recommend()`` on the minibatch (``xb``, ``yb``): per-example zeroth-order
    gradients at the model's inputs (``len(yb)·views·(q+1)`` queries, one oracle batch, through
    ``objective``), then one exact vector–Jacobian product through ``transform.torch_forward``. With
    ``prior``, each example's first direction is the prior's gradient there (no extra query)."""
    import torch

    if not isinstance(transform, DifferentiableTransform):
        raise ConfigError(f"optimizer {opt.name!r} backpropagates through the transform, and transform "
                          f"{getattr(transform, 'name', type(transform).__name__)!r} has no torch form")
    n, views = len(yb), transform.views
    theta = torch.tensor(opt.recommend(), dtype=torch.float32, requires_grad=True)
    z = transform.torch_forward(theta, torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32)))
    z0 = z.detach().numpy().astype(np.float32)
    example = z0.reshape(n, views, *z0.shape[1:])                # one example = its `views` model inputs
    guess = None if prior is None else prior.gradients(example, yb)
    u = opt.draw(n, example.shape[1:], guess)                    # (q, n, views, C, S, S)
    spec = objective.oracle.input_spec
    moved = np.clip(example[None] + np.float32(opt.mu) * u, spec.low, spec.high).astype(np.float32)
    clipped = float(np.mean(moved != example[None] + np.float32(opt.mu) * u))
    inputs = np.concatenate([z0, moved.reshape(-1, *z0.shape[1:])])
    losses, answers = objective.example_losses(inputs, yb, blocks=opt.queries_per_step, phase=phase)
    g = opt.input_gradients(losses, u) / n                     # ∂(mean loss)/∂(example's model inputs)
    z.backward(torch.from_numpy(g.reshape(z0.shape).astype(np.float32)))
    grad = theta.grad.detach().double().numpy()
    return ChainEstimate(grad, float(losses[0].mean()), answers, np.tile(yb, opt.queries_per_step), clipped)
