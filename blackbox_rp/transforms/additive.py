"""Additive visual prompts: a pattern, squashed by tanh, added under a mask to the canvas.

All three share one formula (Elsayed et al., "Adversarial Reprogramming of
Neural Networks", ICLR 2019; Bahng et al., "Exploring Visual Prompts for
Adapting Large-Scale Models", 2022)::

    out = clamp(canvas(x) + scale · mask ⊙ tanh(P(θ)), 0, 1)

and differ only in how the pattern P is parametrised and where the mask is:

* ``pad`` — P has one free value per frame pixel and channel (full resolution);
  mask = the frame around the resized image. θ holds only frame pixels, so
  dim = channels · (S² − m²) (e.g. 3 · (96² − 56²) = 18,240).
* ``full`` — P has one free value per masked pixel and channel; mask "ones"
  (all pixels, the default: dim = channels · S²) or "frame".
* ``lowdim`` — P is a small (channels, h, w) tensor (default 3×8×8 = 192-d)
  bilinearly upsampled to S×S; mask "frame" by default. This is the
  black-box recipe measured in RESOURCES.md (upsample → tanh → frame mask →
  added to the padded image): few dimensions for zeroth-order search.

tanh keeps the pattern bounded and smooth, so large θ saturates rather than
exploding; the clamp keeps every output pixel in [0, 1]. With the defaults
(black background, scale 1) the frame of θ = 0 is black, i.e. θ₀ gives
exactly the zero-shot input of ``none``. Elsayed et al.'s grey-canvas form is
``background=0.5, scale=0.5`` (then frame pixels never clip).

Example::

    >>> import numpy as np
    >>> from blackbox_rp.transforms import make_transform
    >>> t = make_transform("lowdim", in_shape=(1, 28, 28), out_size=96, channels=3)
    >>> t.dim, t.out_shape
    (192, (3, 96, 96))
    >>> out = t(np.full(192, 5.0), np.zeros((2, 1, 28, 28), dtype=np.float32))
    >>> out.shape, float(out.min()) >= 0.0, float(out.max()) <= 1.0
    ((2, 3, 96, 96), True, True)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import CanvasConfig, Transform
from .registry import register_transform

logger = logging.getLogger(__name__)

__all__ = ["PadPrompt", "FullPrompt", "LowDimPrompt", "MASKS"]

#: where an additive prompt may act: the frame around the image, or everywhere
MASKS = ("frame", "ones")


def _check_mask_and_scale(mask: str, scale: float) -> None:
    if mask not in MASKS:
        raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
    if not 0.0 < float(scale) <= 1.0:
        raise ValueError(f"scale must lie in (0, 1] (the prompt's pixel amplitude), got {scale!r}")


@dataclass(frozen=True)
class PadConfig(CanvasConfig):
    """``scale``: the prompt's amplitude in pixel units (tanh gives [-1, 1])."""

    scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_mask_and_scale("frame", self.scale)


@dataclass(frozen=True)
class FullConfig(CanvasConfig):
    """``mask``: "ones" (the whole canvas, image included) or "frame"."""

    mask: str = "ones"
    scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_mask_and_scale(self.mask, self.scale)


@dataclass(frozen=True)
class LowDimConfig(CanvasConfig):
    """``low_res``: (h, w) of the small pattern upsampled to S×S; ``mask`` "frame" or "ones"."""

    low_res: tuple[int, int] = (8, 8)
    mask: str = "frame"
    scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_mask_and_scale(self.mask, self.scale)
        lr = tuple(self.low_res) if isinstance(self.low_res, (tuple, list)) else ()
        if len(lr) != 2 or not all(isinstance(v, int) and v >= 1 for v in lr):
            raise ValueError(f"low_res must be two positive ints (h, w), got {self.low_res!r}")
        object.__setattr__(self, "low_res", lr)


class _Additive(Transform):
    """Shared machinery: the mask, the canvas and the squashed, masked addition."""

    def _build_mask(self, kind: str) -> torch.Tensor:
        mask = (1.0 - self.image_mask()) if kind == "frame" else torch.ones(self.out_size, self.out_size)
        if not bool(mask.any()):
            raise ValueError(f"transform {self.name!r}: the image ({self.image_size} px) fills the "
                             f"{self.out_size} px canvas, so the frame is empty; lower image_size or use mask='ones'")
        return mask

    def _add(self, pattern: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """canvas + scale · mask ⊙ tanh(pattern), clamped to [0, 1]; ``pattern`` is (channels, S, S)."""
        prompt = float(self.config.scale) * self.mask * torch.tanh(pattern)
        return torch.clamp(self.place(x) + prompt.unsqueeze(0), 0.0, 1.0)


class _PixelPrompt(_Additive):
    """One free value per masked pixel and channel."""

    def _setup_pixels(self, mask_kind: str) -> None:
        self.mask = self._build_mask(mask_kind)
        self._where = torch.nonzero(self.mask.flatten(), as_tuple=True)[0]
        self.dim = self.channels * len(self._where)

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        s = self.out_size
        flat = torch.zeros(self.channels, s * s, dtype=theta.dtype)
        # index_copy is functional: the gradient flows from the pattern to θ
        flat = flat.index_copy(1, self._where, theta.view(self.channels, -1))
        return self._add(flat.view(self.channels, s, s), x)


@register_transform("pad")
class PadPrompt(_PixelPrompt):
    """Image resized into the centre of the canvas, a learnable full-resolution frame around it."""

    name = "pad"
    Config = PadConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._setup_pixels("frame")


@register_transform("full")
class FullPrompt(_PixelPrompt):
    """A learnable full-resolution additive pattern under a mask (all-ones by default)."""

    name = "full"
    Config = FullConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._setup_pixels(self.config.mask)


@register_transform("lowdim")
class LowDimPrompt(_Additive):
    """A small (channels, h, w) pattern, bilinearly upsampled to S×S, then tanh and the mask."""

    name = "lowdim"
    Config = LowDimConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mask = self._build_mask(self.config.mask)
        h, w = self.config.low_res
        self.dim = self.channels * h * w

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h, w = self.config.low_res
        small = theta.view(1, self.channels, h, w)
        pattern = F.interpolate(small, size=(self.out_size, self.out_size), mode="bilinear", align_corners=False)[0]
        return self._add(pattern, x)
