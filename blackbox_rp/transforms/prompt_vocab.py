"""Candidate words for discrete prompt slots, ranked from the training texts.

A discrete prompt's slots each choose one of n candidates. The search is only
as good as that candidate set: BDPL (Diao et al., TMLR 2023) builds it from
the training texts themselves, keeping the n-grams most associated with each
class, so the optimizer picks among words that already carry task signal
instead of among 262k tokens. Two rankings:

* ``"freq"`` — per class, the n-grams that occur in the most texts of that class;
* ``"pmi"`` — per class, the n-grams with the highest pointwise mutual information
  log P(g | c) / P(g), among those seen in at least ``min_count`` texts (rare
  n-grams have huge, meaningless PMI).

Classes are interleaved (the best of class 0, the best of class 1, ...) so a
short list still covers every class; duplicates are dropped.

    >>> texts = ["a great film", "great acting", "a dull film", "dull and slow"]
    >>> candidates_from_texts(texts, [1, 1, 0, 0], size=4, method="freq")
    ('dull', 'great', 'a', 'and')
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

import numpy as np

__all__ = ["candidates_from_texts", "words", "ngrams", "METHODS", "PromptVocabularyError"]

#: the rankings :func:`candidates_from_texts` knows
METHODS = ("freq", "pmi")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class PromptVocabularyError(ValueError):
    """A candidate set that cannot be built (no texts, an unknown ranking, nothing left to choose)."""


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` (letters and digits, with an apostrophe suffix kept)."""
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[str]:
    """The 1..n-grams of ``tokens``, space-joined."""
    out = []
    for k in range(1, n + 1):
        out += [" ".join(tokens[i:i + k]) for i in range(len(tokens) - k + 1)]
    return out


def candidates_from_texts(texts: Sequence[str], y: Sequence[int] | np.ndarray, size: int = 50, method: str = "pmi",
                          max_n: int = 1, min_count: int = 3) -> tuple[str, ...]:
    """Up to ``size`` candidates ranked per class by ``method`` ("freq" or "pmi"), classes interleaved.

    Counts are document frequencies (a text counts an n-gram once), so one long text cannot dominate.
    ``max_n`` 2 adds bigrams. ``min_count`` applies to PMI only.
    """
    if method not in METHODS:
        raise PromptVocabularyError(f"unknown candidate ranking {method!r}; use one of {list(METHODS)} "
                                    f"or give the candidate words yourself")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise PromptVocabularyError(f"size must be a positive int, got {size!r}")
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise PromptVocabularyError(f"max_n must be a positive int, got {max_n!r}")
    texts = list(texts)
    y = np.asarray(y, dtype=np.int64)
    if not texts:
        raise PromptVocabularyError("cannot rank candidate words from zero training texts")
    if len(y) != len(texts):
        raise PromptVocabularyError(f"{len(texts)} texts but {len(y)} labels")
    per_class: dict[int, Counter] = {int(c): Counter() for c in np.unique(y)}
    total: Counter = Counter()
    for t, c in zip(texts, y):
        if not isinstance(t, str) or not t.strip():
            raise PromptVocabularyError("a training text is empty; candidate words come from non-empty texts")
        grams = set(ngrams(words(t), max_n))
        per_class[int(c)].update(grams)
        total.update(grams)
    if not total:
        raise PromptVocabularyError("the training texts contain no words to rank (letters or digits)")
    n_docs = len(texts)
    ranked: list[list[str]] = []
    for c, counts in sorted(per_class.items()):
        n_c = int((y == c).sum())
        if method == "freq":
            key = {g: (counts[g], g) for g in counts}
        else:
            key = {g: (math.log((counts[g] / n_c) / (total[g] / n_docs)), counts[g], g)
                   for g in counts if total[g] >= min_count}
        # best first; ties broken by the n-gram itself so the order is deterministic
        ranked.append([g for g in sorted(key, key=lambda g: (tuple(-v for v in key[g][:-1]), g))])
    out: list[str] = []
    seen: set[str] = set()
    for i in range(max(len(r) for r in ranked)):
        for r in ranked:
            if i < len(r) and r[i] not in seen:
                seen.add(r[i])
                out.append(r[i])
            if len(out) == size:
                return tuple(out)
    if not out:
        raise PromptVocabularyError(f"no n-gram occurs in at least min_count={min_count} texts; "
                                    f"lower min_count or use method='freq'")
    return tuple(out)
