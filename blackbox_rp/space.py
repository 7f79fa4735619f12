"""θ's search space: a continuous box, categorical slots, or both — one flat vector either way.

Image prompts search a box of floats; discrete text prompts choose, for each of
L token slots, one of n candidates. Optimizers see both as one float64 vector
θ, the box part first and then one entry per slot holding the chosen option's
index (an integer value), so ask/tell, the journal, checkpoints and resume are
written once. Each optimizer declares which kinds it accepts
(:attr:`blackbox_rp.optim.Optimizer.accepts`); a space of another kind is
refused when the optimizer is built, naming both.

Like Optuna's search-space transform, :meth:`SearchSpace.encode` maps any θ into
one box — categorical index i of n becomes (i + ½)/n in [0, 1] — and
:meth:`SearchSpace.decode` maps a point of that box back, so an optimizer that
only knows boxes can still be bridged to categorical slots explicitly.

    >>> import numpy as np
    >>> s = SearchSpace(continuous=2, choices=(3, 5))
    >>> s.kind, s.dim
    ('mixed', 4)
    >>> theta = np.array([0.1, -0.2, 2, 4])
    >>> s.decode(s.encode(theta)).tolist()
    [0.1, -0.2, 2.0, 4.0]
    >>> s.slots(theta).tolist()
    [2, 4]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SearchSpace", "SpaceError", "KINDS"]

#: what a space holds: only floats, only categorical slots, or both
KINDS = ("continuous", "categorical", "mixed")


class SpaceError(ValueError):
    """A θ outside its search space, or a space that cannot be built; the message says which part."""


@dataclass(frozen=True)
class SearchSpace:
    """``continuous`` float dimensions in [``low``, ``high``] followed by one slot per entry of ``choices``
    (the number of options of that slot, at least 1). ``labels`` optionally names each slot's options
    (a tuple of tuples of str), for :meth:`describe` and readable results."""

    continuous: int = 0
    choices: tuple[int, ...] = ()
    low: float = -math.inf
    high: float = math.inf
    labels: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.continuous, bool) or not isinstance(self.continuous, (int, np.integer)) \
                or self.continuous < 0:
            raise SpaceError(f"continuous must be a non-negative int, got {self.continuous!r}")
        object.__setattr__(self, "continuous", int(self.continuous))
        choices = tuple(self.choices)
        for i, n in enumerate(choices):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise SpaceError(f"slot {i} must have a positive int number of options, got {n!r}")
        object.__setattr__(self, "choices", tuple(int(n) for n in choices))
        if not float(self.low) < float(self.high):
            raise SpaceError(f"the box needs low < high, got [{self.low}, {self.high}]")
        if self.labels is not None:
            labels = tuple(tuple(str(v) for v in opts) for opts in self.labels)
            if len(labels) != len(self.choices) or any(len(o) != n for o, n in zip(labels, self.choices)):
                raise SpaceError("labels must name every option of every slot, one tuple per slot")
            object.__setattr__(self, "labels", labels)

    # ------------------------------------------------------------ builders
    @staticmethod
    def box(dim: int, low: float = -math.inf, high: float = math.inf) -> "SearchSpace":
        """A purely continuous space of ``dim`` floats."""
        return SearchSpace(continuous=dim, low=low, high=high)

    @staticmethod
    def categorical(choices: tuple[int, ...] | list[int],
                    labels: tuple[tuple[str, ...], ...] | None = None) -> "SearchSpace":
        """One slot per entry of ``choices`` (its number of options)."""
        return SearchSpace(choices=tuple(choices), labels=labels)

    # ---------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        """Length of θ: continuous dimensions plus slots."""
        return self.continuous + len(self.choices)

    @property
    def kind(self) -> str:
        if not self.choices:
            return "continuous"
        return "categorical" if self.continuous == 0 else "mixed"

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def slots(self, theta: np.ndarray) -> np.ndarray:
        """The chosen option of every slot, int64 (n_slots,)."""
        return np.asarray(theta, dtype=np.float64)[self.continuous:].astype(np.int64)

    # ---------------------------------------------------------- checking θ
    def validate(self, theta: Any, who: str = "θ") -> np.ndarray:
        """θ as float64 (dim,), or :class:`SpaceError` naming the first part outside the space."""
        t = np.asarray(theta, dtype=np.float64).reshape(-1) if np.ndim(theta) else np.asarray([theta], float)
        if t.shape != (self.dim,):
            raise SpaceError(f"{who} must have {self.dim} entries ({self.describe_short()}), got {t.size}")
        if not np.isfinite(t).all():
            raise SpaceError(f"{who} contains NaN or inf at index {int(np.flatnonzero(~np.isfinite(t))[0])}")
        box = t[:self.continuous]
        if box.size and (box.min() < self.low or box.max() > self.high):
            raise SpaceError(f"{who}'s continuous part must lie in [{self.low:g}, {self.high:g}], "
                             f"got [{box.min():.4g}, {box.max():.4g}]")
        for i, (v, n) in enumerate(zip(t[self.continuous:], self.choices)):
            if v != int(v) or not 0 <= v < n:
                raise SpaceError(f"{who}: slot {i} takes an option index in 0..{n - 1}, got {v!r}")
        return t

    def contains(self, theta: Any) -> bool:
        try:
            self.validate(theta)
        except SpaceError:
            return False
        return True

    # ------------------------------------------------- one box and back
    def encode(self, theta: np.ndarray) -> np.ndarray:
        """θ → one box: the continuous part unchanged, slot index i of n → (i + ½)/n in (0, 1)."""
        t = self.validate(theta)
        out = t.copy()
        n = np.asarray(self.choices, dtype=np.float64)
        out[self.continuous:] = (t[self.continuous:] + 0.5) / n
        return out

    def decode(self, z: np.ndarray) -> np.ndarray:
        """A point of the box → θ: continuous part clipped to [low, high], slot value u → floor(u·n), clipped."""
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        if z.shape != (self.dim,):
            raise SpaceError(f"expected a point of {self.dim} entries, got {z.size}")
        out = z.copy()
        out[:self.continuous] = np.clip(z[:self.continuous], self.low, self.high)
        n = np.asarray(self.choices, dtype=np.float64)
        out[self.continuous:] = np.clip(np.floor(z[self.continuous:] * n), 0, n - 1)
        return out

    # ------------------------------------------------------------ sampling
    def sample(self, rng: np.random.Generator, sigma: float = 1.0, center: np.ndarray | None = None) -> np.ndarray:
        """A random θ: the continuous part ``center + sigma·N(0, I)`` clipped to the box, each slot uniform."""
        c = np.zeros(self.continuous) if center is None else np.asarray(center, np.float64)[:self.continuous]
        box = np.clip(c + sigma * rng.standard_normal(self.continuous), self.low, self.high)
        slots = np.array([rng.integers(n) for n in self.choices], dtype=np.float64)
        return np.concatenate([box, slots])

    # ------------------------------------------------------------ describe
    def option(self, slot: int, index: int) -> str:
        """The label of option ``index`` of ``slot`` (its index as text when unlabelled)."""
        return self.labels[slot][index] if self.labels is not None else str(index)

    def describe_short(self) -> str:
        parts = []
        if self.continuous:
            parts.append(f"{self.continuous} continuous")
        if self.choices:
            parts.append(f"{len(self.choices)} categorical slot(s) of {'/'.join(map(str, self.choices))} options")
        return " + ".join(parts)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "dim": self.dim, "continuous": self.continuous, "choices": list(self.choices),
                "low": self.low if math.isfinite(self.low) else None,
                "high": self.high if math.isfinite(self.high) else None}
