"""The Vocabulary contract and TokenOracle mixin, on the pure-Python ListVocabulary."""

from __future__ import annotations

import pytest

from blackbox_rp.vocab import ListVocabulary, TokenOracle, Vocabulary, VocabularyError


def test_list_vocabulary():
    v = ListVocabulary(["<unk>", " pos", " positive", " neg", "ative", " "])
    assert isinstance(v, Vocabulary) and v.size == 6
    assert v.encode(" positive") == [2]  # longest match
    assert v.encode(" negative") == [3, 4]
    assert v.single_token(" positive") == 2 and v.single_token(" negative") is None
    assert v.tokens([3, 4]) == [" neg", "ative"]
    assert v.token_id(" neg") == 3 and v.token_id("neg") is None
    with pytest.raises(VocabularyError, match="outside the vocabulary of 6 tokens"):
        v.token(6)
    with pytest.raises(VocabularyError, match="no token matches at position 1"):
        v.encode(" x")
    with pytest.raises(VocabularyError, match="distinct"):
        ListVocabulary(["a", "a"])
    with pytest.raises(VocabularyError, match="empty string"):
        ListVocabulary(["a", ""])


def test_generic_token_id_marks_ambiguous_pieces():
    class Dup(Vocabulary):
        toks = ["a", "b", "a"]

        @property
        def size(self) -> int:
            return 3

        def token(self, id: int) -> str:
            return self.toks[self.check_id(id)]

        def encode(self, text: str) -> list[int]:
            return [self.toks.index(c) for c in text]

    d = Dup()
    assert d.token_id("b") == 1
    assert d.token_id("a") == 0  # two ids read "a": the one the tokenizer produces for "a" wins
    assert d.token_id("c") is None

    class Unresolved(Dup):
        def encode(self, text: str) -> list[int]:
            return [1, 1]  # the tokenizer gives "a" no single id of its own

    assert Unresolved().token_id("a") is None and Unresolved().token_id("b") == 1
    assert d.single_token("ab") is None and d.single_token("b") == 1


def test_token_oracle_is_an_abstract_mixin():
    with pytest.raises(TypeError):
        TokenOracle()  # the vocabulary property is abstract

    class Has(TokenOracle):
        @property
        def vocabulary(self) -> Vocabulary:
            return ListVocabulary(["x", "y"])

    assert isinstance(Has(), TokenOracle) and Has().vocabulary.size == 2


def test_a_fingerprint_tells_two_tokenizers_of_one_size_apart():
    from blackbox_rp.vocab import ListVocabulary, fingerprint

    a = ListVocabulary(["<unk>", " bad", " good", " the"])
    assert fingerprint(a) == fingerprint(ListVocabulary(["<unk>", " bad", " good", " the"]))
    other = fingerprint(ListVocabulary(["<unk>", " good", " bad", " the"]))  # same tokens, other ids
    assert other["size"] == 4 and other["sha256"] != fingerprint(a)["sha256"]
    big = [f"t{i}" for i in range(10_000)]
    assert fingerprint(ListVocabulary(big)) != fingerprint(ListVocabulary(big[:-1] + ["x"]))  # one token differs
