"""Label mappings over a language model's next-token distribution (O_ω for text).

A token oracle (:class:`blackbox_rp.vocab.TokenOracle`) answers over its whole
vocabulary — 262,144 tokens for Gemma-3 — but an API shows only the top-k
tokens of each answer. These mappings therefore never build a dense
(n, vocabulary) matrix: they read the returned ids and probabilities, and the
ones that learn from data keep a compact index of the token ids seen while
fitting.

=============  ========  ====================================================
name           needs     what it is
=============  ========  ====================================================
verbalizer     topk      fixed label words → their tokens' probabilities
token-flm      label     one-to-one verbalizer searched from data (FLM on top-1 tokens)
token-blm      label     BLM: ω over the top-1 tokens seen in training
token-blm+     topk      BLM+: ω from the returned top-k tokens' probability mass
token-linear   topk      logistic regression on the returned top-k log-probabilities
=============  ========  ====================================================

**A label word missing from the shown top-k** (``missing``): ``"floor"``
(default) gives it the largest probability it could have, min(smallest shown
probability, unshown mass 1 − Σ shown) — a missing token cannot be likelier
than a shown one, nor hold more than what is left; ``"zero"`` gives it 0. A
row where no label word can score becomes uniform (ties go to class 0).

The mappings take the oracle's :class:`~blackbox_rp.vocab.Vocabulary` as
``vocabulary=`` (the verbalizer needs it to turn words into ids; the others use
it to report tokens as text); :func:`token_mapping_params` gives it from a
token oracle, and :meth:`TokenMapping.check` refuses an oracle that answers
class scores rather than tokens.

    >>> import numpy as np
    >>> from blackbox_rp.exposure import Response
    >>> from blackbox_rp.vocab import ListVocabulary
    >>> v = ListVocabulary(["<unk>", " good", " bad", " the", " a"])
    >>> m = make_mapping("verbalizer", v.size, 2, vocabulary=v, words=("bad", "good"))
    >>> r = Response("topk", v.size, np.array([3]), np.array([[0.5, 0.3]], np.float32), np.array([[3, 1]]))
    >>> m.scores(r).round(3).tolist()   # " bad" not shown: floor = min(0.3, 1 − 0.8) = 0.2
    [[0.4, 0.6]]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exposure import Response
from ..oracle import Oracle
from ..vocab import TokenOracle, Vocabulary, VocabularyError
from .base import FixedMapping, LabelMapping, normalize_rows
from .bayesian import blm_weights
from .linear import LinearMapping
from .registry import make_mapping, register_mapping

logger = logging.getLogger(__name__)

__all__ = ["TokenMapping", "Verbalizer", "VerbalizerConfig", "TokenFLM", "TokenBLM", "TokenBLMPlus",
           "TokenLinear", "TokenMappingError", "shown_tokens", "token_mapping_params", "MISSING"]

#: what a label word missing from the shown top-k gets
MISSING = ("floor", "zero")


class TokenMappingError(ValueError):
    """A token mapping that cannot be built or used as asked (label words, vocabulary, oracle)."""


def shown_tokens(resp: Response, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(ids (n, k'), probabilities (n, k')) of the tokens an answer shows, best first.

    Top-k answers as they are; label-only answers as their top-1 with probability 1; full
    logits / probabilities reduced to their ``k`` largest entries (argpartition: no sort of the vocabulary).
    """
    if resp.kind == "topk":
        return resp.indices.astype(np.int64), resp.scores.astype(np.float64)
    if resp.kind == "label":
        return resp.labels.astype(np.int64)[:, None], np.ones((len(resp), 1))
    s = resp.scores
    k = min(k, s.shape[1])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    if resp.kind == "probs":
        return idx, np.take_along_axis(s, idx, axis=1).astype(np.float64)
    z = s.astype(np.float32)
    mx = z.max(axis=1, keepdims=True)
    log_norm = mx[:, 0].astype(np.float64) + np.log(np.exp(z - mx).sum(axis=1, dtype=np.float64))
    return idx, np.exp(np.take_along_axis(s, idx, axis=1).astype(np.float64) - log_norm[:, None])


def _missing_value(p: np.ndarray, how: str) -> np.ndarray:
    """Per row: what an unshown token gets (see the module docstring)."""
    if how == "zero":
        return np.zeros(len(p))
    return np.minimum(p.min(axis=1), np.clip(1.0 - p.sum(axis=1), 0.0, None))


