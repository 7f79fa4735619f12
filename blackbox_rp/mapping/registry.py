"""Label mappings by name: a new kind plugs in with ``@register_mapping("name")``."""

from __future__ import annotations

from typing import Any

from ..registry import Registry
from .base import LabelMapping

__all__ = ["MAPPINGS", "register_mapping", "make_mapping"]

#: registered label-mapping classes by name
MAPPINGS = Registry("label mapping")
#: class decorator adding a :class:`LabelMapping` subclass to :data:`MAPPINGS`
register_mapping = MAPPINGS.register


def make_mapping(name: str, num_source: int, num_target: int, seed: int = 0, exposure: Any = None,
                 **params: Any) -> LabelMapping:
    """Build a registered mapping. ``exposure`` (an oracle, an Exposure or a level) is checked at once,
    so a mapping needing more than the oracle shows fails here with ExposureError."""
    return MAPPINGS.lookup(name)(num_source, num_target, seed=seed, exposure=exposure, **params)
