"""Transforms by name: a new kind plugs in with ``@register_transform("name")``."""

from __future__ import annotations

from typing import Any

from ..registry import Registry
from .base import Transform

__all__ = ["TRANSFORMS", "register_transform", "make_transform"]

#: registered transform classes by name
TRANSFORMS = Registry("transform")
#: class decorator adding a :class:`Transform` subclass to :data:`TRANSFORMS`
register_transform = TRANSFORMS.register


def make_transform(name: str, in_shape: tuple[int, int, int], out_size: int, channels: int = 3,
                   seed: int = 0, **params: Any) -> Transform:
    """Build a registered transform; unknown names and parameters are refused with the accepted ones listed."""
    return TRANSFORMS.lookup(name)(in_shape, out_size, channels=channels, seed=seed, **params)
