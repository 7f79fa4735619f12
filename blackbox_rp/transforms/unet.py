"""REFINE's input transformation: a small U-Net whose output *is* the model's input image.

Chen et al., "REFINE: Inversion-Free Backdoor Defense via Model Reprogramming"
(ICLR 2025), transform each suspect input with a U-Net trained so that the
suspect model, followed by a fixed label derangement, reproduces its own
original prediction. An additive prompt (``full``) adds the *same* pattern to
every image, so it cannot send each class c to its own deranged class; a
network that reads the image can.

What this implementation chooses, and why:

* **Small and CPU-cheap**: two levels, widths ``width`` and ``2·width``
  (defaults 8 and 16): conv 3×3 → ReLU at full size, average-pool ½, conv 3×3
  → ReLU, average-pool ½, bottleneck conv 3×3 → ReLU, upsample and concatenate
  the skip, conv 3×3 → ReLU, upsample and concatenate the skip, conv 3×3 to the
  model's channels, sigmoid. 6,025 weights for a grey model at the defaults:
  small enough for zeroth-order search through a random subspace.
* **Output in [0, 1] by a sigmoid of the network alone**, as in REFINE: the
  transformed image need not resemble the input. θ₀ has a zero output layer, so
  it returns a uniform grey 0.5 image (the gradient to the last layer is not
  zero). A residual variant, sigmoid(net + logit(canvas)), was measured and
  dropped: at black or white pixels the logit saturates the sigmoid and the
  gradient vanishes (white-box agreement stuck at θ₀ on Fashion-MNIST).
* **θ is the flat weight vector, or a random subspace of it**: ``subspace`` d > 0
  makes θ a d-vector z and the weights ``w₀ + A·z`` with A a seeded Gaussian
  (columns scaled 1/√d) and w₀ the seeded start — black-box-friendly (d ≪ 6k)
  while every image still gets its own transformation.

Example::

    >>> import numpy as np
    >>> from blackbox_rp.transforms import make_transform
    >>> t = make_transform("unet", in_shape=(1, 28, 28), out_size=28, channels=1, seed=0, image_size=28)
    >>> t.dim
    6025
    >>> y = t(t.init_theta(), np.full((2, 1, 28, 28), 0.3, dtype=np.float32))
    >>> y.shape, bool(np.allclose(y, 0.5))
    ((2, 1, 28, 28), True)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .base import CanvasConfig, Transform
from .registry import register_transform

logger = logging.getLogger(__name__)

__all__ = ["UNet", "UNetConfig"]


@dataclass(frozen=True)
class UNetConfig(CanvasConfig):
    """``width`` channels at full resolution (2·width below); ``subspace`` d > 0 searches θ = z in a seeded
    random d-dimensional subspace of the weights (0: θ is all the weights); ``init_scale`` multiplies the
    He scale of the seeded start weights."""

    width: int = 8
    subspace: int = 0
    init_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 1:
            raise ValueError(f"width must be a positive int, got {self.width!r}")
        if isinstance(self.subspace, bool) or not isinstance(self.subspace, int) or self.subspace < 0:
            raise ValueError(f"subspace must be an int >= 0 (0: search all weights), got {self.subspace!r}")
        if not float(self.init_scale) >= 0.0:
            raise ValueError(f"init_scale must be >= 0, got {self.init_scale!r}")


@register_transform("unet")
class UNet(Transform):
    """Input-dependent transform: a two-level U-Net (θ: its weights, or a random subspace of them)."""

    name = "unet"
    Config = UNetConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c, w = self.channels, self.config.width
        # (weight shape, bias shape) per conv, in θ order: enc1, enc2, bottleneck, dec2, out
        convs = ((w, c), (2 * w, w), (2 * w, 2 * w), (w, 4 * w), (c, 2 * w))
        self._shapes = tuple(s for o, i in convs for s in ((o, i, 3, 3), (o,)))
        self.n_weights = sum(int(np.prod(s)) for s in self._shapes)
        self._w0 = torch.from_numpy(self._start_weights()).to(torch.float32)
        d = self.config.subspace
        if d:
            gen = torch.Generator().manual_seed(self.seed * 7919 + 17)  # private: the global RNG is untouched
            self._basis = torch.randn(self.n_weights, d, generator=gen) / math.sqrt(d)
        self.dim = d or self.n_weights

    def _start_weights(self) -> np.ndarray:
        """Seeded He-scaled convolutions, zero biases, zero output layer (θ₀ returns grey 0.5)."""
        rng = np.random.default_rng([self.seed, 2])
        parts = []
        for k, shape in enumerate(self._shapes):
            last = k >= len(self._shapes) - 2
            if len(shape) == 1 or last:
                parts.append(np.zeros(int(np.prod(shape))))
            else:
                fan_in = shape[1] * 9
                parts.append(rng.standard_normal(int(np.prod(shape))) * math.sqrt(2.0 / fan_in)
                             * float(self.config.init_scale))
        return np.concatenate(parts)

    def init_theta(self) -> np.ndarray:
        """θ₀: the seeded start weights (or z = 0 in the subspace): a uniform grey output."""
        if self.config.subspace:
            return np.zeros(self.dim, dtype=np.float64)
        return self._w0.double().numpy().copy()

    def weights(self, theta: torch.Tensor) -> list[torch.Tensor]:
        """θ → the convolutions' weights and biases, in layer order."""
        flat = self._w0 + self._basis @ theta if self.config.subspace else theta
        out, i = [], 0
        for shape in self._shapes:
            n = int(np.prod(shape))
            out.append(flat[i:i + n].view(*shape))
            i += n
        return out

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        canvas = self.place(x)
        e1w, e1b, e2w, e2b, bw, bb, d2w, d2b, ow, ob = self.weights(theta)
        h1 = F.relu(F.conv2d(canvas, e1w, e1b, padding=1))                      # (N, w, S, S)
        h2 = F.relu(F.conv2d(F.avg_pool2d(h1, 2, ceil_mode=True), e2w, e2b, padding=1))  # (N, 2w, S/2)
        h3 = F.relu(F.conv2d(F.avg_pool2d(h2, 2, ceil_mode=True), bw, bb, padding=1))    # (N, 2w, S/4)
        u2 = F.interpolate(h3, size=h2.shape[-2:], mode="bilinear", align_corners=False)
        g2 = F.relu(F.conv2d(torch.cat([u2, h2], 1), d2w, d2b, padding=1))      # (N, w, S/2)
        u1 = F.interpolate(g2, size=h1.shape[-2:], mode="bilinear", align_corners=False)
        return torch.sigmoid(F.conv2d(torch.cat([u1, h1], 1), ow, ob, padding=1))  # (N, channels, S, S)
