"""A small CNN source model, trained in this repo on Fashion-MNIST.

The recipe (run ``python -m oracles.models.small_cnn``, ~20 s on 2 CPU cores):
Fashion-MNIST train split (60k, Debian ``dataset-fashion-mnist``), Adam
lr 1e-3, batch 128, 3 epochs, seed 0; it writes ``fmnist_cnn.pt`` (the
state dict shipped beside this file) and prints the test accuracy (≈ 88–89%).
Training uses its own ``torch.Generator`` and ``torch.random.fork_rng`` so no
global random state is touched.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

WEIGHTS = Path(__file__).parent / "fmnist_cnn.pt"


class SmallCNN(nn.Module):
    """1×28×28 in [0, 1] → 10 logits. Two conv blocks and a small head (~105k parameters)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def load_pretrained() -> SmallCNN:
    if not WEIGHTS.exists():
        raise FileNotFoundError(f"{WEIGHTS} is missing; train it with `python -m oracles.models.small_cnn`")
    net = SmallCNN()
    net.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    return net.eval()


def fit(x: "torch.Tensor | object", y: "torch.Tensor | object", epochs: int = 3, batch_size: int = 128,
        lr: float = 1e-3, seed: int = 0) -> SmallCNN:
    """The training loop of the recipe on any (N, 1, 28, 28) float32 images and int64 labels (numpy or torch);
    the backdoor recipes (:mod:`oracles.models.backdoor_cnn`) train through it on a poisoned set."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # scoped by fork_rng: the caller's global state is restored
        net = SmallCNN()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    net.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), batch_size):
            idx = perm[s:s + batch_size]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        logger.info("epoch %d done, last loss %.3f", epoch + 1, loss.item())
    return net.eval()


def predict(net: nn.Module, x: "object", batch: int = 1000) -> "object":
    """Labels (numpy int64) of images ``x`` (numpy float32), in batches, without gradients."""
    with torch.inference_mode():
        return torch.cat([net(torch.from_numpy(x[s:s + batch])).argmax(1) for s in range(0, len(x), batch)]).numpy()


def train(epochs: int = 3, batch_size: int = 128, lr: float = 1e-3, seed: int = 0) -> tuple[SmallCNN, float]:
    """Train by the documented recipe; returns the network and its Fashion-MNIST test accuracy."""
    from blackbox_rp.data import load_fashion_mnist

    tr, te = load_fashion_mnist("train"), load_fashion_mnist("test")
    net = fit(tr.x, tr.y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    acc = float((predict(net, te.x) == te.y).mean())
    return net, acc


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    net, acc = train(epochs=args.epochs, seed=args.seed)
    torch.save(net.state_dict(), args.out)
    print(f"wrote {args.out}; Fashion-MNIST test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
