"""A local stand-in distilled from answers already paid for: the warm start of black-box REFINE.

Black-box REFINE first sends every benign image through the oracle once (its
pseudo-labels). Those answers are a labelled training set for a *local* stand-in
f̃ of the suspect model: a small CNN trained on the answers' probabilities (the
one-hot top-1 under a label-only exposure) — knowledge distillation through the
API, with no further query. White-box REFINE against f̃ (backprop through the
stand-in, :func:`blackbox_rp.whitebox.whitebox_fit`) gives a θ that starts the
black-box fit against the real model, the way transfer-based black-box attacks
start from a surrogate's solution; the zeroth-order fit then corrects what did
not transfer, and selection on held-out agreement *with the suspect* decides
(when no step beats the warm start, the warm start is what is kept — and said).

The stand-in is deliberately not the suspect's architecture, which a defender
does not know: two 5×5 convolution blocks (``width``, 2·``width`` channels,
max-pooled), a 128-unit head with dropout; Adam on the KL divergence to the
answers, random shifts of up to ``shift`` pixels, weight decay; the epoch with
the best held-out agreement is kept (the one :class:`~blackbox_rp.loop.Loop`).

It is trained on the training split of the benign images only; its agreement
is measured on the validation split (the same split the black-box fit selects
on). Nothing here reads a ground-truth label.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from ..loop import Loop
from ..mapping.base import DifferentiableMapping
from ..optim.chain import InputPrior
from ..oracle import LocalModel

logger = logging.getLogger(__name__)

__all__ = ["SurrogateConfig", "Surrogate", "SurrogatePrior", "distill", "refit"]


@dataclass(frozen=True)
class SurrogateConfig:
    """How the stand-in is trained: ``epochs`` over the training split in minibatches of ``batch_size``,
    Adam (``lr``, ``weight_decay``), random shifts of up to ``shift`` pixels, ``width`` channels in the first
    convolution block. Defaults measured on the bundled backdoored Fashion-MNIST CNN (seed 0): held-out
    agreement 88% from 1,600 images, 92% from 8,000, levelling off by ~15 epochs. ``refit_epochs`` at
    ``refit_lr``: each warm-start round's :func:`refit` on all the answers so far (2 epochs at 5e-4 took the
    stand-in from 49% to 94% agreement with the suspect on the transformed images of the first round)."""

    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    shift: int = 2
    width: int = 32
    refit_epochs: int = 2
    refit_lr: float = 5e-4

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "width", "refit_epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"SurrogateConfig.{name} must be a positive int, got {v!r}")
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or self.shift < 0:
            raise ValueError(f"SurrogateConfig.shift must be an int >= 0, got {self.shift!r}")
        if not (self.lr > 0 and self.refit_lr > 0 and self.weight_decay >= 0):
            raise ValueError(f"SurrogateConfig needs lr > 0, refit_lr > 0 and weight_decay >= 0, got {self.lr!r}, "
                             f"{self.refit_lr!r}, {self.weight_decay!r}")


def _network(channels: int, num_classes: int, width: int) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(channels, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(2 * width * 49, 128), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(128, num_classes))


class Surrogate(LocalModel):
    """The distilled stand-in: a frozen torch module (images in, logits out) and its held-out ``agreement``
    with the oracle it was distilled from. A :class:`~blackbox_rp.oracle.LocalModel`, so the white-box fit
    can train a transform against it; it is never queried as the suspect."""

    def __init__(self, module: Any, agreement: float, epochs: int):
        self.module, self.agreement, self.epochs = module, float(agreement), int(epochs)

    @property
    def torch_module(self) -> Any:
        return self.module

    def arrays(self) -> dict[str, np.ndarray]:
        """The weights as named arrays (for a cache file)."""
        return {k: v.detach().numpy() for k, v in self.module.state_dict().items()}

    @classmethod
    def from_arrays(cls, channels: int, num_classes: int, config: SurrogateConfig, arrays: dict[str, np.ndarray],
                    agreement: float, epochs: int) -> "Surrogate":
        """The stand-in rebuilt from :meth:`arrays` (``config`` must be the one it was trained with)."""
        import torch

        net = _network(channels, num_classes, config.width)
        net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()})
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        return cls(net, agreement, epochs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The stand-in's top-1 labels of images ``x``."""
        return _top1(self.module, x)


