"""A fixed output permutation with no fixed point: REFINE's output mapping.

REFINE (Chen et al., "REFINE: Inversion-Free Backdoor Defense via Model
Reprogramming", ICLR 2025) puts a *fixed random* permutation of the labels
after the suspect model and trains the input transformation so that the
permuted output matches the model's original prediction. A derangement (a
permutation with no fixed point) forces every class through a different
source class, so the transformation cannot be the identity: it has to move
each input far enough that the backdoor's shortcut (trigger → target) no
longer lines up with the labels.

``derangement`` is one-to-one (``source_of[t]`` is the source class standing
for target class t, ``source_of[t] != t``), drawn from ``seed`` when built and
never changed by :meth:`fit` — so the white-box reference differentiates
through it like any one-to-one mapping (a ``DifferentiableMapping``). It needs as many
source classes as target classes (the suspect model's own label space).

Example::

    >>> from blackbox_rp.mapping import make_mapping
    >>> m = make_mapping("derangement", 10, 10, seed=3)
    >>> bool((m.source_of != range(10)).all()), sorted(m.source_of.tolist()) == list(range(10))
    (True, True)
"""

from __future__ import annotations

import logging

import numpy as np

from ..exposure import Response
from .base import FixedMapping
from .onetoone import OneToOne
from .registry import register_mapping

logger = logging.getLogger(__name__)

__all__ = ["Derangement", "random_derangement"]


def random_derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation of range(n) with no fixed point (rejection sampling: ~e tries)."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 elements, got {n}")
    while True:
        p = rng.permutation(n)
        if not (p == np.arange(n)).any():
            return p.astype(np.int64)


@register_mapping("derangement")
class Derangement(OneToOne, FixedMapping):
    """A fixed random derangement of the labels (REFINE's output mapping); fitting does not change it."""

    name = "derangement"

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        if self.num_source != self.num_target:
            raise ValueError(f"a derangement permutes one label space: it needs as many source as target classes "
                             f"(got {self.num_source} and {self.num_target}); for a new task use 'flm', 'blm' or "
                             f"'rlm'")
        self.source_of = random_derangement(self.num_target, np.random.default_rng(self.seed))
        self.fitted = True

    def _fit(self, resp: Response | np.ndarray, y: np.ndarray) -> None:
        """Nothing is learned: the permutation is fixed when the mapping is built (that is REFINE's point)."""
