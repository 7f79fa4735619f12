"""Backdoor triggers as plain functions of a batch of images: ``trigger(x) -> x'``.

Every trigger here is a frozen dataclass with ``__call__(x)``, taking and
returning (N, C, H, W) float32 images in [0, 1] (the pixel space of every
transform and bundled model) and never modifying its input. They compose:
``compose(a, b)(x) == b(a(x))``. Each trigger also says which pixels it may
change (:meth:`BadNets.mask`), so tests can check that *exactly* the stated
pixels are set and nothing else moves.

* :class:`BadNets` — a square patch of ``size`` pixels at ``position`` with a
  fixed ``pattern`` (Gu et al., "BadNets", 2017).
* :class:`Blended` — ``(1 - alpha) · x + alpha · pattern`` over the whole image
  (Chen et al., "Targeted Backdoor Attacks ... Using Data Poisoning", 2017); the
  pattern is seeded noise, so it is reproducible without shipping an image.
* :class:`SampleNoise` — a sample-specific, low-amplitude ±``eps`` noise whose
  signs come from a hash of the image itself and ``seed``: every image gets its
  own trigger, the same one each time (in the spirit of sample-specific attacks
  such as ISSBA, without an encoder network).

Example::

    >>> import numpy as np
    >>> from blackbox_rp.studies.triggers import BadNets, Blended, compose
    >>> x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    >>> t = BadNets(size=3, position="bottom-right", margin=1)
    >>> y = t(x)
    >>> float(y[0, 0, 24:27, 24:27].min()), float(y.sum()) == 2 * 9
    (1.0, True)
    >>> compose(t, Blended(alpha=0.1))(x).shape
    (2, 1, 28, 28)
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["Trigger", "BadNets", "Blended", "SampleNoise", "Composed", "compose", "make_trigger", "TRIGGERS",
           "POSITIONS", "PATTERNS", "parse_trigger"]

#: corner names BadNets accepts for ``position`` (or give (row, col) of the patch's top-left pixel)
POSITIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "center")
#: patch patterns: all ones, alternating 1/0 starting with 1 at the patch's top-left, or seeded 0/1 noise
PATTERNS = ("white", "checkerboard", "random")


def _check_images(x: np.ndarray, who: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4 or x.dtype != np.float32:
        raise ValueError(f"{who}: expected float32 images (N, C, H, W) in [0, 1], got {x.dtype} {x.shape}")
    return x


class Trigger:
    """Base: a trigger is a callable on image batches; ``describe`` names it in results files."""

    name = "trigger"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        from dataclasses import asdict

        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class BadNets(Trigger):
    """A ``size``×``size`` patch at ``position`` (a corner name or (row, col)) ``margin`` pixels from the edge.

    ``pattern``: ``white`` (ones), ``checkerboard`` or ``random`` (0/1 from ``seed``); the patch is
    written into every channel.
    """

    size: int = 3
    position: str | tuple[int, int] = "bottom-right"
    margin: int = 1
    pattern: str = "white"
    seed: int = 0
    name = "badnets"

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"BadNets.size must be a positive int, got {self.size!r}")
        if isinstance(self.margin, bool) or not isinstance(self.margin, int) or self.margin < 0:
            raise ValueError(f"BadNets.margin must be an int >= 0, got {self.margin!r}")
        if isinstance(self.position, (list, tuple)):
            if len(self.position) != 2 or not all(isinstance(v, int) and v >= 0 for v in self.position):
                raise ValueError(f"BadNets.position as coordinates is (row, col) >= 0, got {self.position!r}")
            object.__setattr__(self, "position", tuple(self.position))
        elif self.position not in POSITIONS:
            raise ValueError(f"BadNets.position must be one of {POSITIONS} or (row, col), got {self.position!r}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"BadNets.pattern must be one of {PATTERNS}, got {self.pattern!r}")

    def corner(self, height: int, width: int) -> tuple[int, int]:
        """(row, col) of the patch's top-left pixel on an image of this size."""
        s, m = self.size, self.margin
        if isinstance(self.position, tuple):
            r, c = self.position
        else:
            r = {"top": m, "bottom": height - m - s, "center": (height - s) // 2}[self.position.split("-")[0]]
            c = {"left": m, "right": width - m - s, "center": (width - s) // 2}[self.position.split("-")[-1]]
        if r < 0 or c < 0 or r + s > height or c + s > width:
            raise ValueError(f"a {s}px BadNets patch at {self.position!r} (margin {m}) does not fit a "
                             f"{height}×{width} image; use a smaller size or margin")
        return r, c

    def patch(self) -> np.ndarray:
        """The (size, size) float32 values written into the patch."""
        s = self.size
        if self.pattern == "white":
            return np.ones((s, s), dtype=np.float32)
        if self.pattern == "checkerboard":
            return ((np.add.outer(np.arange(s), np.arange(s)) + 1) % 2).astype(np.float32)
        return np.random.default_rng(self.seed).integers(0, 2, (s, s)).astype(np.float32)

    def mask(self, height: int, width: int) -> np.ndarray:
        """(H, W) bool: the pixels this trigger sets (in every channel)."""
        r, c = self.corner(height, width)
        m = np.zeros((height, width), dtype=bool)
        m[r:r + self.size, c:c + self.size] = True
        return m

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _check_images(x, "BadNets")
        r, c = self.corner(x.shape[2], x.shape[3])
        out = x.copy()
        out[:, :, r:r + self.size, c:c + self.size] = self.patch()
        return out


@dataclass(frozen=True)
class Blended(Trigger):
    """``(1 - alpha) · x + alpha · pattern``; the pattern is uniform noise from ``seed`` (one per image shape)."""

    alpha: float = 0.2
    seed: int = 0
    name = "blended"

    def __post_init__(self) -> None:
        if not (isinstance(self.alpha, (int, float)) and 0.0 < float(self.alpha) <= 1.0):
            raise ValueError(f"Blended.alpha must lie in (0, 1], got {self.alpha!r}")

    def pattern(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The (C, H, W) float32 pattern blended in (the same for every image of that shape)."""
        return np.random.default_rng(self.seed).random(shape, dtype=np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _check_images(x, "Blended")
        a = np.float32(self.alpha)
        return ((np.float32(1) - a) * x + a * self.pattern(tuple(x.shape[1:]))).astype(np.float32)


@dataclass(frozen=True)
class SampleNoise(Trigger):
    """``clip(x + eps · s(x), 0, 1)`` with ``s(x)`` ∈ {−1, +1}^(C·H·W) drawn from ``seed`` and a hash of x's bytes.

    Why a hash: the trigger must differ from image to image yet be a function of the image (the
    attacker stamps each image once; applying it again to the same clean image gives the same result).
    """

    eps: float = 0.05
    seed: int = 0
    name = "sample-noise"

    def __post_init__(self) -> None:
        if not (isinstance(self.eps, (int, float)) and 0.0 < float(self.eps) <= 1.0):
            raise ValueError(f"SampleNoise.eps must lie in (0, 1], got {self.eps!r}")

    def signs(self, image: np.ndarray) -> np.ndarray:
        """The ±1 pattern of one (C, H, W) image."""
        digest = hashlib.sha256(np.ascontiguousarray(image, dtype=np.float32).tobytes()).digest()
        rng = np.random.default_rng([self.seed, int.from_bytes(digest[:8], "little")])
        return (rng.integers(0, 2, image.shape) * 2 - 1).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _check_images(x, "SampleNoise")
        noise = np.stack([self.signs(img) for img in x]) if len(x) else np.zeros_like(x)
        return np.clip(x + np.float32(self.eps) * noise, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Composed(Trigger):
    """Triggers applied in order (the first one first)."""

    parts: tuple[Callable[[np.ndarray], np.ndarray], ...]
    name = "composed"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for t in self.parts:
            x = t(x)
        return x

    def describe(self) -> dict:
        return {"name": self.name,
                "parts": [p.describe() if isinstance(p, Trigger) else {"name": repr(p)} for p in self.parts]}


def compose(*triggers: Callable[[np.ndarray], np.ndarray]) -> Composed:
    """One trigger applying ``triggers`` left to right."""
    if not triggers:
        raise ValueError("compose needs at least one trigger")
    return Composed(tuple(triggers))


#: triggers by name, for the CLI and configs (``make_trigger("badnets", size=4)``)
TRIGGERS: dict[str, type] = {"badnets": BadNets, "blended": Blended, "sample-noise": SampleNoise}


def make_trigger(name: str, **params: object) -> Trigger:
    """A trigger by name with its dataclass fields as keyword arguments; unknown names or fields are refused."""
    try:
        cls = TRIGGERS[name]
    except KeyError:
        raise ValueError(f"unknown trigger {name!r}; available: {sorted(TRIGGERS)}") from None
    fields = [f for f in cls.__dataclass_fields__ if f != "parts"]
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(f"trigger {name!r}: unknown parameter(s) {unknown}; accepted: {fields}")
    return cls(**params)


def parse_trigger(spec: str) -> Trigger:
    """``"badnets"`` or ``"badnets:size=4,position=top-left"`` → a trigger (the CLI's form)."""
    from ..commands._params import parse_params  # the one KEY=VALUE parser

    name, _, rest = spec.partition(":")
    items = [p for p in rest.split(",") if p]
    return make_trigger(name.strip(), **parse_params(items, f"trigger {name.strip()!r}"))