def token_probs(resp: Response, ids: np.ndarray, missing: str) -> np.ndarray:
    """(n, len(ids)) probability of each token id in each answer; unshown ones as ``missing`` says.

    Full answers (logits / probs) give every id's exact probability; an id of -1 (no token) gets 0.
    """
    ids = np.asarray(ids, dtype=np.int64)
    valid = ids >= 0
    if resp.kind in ("logits", "probs"):
        s = resp.scores
        out = np.zeros((len(resp), len(ids)))
        if valid.any():
            cols = s[:, ids[valid]].astype(np.float64)
            if resp.kind == "logits":
                z = s.astype(np.float32)
                mx = z.max(axis=1, keepdims=True)
                log_norm = mx[:, 0].astype(np.float64) + np.log(np.exp(z - mx).sum(axis=1, dtype=np.float64))
                cols = np.exp(cols - log_norm[:, None])
            out[:, valid] = cols
        return out
    shown_ids, p = shown_tokens(resp)
    match = shown_ids[:, :, None] == ids[None, None, :]  # (n, k, m) booleans: k shown × m label tokens, both small
    found = match.any(axis=1)
    out = (match * p[:, :, None]).sum(axis=1)
    fill = _missing_value(p, missing)
    out = np.where(found, out, fill[:, None])
    out[:, ~valid] = 0.0
    return out


class TokenMapping(LabelMapping):
    """Base of the mappings over a token vocabulary: one view, the oracle's vocabulary, and an oracle
    check that refuses class-score oracles (declared by :class:`~blackbox_rp.vocab.TokenOracle`)."""

    def __init__(self, num_source: int, num_target: int, seed: int = 0, exposure: Any = None, views: int = 1,
                 vocabulary: Vocabulary | None = None, **params: Any):
        if views != 1:
            raise TokenMappingError(f"token mappings read one answer per input; got views={views}")
        if vocabulary is not None and not isinstance(vocabulary, Vocabulary):
            raise TokenMappingError(f"vocabulary must be a blackbox_rp.vocab.Vocabulary, got {type(vocabulary).__name__}")
        if vocabulary is not None and vocabulary.size != num_source:
            raise TokenMappingError(f"the vocabulary has {vocabulary.size} tokens but the oracle answers over "
                                    f"{num_source}; give the oracle's own vocabulary")
        self.vocabulary = vocabulary
        super().__init__(num_source, num_target, seed=seed, exposure=exposure, views=views, **params)

    def check(self, oracle_or_level: Any) -> None:
        if isinstance(oracle_or_level, Oracle) and not isinstance(oracle_or_level, TokenOracle):
            raise TokenMappingError(f"label mapping {self.name!r} reads next-token distributions, but "
                                    f"{type(oracle_or_level).__name__} answers class scores: use a token oracle "
                                    f"(a language model) or a class mapping (flm, blm, blm+, linear)")
        super().check(oracle_or_level)

    def _check_resp_classes(self, resp: Any) -> Response:
        if not isinstance(resp, Response):
            raise TokenMappingError(f"label mapping {self.name!r} reads oracle Responses over a vocabulary, "
                                    f"not {type(resp).__name__} (a dense matrix over 262k tokens is never built)")
        if resp.num_classes != self.num_source:
            raise TokenMappingError(f"the answers are over {resp.num_classes} tokens; this mapping was built "
                                    f"for a vocabulary of {self.num_source}")
        return resp

    def fold(self, resp: Any) -> Any:
        return self._check_resp_classes(resp)

    def token_text(self, ids: Any) -> list[str | None]:
        """Tokens as text when the vocabulary is known (their ids as text otherwise); -1 → None."""
        out: list[str | None] = []
        for i in np.asarray(ids, dtype=np.int64).reshape(-1):
            out.append(None if i < 0 else (self.vocabulary.token(int(i)) if self.vocabulary else str(int(i))))
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """As the base, but fitted arrays may change shape (the compact index grows with the data)."""
        self._check_state_owner(state)
        for k in self._state:
            setattr(self, k, np.array(state["arrays"][k], copy=True))
        self.fitted = bool(state["fitted"])


