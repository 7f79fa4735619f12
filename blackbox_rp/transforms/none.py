"""No prompt: the target image resized onto the canvas, θ empty — the zero-shot baseline."""

from __future__ import annotations

import torch

from .base import CanvasConfig, Transform
from .registry import register_transform

__all__ = ["NoPrompt"]


@register_transform("none")
class NoPrompt(Transform):
    """dim 0; the output is the same canvas every other transform adds its prompt to."""

    name = "none"
    Config = CanvasConfig

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.place(x), 0.0, 1.0)
