"""The discrete text prompt: a template around the input with L learnable word slots.

This is I_θ for a language model behind an API: the model cannot take soft
embeddings, only text, so θ picks, for each of L slots, one word (or n-gram)
out of that slot's candidates, and the prompt is the template with those words
filled in. θ lives in a categorical :class:`~blackbox_rp.space.SearchSpace`
(one slot per word); a learned θ reads as a plain string anyone can reuse with
any client (:meth:`DiscretePrompt.readable`).

Where the slots go:

* markers ``{p0}`` … ``{pL-1}`` in the template put each slot exactly there;
* otherwise ``position`` = ``"before"`` / ``"after"`` puts all L words right
  before / after ``{x}``, and ``"around"`` splits them, the first ⌈L/2⌉ before.

θ₀ is the hand-written prompt: option 0 of slot i is ``init[i]`` (the user's
word, or the empty string: the slot then adds nothing), so the search starts
from — and can always return to — the prompt a person wrote. The other options
are the candidates: the user's list, or words ranked from the training texts
(:mod:`blackbox_rp.transforms.prompt_vocab`, as BDPL does).

    >>> import numpy as np
    >>> t = DiscretePrompt(DiscretePromptConfig(template="Review: {x}\\nSentiment:", slots=2,
    ...                    candidates=("great", "awful"), init=("", "movie")))
    >>> t.space.choices
    (3, 3)
    >>> t.readable(t.init_theta())
    'Review: movie {x}\\nSentiment:'
    >>> t.apply(np.array([1.0, 2.0]), ["fine."])
    ['Review: great awful fine.\\nSentiment:']
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from ..space import SearchSpace, SpaceError
from .prompt_vocab import METHODS, candidates_from_texts
from .protocol import InputTransform
from .registry import register_transform

logger = logging.getLogger(__name__)

__all__ = ["DiscretePrompt", "DiscretePromptConfig", "PromptError", "POSITIONS", "has_slot_markers"]

#: where slots go when the template has no {p<i>} markers
POSITIONS = ("before", "after", "around")
_MARKER = re.compile(r"\{p(\d+)\}")


def has_slot_markers(template: str) -> bool:
    """Whether ``template`` places its slots with ``{p0}`` … markers (then their count is the slot count)."""
    return bool(_MARKER.search(template))


class PromptError(ValueError):
    """A template, candidate set or input the discrete prompt cannot use; the message says what to change."""


def _words_tuple(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise PromptError(f"{what} must be a list of strings, got one string {value!r}; wrap it: [{value!r}]")
    out = tuple(value)
    bad = [v for v in out if not isinstance(v, str)]
    if bad:
        raise PromptError(f"{what} must hold strings, got {type(bad[0]).__name__} {bad[0]!r}")
    return tuple(v.strip() for v in out)


@dataclass(frozen=True)
class DiscretePromptConfig:
    """How the prompt is built.

    Args:
        template: the text around the input; must contain ``{x}`` exactly once. ``{p0}`` … markers place
            the slots (then ``slots`` may be left None: it is the number of markers).
        slots: L, the number of learnable words (without markers: placed by ``position``).
        position: ``"before"``, ``"after"`` or ``"around"`` ``{x}`` (without markers).
        candidates: the words every slot may take (a list of strings), or a ranking of the training texts'
            words, ``"pmi"`` (default) or ``"freq"`` (see :mod:`~blackbox_rp.transforms.prompt_vocab`).
        slot_candidates: optionally one list per slot (overrides ``candidates``).
        num_candidates: how many words a ranking keeps (default 50).
        max_n: 2 lets a ranking keep bigrams too.
        init: the hand-written words, one per slot ("" = the slot adds nothing); None = all empty. They
            are option 0 of their slot, so θ₀ (all zeros) is the hand-written prompt.
    """

    template: str = "{x}"
    slots: int | None = None
    position: str = "before"
    candidates: str | tuple[str, ...] = "pmi"
    slot_candidates: tuple[tuple[str, ...], ...] | None = None
    num_candidates: int = 50
    max_n: int = 1
    init: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.template, str):
            raise PromptError(f"template must be a string, got {type(self.template).__name__}")
        n_x = self.template.count("{x}")
        if n_x != 1:
            raise PromptError(f"the template must contain the input placeholder {{x}} exactly once (found {n_x}): "
                              f"{self.template!r}; e.g. 'Review: {{x}} Sentiment:'")
        markers = [int(m) for m in _MARKER.findall(self.template)]
        if markers:
            if sorted(markers) != list(range(len(markers))):
                raise PromptError(f"slot markers must be {{p0}} … {{p{len(markers) - 1}}}, each once; "
                                  f"the template has {sorted('{p%d}' % m for m in markers)}")
            if self.slots is not None and self.slots != len(markers):
                raise PromptError(f"slots={self.slots} but the template has {len(markers)} {{p<i>}} markers; "
                                  f"drop slots or make them agree")
            object.__setattr__(self, "slots", len(markers))
        if self.slots is None and self.slot_candidates is not None:
            object.__setattr__(self, "slots", len(self.slot_candidates))
        if self.slots is None and self.init is not None:
            object.__setattr__(self, "slots", len(self.init))
        if isinstance(self.slots, bool) or not isinstance(self.slots, int) or self.slots < 1:
            raise PromptError(f"slots must be a positive int (the number of learnable words), got {self.slots!r}")
        if self.position not in POSITIONS:
            raise PromptError(f"position must be one of {list(POSITIONS)}, got {self.position!r}")
        if isinstance(self.candidates, str):
            if self.candidates not in METHODS:
                raise PromptError(f"unknown slot vocabulary {self.candidates!r}: give the candidate words as a "
                                  f"list, or a ranking of the training texts, one of {list(METHODS)}")
        else:
            words = _words_tuple(self.candidates, "candidates")
            if not [w for w in words if w]:
                raise PromptError("the candidate list is empty: give at least one non-empty word")
            object.__setattr__(self, "candidates", words)
        if self.slot_candidates is not None:
            per = tuple(_words_tuple(c, f"slot_candidates[{i}]") for i, c in enumerate(self.slot_candidates))
            if len(per) != self.slots:
                raise PromptError(f"slot_candidates has {len(per)} lists for {self.slots} slots; give one per slot")
            object.__setattr__(self, "slot_candidates", per)
        if self.init is not None:
            init = _words_tuple(self.init, "init")
            if len(init) != self.slots:
                raise PromptError(f"init has {len(init)} words for {self.slots} slots; give one per slot "
                                  f"(\"\" for a slot that starts empty)")
            object.__setattr__(self, "init", init)
        for name in ("num_candidates", "max_n"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise PromptError(f"{name} must be a positive int, got {v!r}")


@register_transform("discrete")
class DiscretePrompt(InputTransform):
    """L word slots in a template around each input text; θ = one option index per slot (categorical).

    Build it with :meth:`for_task` (candidates ranked from the training texts) or directly from a
    config whose candidates are a list of words.
    """

    name: ClassVar[str] = "discrete"
    modality: ClassVar[str] = "text"
    views = 1

    def __init__(self, config: DiscretePromptConfig, options: Sequence[Sequence[str]] | None = None):
        self.config = config
        if options is None:
            if config.slot_candidates is None and isinstance(config.candidates, str):
                raise PromptError(f"candidates={config.candidates!r} ranks the training texts' words: build the "
                                  f"prompt with DiscretePrompt.for_task(train, ...) or give the words as a list")
            per_slot = config.slot_candidates or (config.candidates,) * config.slots
            init = config.init or ("",) * config.slots
            options = [self._slot_options(init[i], per_slot[i]) for i in range(config.slots)]
        self.options: tuple[tuple[str, ...], ...] = tuple(tuple(o) for o in options)
        for i, opts in enumerate(self.options):
            if len(opts) < 2:
                raise PromptError(f"slot {i} has nothing to choose from but its start word {opts[0]!r}; "
                                  f"give candidates other than the hand-written words")
        self._space = SearchSpace.categorical(tuple(len(o) for o in self.options), labels=self.options)
        self._markers = has_slot_markers(config.template)

    @staticmethod
    def _slot_options(start: str, candidates: Sequence[str]) -> tuple[str, ...]:
        """Option 0 is the start word; then the candidates in order, without repeats or empties."""
        seen = {start}
        out = [start]
        for w in candidates:
            if w and w not in seen:
                seen.add(w)
                out.append(w)
        return tuple(out)

    # ------------------------------------------------------------ protocol
    @classmethod
    def for_task(cls, train: Any, input_spec: Any, *, seed: int = 0, **params: Any) -> "DiscretePrompt":
        """The prompt for ``train``'s texts; a ranking (``candidates="pmi"`` / ``"freq"``) reads its words."""
        kind = getattr(input_spec, "kind", None)
        if kind != "text":
            raise PromptError(f"the discrete prompt makes text; this oracle takes {kind!r} inputs — "
                              f"use an image transform (pad, lowdim, ...) or a text oracle")
        fields = set(DiscretePromptConfig.__dataclass_fields__)
        unknown = sorted(set(params) - fields)
        if unknown:
            raise PromptError(f"transform 'discrete' does not accept {unknown}; accepted: {sorted(fields)}")
        if isinstance(params.get("candidates"), list):
            params["candidates"] = tuple(params["candidates"])
        config = DiscretePromptConfig(**params)
        texts = list(train.x)
        if not texts:
            raise PromptError("the training split holds no texts")
        if config.slot_candidates is None and isinstance(config.candidates, str):
            words = candidates_from_texts(texts, train.y, size=config.num_candidates, method=config.candidates,
                                          max_n=config.max_n)
            logger.info("discrete prompt: %d %s-ranked candidates from %d training texts: %s ...", len(words),
                        config.candidates, len(texts), ", ".join(words[:10]))
            init = config.init or ("",) * config.slots
            return cls(config, [cls._slot_options(init[i], words) for i in range(config.slots)])
        return cls(config)

    @property
    def space(self) -> SearchSpace:
        return self._space

    def init_theta(self) -> np.ndarray:
        return np.zeros(self._space.dim)

    def words(self, theta: np.ndarray) -> list[str]:
        """The word each slot holds under θ ("" for an empty slot)."""
        try:
            slots = self._space.slots(self._space.validate(theta))
        except SpaceError as e:
            raise PromptError(f"θ is not a prompt of this transform: {e}") from e
        return [self.options[i][int(j)] for i, j in enumerate(slots)]

    def render(self, theta: np.ndarray) -> tuple[str, str]:
        """The prompt as (text before the input, text after it)."""
        ws = self.words(theta)
        t = self.config.template
        if self._markers:
            for i, w in enumerate(ws):
                t = _fill(t, "{p%d}" % i, w)
            before, after = t.split("{x}")
            return before, after
        before, after = t.split("{x}")
        L = len(ws)
        cut = {"before": L, "after": 0, "around": (L + 1) // 2}[self.config.position]
        pre = " ".join(w for w in ws[:cut] if w)
        post = " ".join(w for w in ws[cut:] if w)
        if pre:
            before = before + (" " if before and not before[-1].isspace() else "") + pre + " "
        if post:
            after = " " + post + ("" if not after or after[0].isspace() else " ") + after
        return before, after

    def apply(self, theta: np.ndarray, inputs: Any) -> list[str]:
        before, after = self.render(theta)
        if isinstance(inputs, str):
            raise PromptError("expected a batch of texts, got one string; wrap it: [text]")
        out = []
        for i, x in enumerate(inputs):
            if not isinstance(x, str):
                raise PromptError(f"input {i} is {type(x).__name__}, not a string: the discrete prompt takes texts")
            if not x.strip():
                raise PromptError(f"input {i} is empty or whitespace only; drop it from the data")
            out.append(before + x + after)
        return out

    def readable(self, theta: np.ndarray) -> str:
        """The prompt as a reusable string, the input left as ``{x}``."""
        before, after = self.render(theta)
        return before + "{x}" + after

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {"name": self.name, "modality": self.modality, "template": c.template, "slots": c.slots,
                "position": None if self._markers else c.position,
                "candidates": c.candidates if isinstance(c.candidates, str) else "given",
                "options": [list(o) for o in self.options], "init_prompt": self.readable(self.init_theta()),
                "space": self._space.describe()}


def _fill(template: str, marker: str, word: str) -> str:
    """Put ``word`` at ``marker``; an empty word takes one space beside the marker with it (the one before it,
    else the one after), so an empty slot leaves neither a double space nor a trailing one — a prompt ending in
    a space makes a language model predict a token without its leading space."""
    if word:
        return template.replace(marker, word)
    for m in (" " + marker, marker + " ", marker):
        if m in template:
            return template.replace(m, "", 1)
    return template
