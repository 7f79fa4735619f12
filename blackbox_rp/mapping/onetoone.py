"""One-to-one label mappings: each target class borrows one source class.

* ``identity`` — target t is source class t (the tasks share a label space).
* ``rlm`` — a random injective assignment, drawn once from the seed (Elsayed et al., ICLR 2019).
* ``flm`` — frequency label mapping (Chen et al., "Understanding and Improving Visual
  Prompting: A Label-Mapping Perspective", CVPR 2023): on the count matrix
  N[s, t] = #{i : y_i = t, argmax f(x_i) = s}, repeatedly take the largest remaining
  entry (ties: lowest s, then lowest t), assign s → t, delete row s and column t.
* ``ilm`` — iterative label mapping (same paper): FLM refitted every epoch with the
  current prompt (``refit_every = "epoch"``; the Reprogrammer does the refitting).

All work from label-only answers (``needs = "label"``): counts use only the top-1.
Scores are the mapped source probabilities renormalised over the target classes;
with label-only or top-k answers a row whose mapped classes all have zero mass
becomes uniform (no evidence).

Example (the hand-worked case of the tests)::

    >>> import numpy as np
    >>> from blackbox_rp.mapping import make_mapping
    >>> src = np.eye(4)[[0, 0, 2, 2, 2, 3, 1]]          # one-hot "probabilities"
    >>> y = np.array([0, 0, 0, 1, 1, 1, 2])
    >>> make_mapping("flm", 4, 3).fit(src, y).source_of.tolist()
    [0, 2, 1]
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..exposure import Response
from .base import (DifferentiableMapping, LabelMapping, as_labels, as_probs, count_matrix, normalize_rows,
                   renormalised_log)
from .registry import register_mapping

logger = logging.getLogger(__name__)

__all__ = ["OneToOne", "IdentityMapping", "RandomMapping", "FrequencyMapping", "IterativeMapping",
           "greedy_one_to_one"]


def greedy_one_to_one(counts: np.ndarray) -> np.ndarray:
    """``source_of[t]`` from a (S, T) count matrix by greedy largest-entry assignment (needs T ≤ S)."""
    n = np.array(counts, dtype=np.float64)
    s_count, t_count = n.shape
    source_of = np.full(t_count, -1, dtype=np.int64)
    for _ in range(t_count):
        s, t = np.unravel_index(int(np.argmax(n)), n.shape)  # argmax: first maximum in row-major order
        source_of[t] = s
        n[s, :] = -np.inf
        n[:, t] = -np.inf
    return source_of


class OneToOne(LabelMapping, DifferentiableMapping):
    """Shared scoring: target t's probability is source class ``source_of[t]``'s, renormalised."""

    needs = "label"
    _state = ("source_of",)

    def __init__(self, num_source: int, num_target: int, seed: int = 0, **kw):
        super().__init__(num_source, num_target, seed, **kw)
        if self.num_target > self.num_source:
            raise ValueError(f"a one-to-one mapping needs at least as many source classes as target classes "
                             f"({self.num_source} < {self.num_target}); use 'blm', 'blm+' or 'linear'")
        self.source_of = np.arange(self.num_target, dtype=np.int64)

    def _scores(self, resp: Response | np.ndarray) -> np.ndarray:
        return normalize_rows(as_probs(resp, self.num_source)[:, self.source_of])

    def torch_log_probs(self, logits: Any, params: Any = None) -> Any:
        """The mapped source classes' probabilities, renormalised."""
        import torch

        return renormalised_log(torch.softmax(logits, 1)[:, torch.as_tensor(self.source_of)])


@register_mapping("identity")
class IdentityMapping(OneToOne):
    """Target class t is source class t; nothing to fit."""

    name = "identity"

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.fitted = True

    def _fit(self, resp: Response | np.ndarray, y: np.ndarray) -> None:
        """Nothing is learned: the label spaces coincide by assumption."""


@register_mapping("rlm")
class RandomMapping(OneToOne):
    """A random one-to-one assignment drawn from ``seed`` at construction; fitting does not change it."""

    name = "rlm"

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        rng = np.random.default_rng(self.seed)
        self.source_of = rng.choice(self.num_source, size=self.num_target, replace=False).astype(np.int64)
        self.fitted = True

    def _fit(self, resp: Response | np.ndarray, y: np.ndarray) -> None:
        """Nothing is learned: RLM is the baseline that ignores the data."""


@register_mapping("flm")
class FrequencyMapping(OneToOne):
    """Greedy one-to-one assignment on the top-1 count matrix (Chen et al., CVPR 2023)."""

    name = "flm"

    def _fit(self, resp: Response | np.ndarray, y: np.ndarray) -> None:
        counts = count_matrix(as_labels(resp, self.num_source), y, self.num_source, self.num_target)
        self.source_of = greedy_one_to_one(counts)


@register_mapping("ilm")
class IterativeMapping(FrequencyMapping):
    """FLM refitted every epoch with the current prompt (Chen et al., CVPR 2023)."""

    name = "ilm"
    refit_every = "epoch"