# ---------------------------------------------------------------- verbalizer
@dataclass(frozen=True)
class VerbalizerConfig:
    """words: one entry per target class, its label word(s); ``"great|good"`` sums several words.
    token_ids: instead of words, the token ids per class (a tuple of tuples).
    leading_space: prepend a space to a word that has none (a word after a prompt is a ``" word"`` token).
    missing: ``"floor"`` or ``"zero"`` for a label word not in the shown top-k (module docstring)."""

    words: tuple[str, ...] = ()
    token_ids: tuple[tuple[int, ...], ...] | None = None
    leading_space: bool = True
    missing: str = "floor"

    def __post_init__(self) -> None:
        if isinstance(self.words, str):
            raise TokenMappingError(f"words must be one entry per class, got one string {self.words!r}")
        object.__setattr__(self, "words", tuple(str(w) for w in self.words))
        if self.token_ids is not None:
            object.__setattr__(self, "token_ids", tuple(tuple(int(i) for i in c) for c in self.token_ids))
        if self.missing not in MISSING:
            raise TokenMappingError(f"missing must be one of {list(MISSING)}, got {self.missing!r}")


def _resolve_words(words: tuple[str, ...], vocabulary: Vocabulary | None, leading_space: bool,
                   num_target: int) -> tuple[tuple[int, ...], ...]:
    if len(words) != num_target:
        raise TokenMappingError(f"the verbalizer needs one label word per class ({num_target}), got {len(words)}: "
                                f"{list(words)}; e.g. words=('negative', 'positive')")
    if vocabulary is None:
        raise TokenMappingError("the verbalizer turns words into token ids through the oracle's vocabulary: "
                                "build it with vocabulary=oracle.vocabulary (Reprogrammer.build does), or "
                                "give token_ids")
    out = []
    for c, entry in enumerate(words):
        ids = []
        for w in entry.split("|"):
            if not w.strip():
                raise TokenMappingError(f"class {c} has an empty label word in {entry!r}")
            text = w if (not leading_space or w[:1].isspace()) else " " + w
            try:
                i = vocabulary.single_token(text)
                pieces = vocabulary.encode(text)
            except VocabularyError as e:
                raise TokenMappingError(f"label word {text!r} (class {c}) is not in the vocabulary: {e}") from e
            if i is None:
                raise TokenMappingError(f"label word {text!r} (class {c}) is {len(pieces)} tokens "
                                        f"{vocabulary.tokens(pieces)}; a verbalizer reads one next token: choose "
                                        f"a one-token word (or set leading_space=False)")
            ids.append(i)
        out.append(tuple(ids))
    return tuple(out)


@register_mapping("verbalizer")
class Verbalizer(TokenMapping, FixedMapping):
    """Fixed label words: class c's score is its words' next-token probabilities, rows renormalised.

    Nothing to fit (it is fitted once built); ``fit`` is accepted and changes nothing.
    """

    name = "verbalizer"
    needs = "topk"
    Config = VerbalizerConfig

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        c = self.config
        ids = c.token_ids if c.token_ids is not None else \
            _resolve_words(c.words, self.vocabulary, c.leading_space, self.num_target)
        if len(ids) != self.num_target or any(not t for t in ids):
            raise TokenMappingError(f"token_ids needs a non-empty tuple of ids for each of {self.num_target} classes")
        flat = [i for t in ids for i in t]
        for i in flat:
            if not 0 <= i < self.num_source:
                raise TokenMappingError(f"token id {i} is outside the vocabulary of {self.num_source}")
        if len(set(flat)) != len(flat):
            raise TokenMappingError(f"two classes share a label token ({self.token_text(flat)}); give distinct words")
        self.class_ids = ids
        self._ids = np.asarray(flat, dtype=np.int64)
        self._owner = np.asarray([c for c, t in enumerate(ids) for _ in t], dtype=np.int64)
        self.fitted = True

    def _fit(self, resp: Any, y: np.ndarray) -> None:
        """Fixed words: nothing to learn."""

    def _scores(self, resp: Any) -> np.ndarray:
        p = token_probs(resp, self._ids, self.config.missing)
        out = np.zeros((len(p), self.num_target))
        np.add.at(out.T, self._owner, p.T)
        return normalize_rows(out)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["label_tokens"] = [self.token_text(t) for t in self.class_ids]
        return d


# ------------------------------------------------------- one-to-one from data
@dataclass(frozen=True)
class TokenFLMConfig:
    """missing: as the verbalizer's, for the found tokens when they are not shown."""

    missing: str = "floor"

    def __post_init__(self) -> None:
        if self.missing not in MISSING:
            raise TokenMappingError(f"missing must be one of {list(MISSING)}, got {self.missing!r}")


def greedy_assign(counts: np.ndarray) -> np.ndarray:
    """Column t's row by greedy largest-entry assignment; -1 for columns left without a row (rows < cols)."""
    n = np.array(counts, dtype=np.float64)
    out = np.full(n.shape[1], -1, dtype=np.int64)
    for _ in range(min(n.shape)):
        s, t = np.unravel_index(int(np.argmax(n)), n.shape)
        out[t] = s
        n[s, :] = -np.inf
        n[:, t] = -np.inf
    return out


