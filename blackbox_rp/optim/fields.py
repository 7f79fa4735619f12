"""Type checks of optimizer config fields, read from their annotations: one place for every config.

The per-optimizer ``__post_init__`` checks say what range a value must lie in; before
them, :func:`check_types` makes sure each value is of the annotated kind, so that a
value from the command line (``--param q=true``, ``alpha=nan``, ``coords=0``) is refused
naming the parameter instead of failing inside a comparison (``'<' not supported
between 'int' and 'str'``) or later inside numpy. bool is not an int here although
Python says it is: ``q=true`` is a typing slip, not 1.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from typing import Any

import numpy as np

from .base import ConfigError

__all__ = ["check_types"]


def _kinds(hint: Any) -> tuple[set[Any], bool]:
    """The concrete types a hint allows, and whether it allows None."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return {a for a in args if a is not type(None)}, type(None) in args


def _check(name: str, value: Any, hint: Any) -> Any:
    kinds, optional = _kinds(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name} cannot be null (None); leave it out for the default")
    also = " or null" if optional else ""
    if kinds == {bool}:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise ConfigError(f"{name} must be true or false{also}, got {value!r}")
    if int in kinds and float not in kinds:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{name} must be an integer{also}, got {value!r} ({type(value).__name__})")
        return int(value)
    if float in kinds:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{name} must be a number{also}, got {value!r} ({type(value).__name__})")
        if math.isnan(value):
            raise ConfigError(f"{name} must be a number, not nan")
        return value if type(value) in (int, float) else (int(value) if isinstance(value, numbers.Integral)
                                                           else float(value))
    if any(typing.get_origin(k) is tuple for k in kinds):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list of integers such as [0, 5]{also}, got {value!r}")
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, numbers.Integral)]
        if bad:
            raise ConfigError(f"{name} must be a list of integers, got {bad[0]!r} in {list(value)!r}")
        return tuple(int(v) for v in value)
    return value  # str fields are checked against their choices; dicts (pycma options) by their owner


def check_types(config: Any) -> None:
    """Check (and normalise numpy scalars of) every field of a frozen config against its annotation."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        checked = _check(f.name, value, hints.get(f.name, Any))
        if checked is not value:
            object.__setattr__(config, f.name, checked)
