"""Token vocabularies, and the interface of oracles that answer over one.

A language model's oracle does not answer with class scores: it answers with a
**next-token distribution** over its vocabulary (262,144 tokens for Gemma-3).
The label mapping O_ω then reads that distribution — a verbalizer looks up the
ids of its label words, a statistical token mapping (BLM+ over tokens) counts
which returned ids go with which class. Both need to turn words into token ids
and ids back into readable strings, without caring whether the tokenizer lives
in process (llama.cpp) or beside a remote API. :class:`Vocabulary` is that
contract; :class:`TokenOracle` is how an oracle declares that its answers are
indexed by one (mappings check ``isinstance(oracle, TokenOracle)`` rather than
probing attributes).

The core never imports a tokenizer library: concrete vocabularies live with the
oracles (``oracles.llama_cpp_oracle.LlamaVocabulary``). :class:`ListVocabulary`
is a small pure-Python one (greedy longest match over a token list) for tests,
examples and toy models.

>>> v = ListVocabulary(["<unk>", " the", " a", " Paris", " Par", "is", " "])
>>> v.size, v.token(3)
(7, ' Paris')
>>> v.encode(" the Paris")
[1, 3]
>>> v.single_token(" Paris"), v.single_token(" the Paris")
(3, None)
>>> v.tokens([1, 2])
[' the', ' a']
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

__all__ = ["Vocabulary", "TokenOracle", "ListVocabulary", "VocabularyError", "fingerprint"]


class VocabularyError(ValueError):
    """A token id outside the vocabulary, or text the vocabulary cannot encode."""


class Vocabulary(ABC):
    """A tokenizer's vocabulary: ids ↔ token strings, and text → ids.

    Subclasses implement ``size``, ``token`` and ``encode``; ``tokens``,
    ``single_token`` and ``token_id`` have generic versions a subclass may
    speed up.
    """

    @property
    @abstractmethod
    def size(self) -> int:
        """Number of token ids (ids are ``0 .. size-1``)."""

    @abstractmethod
    def token(self, id: int) -> str:
        """The text of one token as it reads inside a string (a leading space included)."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` as the model would see it inside a prompt, without a BOS token."""

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """The text of each id (for reports and readable prompts)."""
        return [self.token(int(i)) for i in ids]

    def single_token(self, text: str) -> int | None:
        """The id of ``text`` if it is exactly one token, else None.

        Why it exists: a verbalizer can read a label word's probability from a
        next-token distribution only if the word is one token; a multi-token
        word must be refused or handled, not silently read from its first piece.
        """
        ids = self.encode(text)
        return ids[0] if len(ids) == 1 else None

    def token_id(self, piece: str) -> int | None:
        """The id whose :meth:`token` text is ``piece``, or None.

        Remote APIs return top tokens as strings; this maps them back to ids. When several
        ids read alike (a vocabulary may hold a control token that prints as ``":"`` beside
        the ordinary ``":"``), the one the tokenizer itself produces for ``piece`` wins; if
        it produces none of them, the string is ambiguous and None is returned. The generic
        version builds a reverse table once (one pass over the vocabulary).
        """
        table = self.__dict__.get("_reverse")
        if table is None:
            table = {}
            for i in range(self.size):
                t = self.token(i)
                table[t] = -1 if t in table else i  # -1: several ids read alike
            self.__dict__["_reverse"] = table
        i = table.get(piece)
        if i is None:
            return None
        if i >= 0:
            return i
        try:
            j = self.single_token(piece)
        except VocabularyError:
            return None
        return j if j is not None and self.token(j) == piece else None

    def check_id(self, id: int) -> int:
        """``id`` as an int, or :class:`VocabularyError` if it is outside the vocabulary."""
        i = int(id)
        if not 0 <= i < self.size:
            raise VocabularyError(f"token id {id} is outside the vocabulary of {self.size} tokens")
        return i


def fingerprint(vocabulary: Vocabulary) -> dict[str, Any]:
    """``{"size", "sha256"}`` of a vocabulary: its size and a digest of every token's text, in id order.

    Why: a fitted token mapping stores token *ids* (a verbalizer's label words, a readout's features); ids
    mean the same thing only under the same tokenizer. A run records this with its mapping, and ``apply``
    refuses an oracle whose vocabulary differs before any query, instead of reading other tokens silently.
    Every token is hashed (about 1.5 s for Gemma's 262,144 on a busy machine): a sample would miss a
    tokenizer that differs only in tokens it skipped.
    """
    import hashlib

    n = int(vocabulary.size)
    h = hashlib.sha256(str(n).encode())
    for i in range(n):
        h.update(b"\x00" + vocabulary.token(i).encode("utf-8", errors="surrogatepass"))
    return {"size": n, "sha256": h.hexdigest()}


class TokenOracle(ABC):
    """Mixin of oracles whose classes are the tokens of a :class:`Vocabulary`.

    An oracle that implements it answers with next-token distributions: its
    ``num_classes`` equals ``vocabulary.size`` and a returned index ``i`` is the
    token ``vocabulary.token(i)``. Token mappings (verbalizers, BLM over tokens)
    require it, so a class-score oracle given to them is refused when the run is
    built, not half-way through.
    """

    @property
    @abstractmethod
    def vocabulary(self) -> Vocabulary:
        """The vocabulary that indexes this oracle's answers."""


class ListVocabulary(Vocabulary):
    """A vocabulary given as a list of token strings; :meth:`encode` is greedy longest match.

    Not a real tokenizer (no merges, no byte fallback): for tests, examples and
    toy models whose token set is known. Text it cannot cover raises
    :class:`VocabularyError` naming the position.
    """

    def __init__(self, tokens: Sequence[str]):
        toks = [str(t) for t in tokens]
        if not toks:
            raise VocabularyError("a vocabulary needs at least one token")
        if any(t == "" for t in toks):
            raise VocabularyError(f"token {toks.index('')} is the empty string; every token needs text")
        self._tokens = toks
        self._ids: dict[str, int] = {}
        for i, t in enumerate(toks):
            if t in self._ids:
                raise VocabularyError(f"tokens {self._ids[t]} and {i} are both {t!r}; tokens must be distinct")
            self._ids[t] = i
        self._longest = max(len(t) for t in toks)

    @property
    def size(self) -> int:
        return len(self._tokens)

    def token(self, id: int) -> str:
        return self._tokens[self.check_id(id)]

    def encode(self, text: str) -> list[int]:
        out, i = [], 0
        while i < len(text):
            for n in range(min(self._longest, len(text) - i), 0, -1):
                j = self._ids.get(text[i:i + n])
                if j is not None:
                    out.append(j)
                    i += n
                    break
            else:
                raise VocabularyError(f"cannot encode {text!r}: no token matches at position {i} ({text[i]!r})")
        return out

    def token_id(self, piece: str) -> int | None:
        return self._ids.get(piece)