@register_mapping("token-flm")
class TokenFLM(TokenMapping):
    """FLM over tokens (Chen et al., CVPR 2023): each class greedily takes the token that is most often
    the top-1 answer for it (ties and gaps filled by top-k mass); then scored like a verbalizer."""

    name = "token-flm"
    needs = "label"
    Config = TokenFLMConfig
    _state = ("source_of",)

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.source_of = np.full(self.num_target, -1, dtype=np.int64)

    def _fit(self, resp: Any, y: np.ndarray) -> None:
        ids, p = shown_tokens(resp)
        uniq, pos = np.unique(ids, return_inverse=True)
        pos = pos.reshape(ids.shape)
        counts = np.zeros((len(uniq), self.num_target))
        np.add.at(counts, (pos[:, 0], y), 1.0)                          # top-1 counts decide
        np.add.at(counts, (pos, np.broadcast_to(y[:, None], pos.shape)), 1e-6 * p)  # mass breaks ties
        rows = greedy_assign(counts)
        self.source_of = np.where(rows >= 0, uniq[np.maximum(rows, 0)], -1)
        if (rows < 0).any():
            logger.warning("token-flm: only %d distinct tokens answered for %d classes; class(es) %s get no token",
                           len(uniq), self.num_target, np.flatnonzero(rows < 0).tolist())

    def _scores(self, resp: Any) -> np.ndarray:
        if resp.kind == "label":
            hit = resp.labels[:, None] == self.source_of[None, :]
            return normalize_rows(hit.astype(np.float64))
        return normalize_rows(token_probs(resp, self.source_of, self.config.missing))

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["label_tokens"] = self.token_text(self.source_of)
        return d


# ------------------------------------------------------------- BLM over tokens
@dataclass(frozen=True)
class TokenBLMConfig:
    """lam: BLM's smoothing λ (1 in the paper). k: shown tokens per answer counted (None: all shown;
    BLM reads only the top-1)."""

    lam: float = 1.0
    k: int | None = None

    def __post_init__(self) -> None:
        if not float(self.lam) > 0:
            raise TokenMappingError(f"lam must be positive, got {self.lam!r}")
        if self.k is not None and (isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1):
            raise TokenMappingError(f"k must be a positive int or None, got {self.k!r}")


class _TokenBayes(TokenMapping):
    """ω over a compact index of the token ids seen while fitting; unseen tokens carry no vote."""

    Config = TokenBLMConfig
    _state = ("ids", "omega")
    top1: bool = True

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.ids = np.zeros(0, dtype=np.int64)
        self.omega = np.zeros((0, self.num_target))

    def _mass(self, resp: Response) -> tuple[np.ndarray, np.ndarray]:
        ids, p = shown_tokens(resp)
        if self.top1:
            return ids[:, :1], np.ones((len(ids), 1))
        k = self.config.k or ids.shape[1]
        return ids[:, :k], p[:, :k]

    def _fit(self, resp: Any, y: np.ndarray) -> None:
        ids, p = self._mass(resp)
        self.ids, pos = np.unique(ids, return_inverse=True)
        counts = np.zeros((len(self.ids), self.num_target))
        np.add.at(counts, (pos.reshape(ids.shape), np.broadcast_to(y[:, None], ids.shape)), p)
        self.omega = blm_weights(counts, float(self.config.lam))

    def _scores(self, resp: Any) -> np.ndarray:
        ids, p = self._mass(resp)
        out = np.zeros((len(ids), self.num_target))
        if len(self.ids):
            pos = np.clip(np.searchsorted(self.ids, ids), 0, len(self.ids) - 1)
            seen = self.ids[pos] == ids
            out = np.einsum("nk,nkt->nt", np.where(seen, p, 0.0), self.omega[pos])
        return normalize_rows(out)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["tokens_seen"] = int(len(self.ids))
        return d


@register_mapping("token-blm")
class TokenBLM(_TokenBayes):
    """BLM (Cai et al., NeurIPS 2024) over tokens: ω from top-1 token counts; works from label-only answers."""

    name = "token-blm"
    needs = "label"
    top1 = True


@register_mapping("token-blm+")
class TokenBLMPlus(_TokenBayes):
    """BLM+ over tokens: ω from the returned top-k tokens' probability mass."""

    name = "token-blm+"
    needs = "topk"
    top1 = False


