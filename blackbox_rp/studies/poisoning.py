"""Poisoned training sets: a trigger stamped on a fraction of the images, relabelled to the target class.

Why only non-target images are poisoned: a target-class image relabelled to
the target teaches nothing about the trigger, so the stated ``rate`` would
overstate the attack. ``rate`` is a fraction of the *whole* training set (the
usual convention), drawn from the non-target images with ``seed``.

Example::

    >>> import numpy as np
    >>> from blackbox_rp.data import Dataset
    >>> from blackbox_rp.studies.poisoning import poison
    >>> from blackbox_rp.studies.triggers import BadNets
    >>> d = Dataset(np.zeros((10, 1, 8, 8), np.float32), np.arange(10) % 2, ("a", "b"))
    >>> p = poison(d, BadNets(size=2), rate=0.2, target=0, seed=0)
    >>> len(p.indices), set(d.y[p.indices].tolist()), set(p.data.y[p.indices].tolist())
    (2, {1}, {0})
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..data import Dataset

logger = logging.getLogger(__name__)

__all__ = ["Poisoned", "poison"]


@dataclass(frozen=True)
class Poisoned:
    """The poisoned set and which rows were poisoned (sorted)."""

    data: Dataset
    indices: np.ndarray
    target: int
    rate: float


def poison(data: Dataset, trigger: Callable[[np.ndarray], np.ndarray], rate: float, target: int,
           seed: int = 0) -> Poisoned:
    """A copy of ``data`` where ``round(rate · len(data))`` non-target images carry ``trigger`` and label ``target``."""
    if not isinstance(target, (int, np.integer)) or not 0 <= target < data.num_classes:
        raise ValueError(f"target class must be an int in [0, {data.num_classes}), got {target!r}")
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"poison rate must lie in [0, 1), got {rate!r}")
    candidates = np.flatnonzero(data.y != target)
    k = int(round(float(rate) * len(data)))
    if k > len(candidates):
        raise ValueError(f"rate {rate} asks for {k} poisoned images but only {len(candidates)} are not of "
                         f"the target class; lower the rate")
    idx = np.sort(np.random.default_rng(seed).choice(candidates, size=k, replace=False)) if k else \
        np.zeros(0, dtype=np.int64)
    x, y = data.x.copy(), data.y.copy()
    if k:
        x[idx] = trigger(data.x[idx])
        y[idx] = target
    logger.info("poisoned %d of %d images (rate %.3f) towards class %d", k, len(data), rate, target)
    return Poisoned(Dataset(x, y, data.classes, f"{data.name}-poisoned"), idx.astype(np.int64), int(target),
                    float(rate))
