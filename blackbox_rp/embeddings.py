"""Continuous prompts: an input that carries soft prompt embeddings next to its text.

Black-box tuning (BBT, Sun et al., ICML 2022) assumes a "language model as a
service" whose API takes *continuous* prompts: a few rows of input embeddings
the model reads as if they were tokens, placed before the text. That is still a
black box — the caller sees answers, never gradients — but the input is no
longer a string. :class:`SoftText` is that input; :class:`EmbeddingOracle` is how
an oracle declares that it accepts it (transforms check ``isinstance``, never
probe attributes), and what a transform needs to build its prompts: the width of
the embeddings, the rows of given tokens (to start from a hand-written prompt)
and the spread of the embedding table (to scale a random projection as BBT does).

Where the rows go: the model reads its beginning-of-sequence token (if it uses
one), then the soft rows, then the text's tokens. Plain strings stay valid
inputs of the same oracle.

    >>> import numpy as np
    >>> s = SoftText(np.zeros((2, 4)), "Review: fine.")
    >>> s.embeddings.shape, s.embeddings.dtype, s.text
    ((2, 4), dtype('float32'), 'Review: fine.')
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["SoftText", "EmbeddingOracle"]


@dataclass(frozen=True, eq=False)
class SoftText:
    """``embeddings`` (n, hidden) rows read before the tokens of ``text``; a read-only float32 copy.

    ``eq=False``: two inputs are the same query when their bytes are (the oracle's journal key hashes
    both parts), not when Python compares arrays element-wise.
    """

    embeddings: np.ndarray
    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"SoftText.text must be a string, got {type(self.text).__name__}")
        e = np.asarray(self.embeddings)
        if e.ndim != 2 or e.shape[0] < 1 or e.shape[1] < 1:
            raise ValueError(f"SoftText.embeddings must be a (tokens, hidden) array with at least one row, "
                             f"got shape {e.shape}")
        if e.dtype.kind not in "fiu":
            raise ValueError(f"SoftText.embeddings must hold numbers, got dtype {e.dtype}")
        e = np.array(e, dtype=np.float32, order="C")  # a copy: the caller may reuse its buffer
        if not np.isfinite(e).all():
            raise ValueError("SoftText.embeddings contain NaN or inf; check the transform that produced them")
        e.setflags(write=False)
        object.__setattr__(self, "embeddings", e)

    def key_bytes(self) -> bytes:
        """What identifies the query: shape, rows and text (the oracle's journal hashes it)."""
        return repr(self.embeddings.shape).encode() + b"\x00" + self.embeddings.tobytes() + b"\x00" + \
            self.text.encode("utf-8")


class EmbeddingOracle(ABC):
    """Mixin of oracles that accept :class:`SoftText` inputs (and plain strings).

    Declared so that a soft-prompt transform can refuse, when it is built, an oracle that only takes
    text (an API that takes strings cannot read embeddings).
    """

    @property
    @abstractmethod
    def hidden_size(self) -> int:
        """Width of an embedding row the model reads (columns of :attr:`SoftText.embeddings`)."""

    @abstractmethod
    def embed_tokens(self, ids: Sequence[int]) -> np.ndarray:
        """(len(ids), hidden_size) float32: the rows the model reads for these token ids (any model-side
        scaling of the embedding table applied), so a :class:`SoftText` of them equals the text."""

    @abstractmethod
    def embedding_stats(self) -> tuple[float, float]:
        """(mean, std) over every entry of the input-embedding table, as the model reads it: the scale
        a random projection of a soft prompt is drawn at (BBT's ``normal`` projection)."""