# ------------------------------------------------------------ linear readout
@dataclass(frozen=True)
class TokenLinearConfig:
    """max_features: most frequent shown tokens kept as features (default 2000).
    l2, eps, max_iter: the logistic regression's (see :class:`~blackbox_rp.mapping.linear.LinearConfig`).
    l2 defaults to 1.0, not the image readout's 10⁻³: a text task gives a few hundred answers and their
    top-k shows up to ~10³ distinct tokens, and on MR (Gemma-3 270M, 100 training reviews, 3 seeds) the
    validation accuracy of the hand prompt's readout rose from 54–66% at 10⁻³ to 62–73% at 1.0."""

    max_features: int = 2000
    l2: float = 1.0
    eps: float = 1e-30
    max_iter: int = 300

    def __post_init__(self) -> None:
        if isinstance(self.max_features, bool) or not isinstance(self.max_features, int) or self.max_features < 1:
            raise TokenMappingError(f"max_features must be a positive int, got {self.max_features!r}")


@register_mapping("token-linear")
class TokenLinear(TokenMapping):
    """Logistic regression on the returned top-k log-probabilities, over a compact index of the tokens
    shown in training (the ``max_features`` most frequent). A token of the index that an answer does not
    show gets the largest probability it could have spread over the unshown tokens,
    min(smallest shown, unshown mass / (vocabulary − k)) — the image readout's rule
    (:func:`~blackbox_rp.mapping.linear.log_features`); tokens outside the index are dropped."""

    name = "token-linear"
    needs = "topk"
    Config = TokenLinearConfig
    _state = ("ids", "weight", "bias", "mu", "sd")

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.ids = np.zeros(0, dtype=np.int64)
        self.weight = np.zeros((self.num_target, 0))
        self.bias = np.zeros(self.num_target)
        self.mu = np.zeros(0)
        self.sd = np.zeros(0)

    def features(self, resp: Response) -> np.ndarray:
        """(n, len(ids)) probabilities of the indexed tokens (compact; never the whole vocabulary)."""
        ids, p = shown_tokens(self._check_resp_classes(resp))
        rest = np.clip(1.0 - p.sum(axis=1), 0.0, None) / max(self.num_source - ids.shape[1], 1)
        out = np.repeat(np.minimum(rest, p.min(axis=1))[:, None], len(self.ids), axis=1)
        if len(self.ids):
            pos = np.clip(np.searchsorted(self.ids, ids), 0, len(self.ids) - 1)
            seen = self.ids[pos] == ids
            rows = np.broadcast_to(np.arange(len(ids))[:, None], ids.shape)
            out[rows[seen], pos[seen]] = p[seen]
        return out

    def _readout(self) -> LinearMapping:
        c = self.config
        return LinearMapping(max(len(self.ids), 1), self.num_target, l2=c.l2, eps=c.eps, max_iter=c.max_iter)

    def _fit(self, resp: Any, y: np.ndarray) -> None:
        ids, _ = shown_tokens(resp)
        uniq, counts = np.unique(ids, return_counts=True)
        keep = np.sort(uniq[np.argsort(-counts, kind="stable")[:self.config.max_features]])
        self.ids = keep
        lin = self._readout()
        lin.fit(self.features(resp), y)
        self.weight, self.bias, self.mu, self.sd = lin.weight, lin.bias, lin.mu, lin.sd

    def _scores(self, resp: Any) -> np.ndarray:
        lin = self._readout()
        lin.weight, lin.bias, lin.mu, lin.sd = self.weight, self.bias, self.mu, self.sd
        lin.fitted = True
        return lin.scores(self.features(resp))

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["features"] = int(len(self.ids))
        return d


def token_mapping_params(mapping: str, oracle: Any) -> dict[str, Any]:
    """What :meth:`Reprogrammer.build` adds to a token mapping's parameters: the oracle's vocabulary.

    Empty for a class mapping; a token mapping given a class-score oracle is refused here, naming both.
    """
    from .registry import MAPPINGS

    cls = MAPPINGS.lookup(mapping)
    if not issubclass(cls, TokenMapping):
        return {}
    if not isinstance(oracle, TokenOracle):
        raise TokenMappingError(f"label mapping {mapping!r} reads next-token distributions, but "
                                f"{type(oracle).__name__} answers class scores: use a token oracle (a language "
                                f"model) or a class mapping (flm, blm, blm+, linear)")
    return {"vocabulary": oracle.vocabulary}

