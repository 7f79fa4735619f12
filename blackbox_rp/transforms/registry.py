"""Transforms by name: a new kind plugs in with ``@register_transform("name")``."""

from __future__ import annotations

from typing import Any

from ..registry import Registry
from .base import Transform

__all__ = ["TRANSFORMS", "register_transform", "make_transform", "build_transform"]

#: registered transform classes by name
TRANSFORMS = Registry("transform")
#: class decorator adding a :class:`Transform` subclass to :data:`TRANSFORMS`
register_transform = TRANSFORMS.register


def make_transform(name: str, in_shape: tuple[int, int, int], out_size: int, channels: int = 3,
                   seed: int = 0, **params: Any) -> Transform:
    """Build a registered transform; unknown names and parameters are refused with the accepted ones listed."""
    return TRANSFORMS.lookup(name)(in_shape, out_size, channels=channels, seed=seed, **params)


def build_transform(name: str, train: Any, oracle: Any, seed: int = 0, **params: Any) -> Any:
    """The one way a named transform is built for a task: from the oracle itself for a
    :class:`~blackbox_rp.transforms.protocol.BuiltFromOracle` transform (a soft prompt reads the model's
    embedding table), from the training split and the oracle's input spec for every other one."""
    from .protocol import BuiltFromOracle

    cls = TRANSFORMS.lookup(name)
    if issubclass(cls, BuiltFromOracle):
        return cls.for_oracle(train, oracle, seed=seed, **params)
    return cls.for_task(train, oracle.input_spec, seed=seed, **params)
