"""What an oracle lets the caller see: exposure policies and the responses they produce.

A model behind an API rarely shows everything. An exposure policy turns the
most informative answer an oracle can give into what the API would show:
full probabilities, raw logits, the top-k classes with their probabilities,
only the predicted label, or probabilities rounded to a few decimals. Any
policy can sit on top of any oracle, provided the oracle's own answer carries
at least that much (an API that returns only labels cannot be made to give
probabilities).

Consumers (label mappings, losses) declare what they *need* — one of the
``NEEDS`` levels — and :func:`require` refuses a mismatch when the consumer is
built, rather than crashing half-way through a paid run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np

__all__ = [
    "Exposure", "Probs", "Logits", "TopK", "LabelOnly", "Rounded", "Noisy", "Response",
    "ExposureError", "require", "parse_exposure", "NEEDS", "EXPOSURE_FORMS",
]

#: Information levels, most to least. A consumer needing level L works with
#: any exposure whose level is L or richer (``logits`` ⊇ ``probs`` ⊇ ``topk`` ⊇ ``label``).
NEEDS = ("logits", "probs", "topk", "label")


class ExposureError(ValueError):
    """A consumer needs more than the oracle's exposure gives."""


@dataclass(frozen=True)
class Response:
    """An oracle's answer for a batch of ``n`` inputs.

    ``kind`` is one of ``"logits"``, ``"probs"``, ``"topk"``, ``"label"``:

    * logits / probs: ``scores`` is (n, C) float32.
    * topk: ``indices`` (n, k) int64 and ``scores`` (n, k) probabilities, best first.
    * label: ``labels`` only.

    ``labels`` (n,) int64, the top-1 class, is always present.
    """

    kind: str
    num_classes: int
    labels: np.ndarray
    scores: np.ndarray | None = None
    indices: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in NEEDS:
            raise ValueError(f"unknown response kind {self.kind!r}; expected one of {NEEDS}")
        n = len(self.labels)
        if self.kind in ("logits", "probs"):
            if self.scores is None or self.scores.shape != (n, self.num_classes):
                raise ValueError(f"{self.kind} response needs scores of shape ({n}, {self.num_classes}), "
                                 f"got {None if self.scores is None else self.scores.shape}")
        elif self.kind == "topk":
            if self.scores is None or self.indices is None or self.scores.shape != self.indices.shape \
                    or self.scores.ndim != 2 or self.scores.shape[0] != n:
                raise ValueError("topk response needs indices and scores of equal shape (n, k)")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def level(self) -> str:
        return self.kind

    def probs(self, floor: float = 0.0) -> np.ndarray:
        """Dense (n, C) probabilities. For top-k the missing classes get ``floor``
        (0 by default); label-only answers become one-hot rows."""
        n, c = len(self), self.num_classes
        if self.kind == "probs":
            return self.scores
        if self.kind == "logits":
            z = self.scores.astype(np.float64)
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        out = np.full((n, c), floor, dtype=np.float32)
        if self.kind == "topk":
            np.put_along_axis(out, self.indices, self.scores.astype(np.float32), axis=1)
        else:
            out[np.arange(n), self.labels] = 1.0
        return out

    def take(self, rows: Sequence[int] | np.ndarray | slice) -> "Response":
        """The answers for a subset of the rows, in the given order."""
        return Response(
            self.kind, self.num_classes, self.labels[rows],
            None if self.scores is None else self.scores[rows],
            None if self.indices is None else self.indices[rows],
        )

    @staticmethod
    def concat(parts: Sequence["Response"]) -> "Response":
        if not parts:
            raise ValueError("nothing to concatenate")
        kind, c = parts[0].kind, parts[0].num_classes
        for p in parts:
            if p.kind != kind or p.num_classes != c:
                raise ValueError("cannot concatenate responses of different kinds or class counts")
        cat = lambda name: None if getattr(parts[0], name) is None else np.concatenate([getattr(p, name) for p in parts])
        return Response(kind, c, cat("labels"), cat("scores"), cat("indices"))

    @staticmethod
    def from_logits(logits: np.ndarray) -> "Response":
        logits = np.asarray(logits, dtype=np.float32)
        return Response("logits", logits.shape[1], logits.argmax(axis=1).astype(np.int64), logits)

    @staticmethod
    def from_probs(probs: np.ndarray) -> "Response":
        probs = np.asarray(probs, dtype=np.float32)
        return Response("probs", probs.shape[1], probs.argmax(axis=1).astype(np.int64), probs)


