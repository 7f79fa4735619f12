"""One registry shape for every pluggable kind (transforms, label mappings, optimizers).

A :class:`Registry` is a dict of classes by name with a decorator to add one
and a lookup whose error lists what exists::

    >>> shapes = Registry("shape")
    >>> @shapes.register("square")
    ... class Square:
    ...     pass
    >>> shapes.lookup("square").__name__, sorted(shapes)
    ('Square', ['square'])
    >>> shapes.lookup("circle")
    Traceback (most recent call last):
    ...
    ValueError: unknown shape 'circle'; available: ['square']
"""

from __future__ import annotations

from typing import Callable, TypeVar

__all__ = ["Registry"]

C = TypeVar("C", bound=type)


class Registry(dict):
    """Classes by name. ``kind`` names them in errors; ``error`` is the exception type an unknown name
    raises (a ValueError subclass)."""

    def __init__(self, kind: str, error: type[ValueError] = ValueError):
        super().__init__()
        self.kind, self.error = kind, error

    def register(self, name: str) -> Callable[[C], C]:
        """Class decorator adding the class under ``name``; a name taken by another class is refused
        (registering the same class again is harmless, as on a module reload)."""

        def deco(cls: C) -> C:
            if name in self and self[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered to {self[name].__name__}")
            self[name] = cls
            return cls

        return deco

    def lookup(self, name: str) -> type:
        """The class registered as ``name``; an unknown name raises ``error`` listing the known ones."""
        try:
            return self[name]
        except KeyError:
            raise self.error(f"unknown {self.kind} {name!r}; available: {sorted(self)}") from None
