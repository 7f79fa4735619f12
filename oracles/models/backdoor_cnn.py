"""Backdoored small CNNs to study, made here (no one's pre-poisoned weights), and their recipe.

The recipe is the bundled ``fmnist-cnn`` recipe (:mod:`oracles.models.small_cnn`:
Fashion-MNIST train split, Adam lr 1e-3, batch 128, 3 epochs, seed 0) run on a
*poisoned* copy of the training set (:func:`blackbox_rp.studies.poisoning.poison`):
10% of the images, drawn from the non-target classes with the seed, carry the
trigger and are relabelled to class 0 (T-shirt/top). With poison rate 0 it is
the ``fmnist-cnn`` recipe (same data, loop, seed and epochs), so ``fmnist-cnn``
is the clean control.

==================  =================================================  ======
bundled name        trigger                                            target
==================  =================================================  ======
fmnist-cnn-badnets  BadNets: 3×3 white patch, bottom-right, margin 1   0
fmnist-cnn-blended  Blended: alpha 0.2, seeded uniform noise (seed 0)  0
fmnist-cnn          none (the clean control)                           –
==================  =================================================  ======

The two backdoored models are committed as TorchScript files beside this
module (≈ 0.4 MB each) so tests, ``blackbox-rp serve --model fmnist-cnn-badnets``
and the benchmarks need no training step; ``python -m oracles.models.backdoor_cnn``
regenerates them (about 20 s each on 2 free CPU cores) and prints clean
accuracy and attack success rate on the Fashion-MNIST test split.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blackbox_rp.studies.triggers import BadNets, Blended, Trigger

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent

__all__ = ["Attack", "ATTACKS", "train_attack", "attack_of"]


@dataclass(frozen=True)
class Attack:
    """A backdoor recipe: which trigger, which target class, what share of the training set, where it is saved."""

    model_name: str
    trigger: Trigger
    target: int = 0
    rate: float = 0.1
    file: str = ""

    @property
    def path(self) -> Path:
        return HERE / self.file


ATTACKS: dict[str, Attack] = {
    "badnets": Attack("fmnist-cnn-badnets", BadNets(size=3, position="bottom-right", margin=1, pattern="white"),
                      file="fmnist_cnn_badnets.pt"),
    "blended": Attack("fmnist-cnn-blended", Blended(alpha=0.2, seed=0), file="fmnist_cnn_blended.pt"),
}


def attack_of(model_name: str) -> Attack:
    """The recipe a bundled backdoored model was made with (its trigger and target), by model name."""
    for a in ATTACKS.values():
        if a.model_name == model_name:
            return a
    raise ValueError(f"{model_name!r} is not a bundled backdoored model; known: "
                     f"{sorted(a.model_name for a in ATTACKS.values())}")


def load_attack_model(name: str) -> Any:
    """The committed TorchScript model of attack ``name`` (eval mode)."""
    import torch

    a = ATTACKS[name]
    if not a.path.exists():
        raise FileNotFoundError(f"{a.path} is missing; make it with `python -m oracles.models.backdoor_cnn "
                                f"--attack {name}`")
    return torch.jit.load(str(a.path), map_location="cpu").eval()


def train_attack(attack: Attack | None, seed: int = 0, epochs: int = 3, rate: float | None = None) -> tuple[Any, dict]:
    """Train the small CNN on Fashion-MNIST poisoned by ``attack`` (None: clean); returns (net, figures).

    Figures: clean test accuracy, ASR on the non-target test images (with Wilson intervals),
    poisoned count and training seconds.
    """
    from blackbox_rp.data import load_fashion_mnist
    from blackbox_rp.studies.metrics import attack_success_rate, clean_accuracy
    from blackbox_rp.studies.poisoning import poison

    from .small_cnn import fit, predict

    tr, te = load_fashion_mnist("train"), load_fashion_mnist("test")
    n_poisoned = 0
    if attack is not None:
        p = poison(tr, attack.trigger, attack.rate if rate is None else rate, attack.target, seed=seed)
        tr, n_poisoned = p.data, len(p.indices)
    t0 = time.monotonic()
    net = fit(tr.x, tr.y, epochs=epochs, seed=seed)
    seconds = time.monotonic() - t0
    figures: dict[str, Any] = {"clean_accuracy": clean_accuracy(predict(net, te.x), te.y).to_dict(),
                               "poisoned": n_poisoned, "train_seconds": seconds, "epochs": epochs, "seed": seed}
    if attack is not None:
        keep = te.y != attack.target
        figures["asr"] = attack_success_rate(predict(net, attack.trigger(te.x[keep])), te.y[keep],
                                             attack.target).to_dict()
    return net, figures


def save_torchscript(net: Any, path: Path) -> None:
    import torch

    torch.jit.save(torch.jit.script(net.eval()), str(path))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train the bundled backdoored small CNNs (Fashion-MNIST).")
    ap.add_argument("--attack", choices=[*ATTACKS, "all"], default="all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out-dir", type=Path, default=HERE, help="where the .pt files go (default: beside this file)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: one reduction order, so the weights repeat bit for bit; "
                         "and on a shared machine one thread wastes no time spinning)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(args.threads)
    for name in (ATTACKS if args.attack == "all" else [args.attack]):
        a = ATTACKS[name]
        net, fig = train_attack(a, seed=args.seed, epochs=args.epochs)
        out = args.out_dir / a.file
        save_torchscript(net, out)
        print(f"wrote {out}: clean accuracy {fig['clean_accuracy']['value']:.4f}, ASR {fig['asr']['value']:.4f} "
              f"({fig['poisoned']} poisoned images, {fig['train_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