class Exposure:
    """Base of exposure policies: ``apply`` reduces a richer response to what is shown."""

    level: ClassVar[str] = "logits"

    def key(self) -> str:
        """Stable text naming the policy; part of every journal key."""
        raise NotImplementedError

    def apply(self, r: Response) -> Response:
        raise NotImplementedError

    def check_classes(self, num_classes: int) -> None:
        """Refuse a policy the model's output space cannot fill (only top-k has a size to check)."""

    def check_source(self, source_level: str) -> None:
        """Refuse to promise more than the oracle's own answers carry."""
        if NEEDS.index(self.level) < NEEDS.index(source_level):
            raise ExposureError(
                f"exposure {self.key()} needs {self.level!r} answers but the oracle only returns "
                f"{source_level!r}; choose one of {list(NEEDS[NEEDS.index(source_level):])}")

    def __repr__(self) -> str:
        return self.key()


@dataclass(frozen=True, repr=False)
class Logits(Exposure):
    """Raw scores before softmax (what a local model gives)."""

    level: ClassVar[str] = "logits"

    def key(self) -> str:
        return "logits"

    def apply(self, r: Response) -> Response:
        self.check_source(r.kind)
        return r


@dataclass(frozen=True, repr=False)
class Probs(Exposure):
    """Full probability vector (softmax of the logits)."""

    level: ClassVar[str] = "probs"

    def key(self) -> str:
        return "probs"

    def apply(self, r: Response) -> Response:
        self.check_source(r.kind)
        return r if r.kind == "probs" else Response.from_probs(r.probs())


@dataclass(frozen=True, repr=False)
class Rounded(Exposure):
    """Probabilities rounded to ``decimals`` places — a common defence against extraction."""

    decimals: int = 2
    level: ClassVar[str] = "probs"

    def __post_init__(self) -> None:
        if isinstance(self.decimals, bool) or not isinstance(self.decimals, (int, np.integer)) \
                or not 0 <= self.decimals <= 8:
            raise ValueError(f"rounded<n> needs a whole number of decimals n in 0..8 (Rounded.decimals), "
                             f"got {self.decimals!r}")
        object.__setattr__(self, "decimals", int(self.decimals))

    def key(self) -> str:
        return f"rounded{self.decimals}"

    def apply(self, r: Response) -> Response:
        self.check_source(r.kind)
        p = np.round(r.probs().astype(np.float64), self.decimals).astype(np.float32)
        # labels keep the true top-1: rounding hides scores, not the decision
        return Response("probs", r.num_classes, r.labels, p)