def _top1(module: Any, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return np.concatenate([module(torch.from_numpy(np.ascontiguousarray(x[s:s + batch]))).argmax(1).numpy()
                               for s in range(0, len(x), batch)])


def distill(x_train: np.ndarray, targets: np.ndarray, x_val: np.ndarray, labels_val: np.ndarray,
            config: SurrogateConfig | None = None, seed: int = 0,
            callbacks: Iterable[Callable[[dict[str, Any]], str | None]] = ()) -> Surrogate:
    """Train the stand-in on images ``x_train`` and the oracle's answers ``targets`` ((n, C) probabilities;
    one-hot rows for label-only answers); keep the epoch whose top-1 agrees most with ``labels_val`` (the
    oracle's top-1 on ``x_val``). Seeded by ``seed`` alone (torch's global random state is restored after)."""
    import torch

    cfg = config or SurrogateConfig()
    _check(x_train, targets, x_val, labels_val)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # scoped: the caller's global state is restored
        net = _network(x_train.shape[1], np.shape(targets)[1], cfg.width)
    return _train(net, x_train, targets, x_val, labels_val, cfg.epochs, cfg.lr, cfg.weight_decay, cfg.batch_size,
                  cfg.shift, seed, callbacks)


def refit(surrogate: Surrogate, x_train: np.ndarray, targets: np.ndarray, x_val: np.ndarray,
          labels_val: np.ndarray, config: SurrogateConfig | None = None, seed: int = 0,
          callbacks: Iterable[Callable[[dict[str, Any]], str | None]] = ()) -> Surrogate:
    """A copy of ``surrogate`` trained further, ``refit_epochs`` at ``refit_lr``, on ``x_train`` and its answers
    (all the answers bought so far: the benign images' and those of the transformed images) — no shifts: the
    oracle's answer on a shifted transformed image is not the answer on the image. Same selection as
    :func:`distill`; ``surrogate`` itself is left as it was."""
    import copy

    cfg = config or SurrogateConfig()
    _check(x_train, targets, x_val, labels_val)
    net = copy.deepcopy(surrogate.module)
    for p in net.parameters():
        p.requires_grad_(True)
    return _train(net, x_train, targets, x_val, labels_val, cfg.refit_epochs, cfg.refit_lr, cfg.weight_decay,
                  cfg.batch_size, 0, seed, callbacks)


def _check(x_train: np.ndarray, targets: np.ndarray, x_val: np.ndarray, labels_val: np.ndarray) -> None:
    shape = np.shape(targets)
    if x_train.ndim != 4 or len(shape) != 2 or shape[0] != len(x_train) or len(x_val) != len(labels_val):
        raise ValueError(f"distill needs images (N, C, H, W) with (N, classes) targets and validation images with "
                         f"their labels; got {x_train.shape}, {shape}, {x_val.shape}, {np.shape(labels_val)}")
    if len(x_train) < 2 or len(x_val) < 1:
        raise ValueError(f"distill needs at least 2 training and 1 validation images, got {len(x_train)} and "
                         f"{len(x_val)}")


def _train(net: Any, x_train: np.ndarray, targets: np.ndarray, x_val: np.ndarray, labels_val: np.ndarray,
           epochs: int, lr: float, weight_decay: float, batch_size: int, shift: int, seed: int,
           callbacks: Iterable[Callable[[dict[str, Any]], str | None]]) -> Surrogate:
    """Adam on the KL divergence to ``targets`` for ``epochs``; the epoch with the best held-out agreement kept."""
    import torch
    from torch.nn import functional as F

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    xt = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
    pt = torch.from_numpy(np.asarray(targets, dtype=np.float32))
    per_epoch = max(1, -(-len(xt) // batch_size))
    order = {"perm": torch.randperm(len(xt), generator=gen)}

    def step(n: int) -> dict[str, Any]:
        k = n % per_epoch
        if k == 0 and n:
            order["perm"] = torch.randperm(len(xt), generator=gen)
        idx = order["perm"][k * batch_size:(k + 1) * batch_size]
        xb = xt[idx]
        if shift:
            dy, dx = (int(v) for v in torch.randint(-shift, shift + 1, (2,), generator=gen))
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
        net.train()
        loss = F.kl_div(F.log_softmax(net(xb), 1), pt[idx], reduction="batchmean")
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    def validate(n: int) -> float:
        net.eval()
        return float((_top1(net, x_val) == labels_val).mean())

    loop = Loop(step, max_steps=epochs * per_epoch, validate=validate, eval_every=per_epoch,
                snapshot=lambda: {k: v.detach().clone() for k, v in net.state_dict().items()},
                callbacks=callbacks, name="surrogate")
    with torch.random.fork_rng():  # dropout draws from torch's global generator: seed it here, restore it after
        torch.manual_seed(seed + 1)
        res = loop.run()
    net.load_state_dict(res.best_state)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    logger.info("surrogate: held-out agreement %.4f with the oracle (epoch %d of %d)", res.best_score,
                res.best_step // per_epoch, epochs)
    return Surrogate(net, res.best_score, res.best_step // per_epoch)


class SurrogatePrior(InputPrior):
    """The stand-in's exact gradient of the fit's per-example loss (cross-entropy of ``mapping``'s output against
    the label) at the model's inputs: zo-chain's first direction per image (see :class:`InputPrior`)."""

    def __init__(self, surrogate: Surrogate, mapping: DifferentiableMapping):
        self.surrogate, self.mapping = surrogate, mapping

    def gradients(self, inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        import torch

        z = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32).reshape(-1, *inputs.shape[2:]))
        z.requires_grad_(True)
        log_probs = self.mapping.torch_log_probs(self.surrogate.module(z), None)
        torch.nn.functional.nll_loss(log_probs, torch.from_numpy(np.asarray(labels, dtype=np.int64)),
                                     reduction="sum").backward()
        return z.grad.numpy().reshape(inputs.shape)
