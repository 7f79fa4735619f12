"""Transforms by name: a new kind plugs in with ``@register_transform("name")``."""

from __future__ import annotations

from typing import Any, Callable

from .base import Transform

__all__ = ["TRANSFORMS", "register_transform", "make_transform"]

#: registered transform classes by name
TRANSFORMS: dict[str, type[Transform]] = {}


def register_transform(name: str) -> Callable[[type[Transform]], type[Transform]]:
    """Class decorator adding a :class:`Transform` subclass to :data:`TRANSFORMS`."""

    def deco(cls: type[Transform]) -> type[Transform]:
        if name in TRANSFORMS:
            raise ValueError(f"transform {name!r} is already registered")
        TRANSFORMS[name] = cls
        return cls

    return deco


def make_transform(name: str, in_shape: tuple[int, int, int], out_size: int, channels: int = 3,
                   seed: int = 0, **params: Any) -> Transform:
    """Build a registered transform; unknown names and parameters are refused with the accepted ones listed."""
    try:
        cls = TRANSFORMS[name]
    except KeyError:
        raise ValueError(f"unknown transform {name!r}; available: {sorted(TRANSFORMS)}") from None
    return cls(in_shape, out_size, channels=channels, seed=seed, **params)
