"""Label mappings by name: a new kind plugs in with ``@register_mapping("name")``."""

from __future__ import annotations

from typing import Any, Callable

from .base import LabelMapping

__all__ = ["MAPPINGS", "register_mapping", "make_mapping"]

#: registered label-mapping classes by name
MAPPINGS: dict[str, type[LabelMapping]] = {}


def register_mapping(name: str) -> Callable[[type[LabelMapping]], type[LabelMapping]]:
    """Class decorator adding a :class:`LabelMapping` subclass to :data:`MAPPINGS`."""

    def deco(cls: type[LabelMapping]) -> type[LabelMapping]:
        if name in MAPPINGS:
            raise ValueError(f"label mapping {name!r} is already registered")
        MAPPINGS[name] = cls
        return cls

    return deco


def make_mapping(name: str, num_source: int, num_target: int, seed: int = 0, exposure: Any = None,
                 **params: Any) -> LabelMapping:
    """Build a registered mapping. ``exposure`` (an oracle, an Exposure or a level) is checked at once,
    so a mapping needing more than the oracle shows fails here with ExposureError."""
    try:
        cls = MAPPINGS[name]
    except KeyError:
        raise ValueError(f"unknown label mapping {name!r}; available: {sorted(MAPPINGS)}") from None
    return cls(num_source, num_target, seed=seed, exposure=exposure, **params)
