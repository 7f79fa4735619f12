"""BlackVIP's coordinator: a frozen encoder and a light learnable decoder make an input-dependent prompt.

Oh et al., "BlackVIP: Black-Box Visual Prompting for Robust Transfer
Learning", CVPR 2023. The prompt depends on the image: a frozen encoder
summarises the image, a small decoder turns the summary into a prompt, and
only the decoder's weights are θ, so the search space stays small while each
image gets its own perturbation.

What this implementation chooses, and why:

* **Encoder: a fixed, seeded random convolutional network** (pool to 32×32 →
  conv 3×3/2 → ReLU → conv 3×3/2 → ReLU → average-pool to g×g → per-sample
  standardisation). BlackVIP uses a self-supervised ViT; no such weights install
  offline here, and the encoder must take any source model's channels and size.
  Random convolutional features keep the coarse layout and contrast of the
  image (random projections roughly preserve distances), cost nothing to
  "train", and are reproducible from the seed — which is all the decoder needs
  to make the prompt input-dependent.
* **Decoder (θ): transposed conv 4×4/2 (E→H) → ReLU → conv 3×3 (H→channels)**,
  giving a (channels, 2g, 2g) pattern that is bilinearly upsampled to S×S,
  squashed by tanh and added under the mask, exactly like the additive prompts.
  Defaults (E=16, H=8, g=4, 3 channels): 2,056 + 219 = 2,275 parameters.
  BlackVIP's extra learnable "prompt trigger" vector is left out: the decoder's
  biases play that role.
* **θ₀ is not zero**: with every weight zero the decoder's gradient vanishes
  (a saddle). The first layer starts from seeded He-scaled noise and the last
  layer at zero, so θ₀ adds no prompt (θ₀ gives the zero-shot input) yet the
  gradient with respect to the last layer is non-zero.

Example::

    >>> import numpy as np
    >>> from blackbox_rp.transforms import make_transform
    >>> t = make_transform("coordinator", in_shape=(1, 28, 28), out_size=64, channels=3, seed=0)
    >>> t.dim
    2275
    >>> x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    >>> bool(np.allclose(t(t.init_theta(), x), make_transform("none", (1, 28, 28), 64)(np.zeros(0), x)))
    True
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .additive import MASKS
from .base import CanvasConfig, Transform
from .registry import register_transform

logger = logging.getLogger(__name__)

__all__ = ["Coordinator", "CoordinatorConfig"]

_POOL = 32  # the encoder sees the canvas average-pooled to 32×32: its cost does not grow with S


@dataclass(frozen=True)
class CoordinatorConfig(CanvasConfig):
    """``enc_channels`` E and ``grid`` g: the frozen encoder's (E, g, g) summary; ``hidden`` H:
    the decoder's width; ``mask`` "ones" (BlackVIP prompts the whole image) or "frame"; ``scale``
    the prompt amplitude; ``init_scale`` multiplies the He scale of the decoder's first layer at θ₀."""

    enc_channels: int = 16
    grid: int = 4
    hidden: int = 8
    mask: str = "ones"
    scale: float = 1.0
    init_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for k in ("enc_channels", "grid", "hidden"):
            v = getattr(self, k)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{k} must be a positive int, got {v!r}")
        if self.mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {self.mask!r}")
        if not 0.0 < float(self.scale) <= 1.0:
            raise ValueError(f"scale must lie in (0, 1], got {self.scale!r}")
        if not float(self.init_scale) >= 0.0:
            raise ValueError(f"init_scale must be >= 0, got {self.init_scale!r}")


@register_transform("coordinator")
class Coordinator(Transform):
    """Input-dependent prompt: frozen random-conv encoder (seeded) + learnable decoder (θ)."""

    name = "coordinator"
    Config = CoordinatorConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = self.config
        c, e, h = self.channels, cfg.enc_channels, cfg.hidden
        gen = torch.Generator().manual_seed(self.seed)  # a private generator: global RNG untouched
        mid = max(4, e // 2)

        def he(*shape: int) -> torch.Tensor:
            fan_in = shape[1] * shape[2] * shape[3]
            return torch.randn(*shape, generator=gen) * math.sqrt(2.0 / fan_in)

        self._enc = (he(mid, c, 3, 3), he(e, mid, 3, 3))
        frame = 1.0 - self.image_mask()
        self.mask = frame if cfg.mask == "frame" else torch.ones(self.out_size, self.out_size)
        if not bool(self.mask.any()):
            raise ValueError("coordinator: the image fills the canvas, so the frame mask is empty; "
                             "lower image_size or use mask='ones'")
        # decoder layout in θ: deconv weight (E, H, 4, 4), deconv bias (H), conv weight (C, H, 3, 3), conv bias (C)
        self._shapes = ((e, h, 4, 4), (h,), (c, h, 3, 3), (c,))
        self.dim = sum(int(np.prod(s)) for s in self._shapes)

    def init_theta(self) -> np.ndarray:
        """Seeded He-scaled first layer, zero last layer: no prompt at θ₀ but a non-zero gradient."""
        e, h = self.config.enc_channels, self.config.hidden
        rng = np.random.default_rng([self.seed, 1])
        w1 = rng.standard_normal((e, h, 4, 4)) * math.sqrt(2.0 / (e * 16)) * float(self.config.init_scale)
        rest = self.dim - w1.size
        return np.concatenate([w1.ravel(), np.zeros(rest)]).astype(np.float64)

    def encode(self, canvas: torch.Tensor) -> torch.Tensor:
        """The frozen encoder: (N, C, S, S) canvas → (N, E, g, g) standardised features."""
        z = F.adaptive_avg_pool2d(canvas, _POOL)
        z = F.relu(F.conv2d(z, self._enc[0], stride=2, padding=1))
        z = F.relu(F.conv2d(z, self._enc[1], stride=2, padding=1))
        z = F.adaptive_avg_pool2d(z, self.config.grid)
        flat = z.flatten(1)
        flat = (flat - flat.mean(dim=1, keepdim=True)) / (flat.std(dim=1, keepdim=True) + 1e-6)
        return flat.view_as(z)

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        canvas = self.place(x)
        feats = self.encode(canvas)
        parts, i = [], 0
        for shape in self._shapes:
            n = int(np.prod(shape))
            parts.append(theta[i:i + n].view(*shape))
            i += n
        w1, b1, w2, b2 = parts
        hid = F.relu(F.conv_transpose2d(feats, w1, b1, stride=2, padding=1))
        small = F.conv2d(hid, w2, b2, padding=1)
        pattern = F.interpolate(small, size=(self.out_size, self.out_size), mode="bilinear", align_corners=False)
        prompt = float(self.config.scale) * self.mask * torch.tanh(pattern)
        return torch.clamp(canvas + prompt, 0.0, 1.0)