@dataclass(frozen=True, repr=False)
class Noisy(Exposure):
    """Probabilities with seeded Gaussian noise of sd ``sigma`` added, clipped at 0 and renormalised.

    Models an API that perturbs its scores (a defence against extraction, or a sloppy service). The
    label is the noisy argmax, as such an API would return. Why the noise is a function of
    (``seed``, the answer's bytes) rather than of a running generator: an exposure is a pure function
    of the model's answer, so the journal (keyed by input and exposure) stays consistent and a resumed
    run sees the very answers it was given before; distinct inputs still get independent noise.
    """

    sigma: float = 0.05
    seed: int = 0
    level: ClassVar[str] = "probs"

    def __post_init__(self) -> None:
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) or not 0 <= self.sigma <= 1:
            raise ValueError(f"Noisy.sigma must be a number in [0, 1] (probability units), got {self.sigma!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"Noisy.seed must be an int >= 0, got {self.seed!r}")

    def key(self) -> str:
        return f"noisy{self.sigma:g}:seed{self.seed}"

    def apply(self, r: Response) -> Response:
        self.check_source(r.kind)
        raw = np.ascontiguousarray(r.scores, dtype=np.float32)
        p = r.probs().astype(np.float64)
        noise = np.empty_like(p)
        for i in range(len(p)):
            digest = hashlib.sha256(raw[i].tobytes()).digest()
            noise[i] = np.random.default_rng([self.seed, int.from_bytes(digest[:8], "little")]).standard_normal(p.shape[1])
        q = np.clip(p + self.sigma * noise, 0.0, None)
        s = q.sum(axis=1, keepdims=True)
        q = np.divide(q, s, out=np.full_like(q, 1.0 / q.shape[1]), where=s > 0).astype(np.float32)
        return Response("probs", r.num_classes, q.argmax(axis=1).astype(np.int64), q)


@dataclass(frozen=True, repr=False)
class TopK(Exposure):
    """Only the ``k`` most likely classes with their probabilities."""

    k: int = 5
    level: ClassVar[str] = "topk"

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ValueError(f"top<k> needs a whole number k >= 1 (TopK.k), got {self.k!r}")
        object.__setattr__(self, "k", int(self.k))

    def check_classes(self, num_classes: int) -> None:
        if self.k > num_classes:
            raise ExposureError(f"exposure top{self.k} asks for more classes than the model has "
                                f"({num_classes} classes); use top{num_classes} or fewer, or probs")

    def key(self) -> str:
        return f"top{self.k}"

    def apply(self, r: Response) -> Response:
        self.check_source(r.kind)
        if r.kind == "topk":
            if r.indices.shape[1] < self.k:
                raise ExposureError(f"oracle returns top-{r.indices.shape[1]}, cannot expose top-{self.k}")
            return Response("topk", r.num_classes, r.labels, r.scores[:, :self.k], r.indices[:, :self.k])
        p = r.probs()
        k = min(self.k, r.num_classes)
        idx = np.argsort(-p, axis=1, kind="stable")[:, :k]
        return Response("topk", r.num_classes, idx[:, 0].astype(np.int64),
                        np.take_along_axis(p, idx, axis=1), idx.astype(np.int64))


@dataclass(frozen=True, repr=False)
class LabelOnly(Exposure):
    """Only the predicted class — the hardest black-box setting."""

    level: ClassVar[str] = "label"

    def key(self) -> str:
        return "label"

    def apply(self, r: Response) -> Response:
        return Response("label", r.num_classes, r.labels)


def require(need: str, exposure: Exposure | str, who: str) -> None:
    """Raise :class:`ExposureError` naming ``who`` if ``exposure`` gives less than ``need``."""
    level = exposure if isinstance(exposure, str) else exposure.level
    if need not in NEEDS or level not in NEEDS:
        raise ValueError(f"unknown information level {need!r} or {level!r}; levels are {NEEDS}")
    if NEEDS.index(level) > NEEDS.index(need):
        usable = ", ".join(NEEDS[: NEEDS.index(need) + 1])
        raise ExposureError(
            f"{who} needs {need!r} outputs but the oracle's exposure gives only {level!r} "
            f"({exposure!r}). Use an exposure giving one of: {usable}; or pick a method that works "
            f"from {level!r} outputs.")


#: the accepted spellings, for every message that refuses one
EXPOSURE_FORMS = ("probs, logits, label, top<k> with k >= 1 (e.g. top5; also topk:5), "
                  "rounded<n> with n in 0..8 (e.g. rounded2; also rounded:2) "
                  "or noisy<sd>[:seed<k>] (e.g. noisy0.05:seed1)")


def parse_exposure(spec: str | Exposure | None) -> Exposure:
    """``"probs"``, ``"logits"``, ``"label"``, ``"top5"`` / ``"topk:5"``, ``"rounded2"`` / ``"rounded:2"``,
    ``"noisy0.05"`` / ``"noisy0.05:seed1"`` (Gaussian noise of sd 0.05 on the probabilities, seed 0 unless given).

    Refusals name what was typed and the accepted forms: ``rounded-1`` is not read as ``rounded1``,
    nor ``top0`` passed on to fail later in terms of ``TopK.k``. Whether ``k`` fits the model's
    classes is checked when an oracle is built (:meth:`Exposure.check_classes`)."""
    if spec is None:
        return Probs()
    if isinstance(spec, Exposure):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"an exposure is a name, got {spec!r} ({type(spec).__name__}); use {EXPOSURE_FORMS}")
    s = spec.strip().lower().replace("_", "")
    if s in ("probs", "full", "probabilities"):
        return Probs()
    if s == "logits":
        return Logits()
    if s in ("label", "labelonly", "label-only", "hard"):
        return LabelOnly()
    m = re.fullmatch(r"noisy[:=]?(\d+(?:\.\d*)?|\.\d+)(?::?seed[:=]?(\d+))?", s)
    if m:
        return Noisy(float(m.group(1)), int(m.group(2) or 0))
    if s.startswith("noisy"):
        raise ValueError(f"exposure {spec!r}: noisy<sd>[:seed<k>] takes a non-negative sd and a whole seed; "
                         f"use {EXPOSURE_FORMS}")
    for prefix, cls, lo, hi in (("top-k", TopK, 1, None), ("topk", TopK, 1, None), ("top-", TopK, 1, None),
                                ("top", TopK, 1, None), ("rounded", Rounded, 0, 8), ("round", Rounded, 0, 8)):
        if s.startswith(prefix):
            num = s[len(prefix):]
            num = num[1:] if num[:1] in (":", "=") else num
            if num.isascii() and num.isdigit():
                v = int(num)
                if v >= lo and (hi is None or v <= hi):
                    return cls(v)
            what = "k of top<k> must be a whole number >= 1" if cls is TopK else \
                "n of rounded<n> must be a whole number of decimals in 0..8"
            raise ValueError(f"exposure {spec!r}: {what}; use {EXPOSURE_FORMS}")
    raise ValueError(f"unknown exposure {spec!r}; use {EXPOSURE_FORMS}")
