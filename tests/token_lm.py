"""A small real token oracle for the text tests: next-word distributions from a trained scikit-learn model.

Not a language model of the llama.cpp kind (those tests need the built llama-cpp-python and the GGUF;
see tests/test_text_gemma.py), but a real model over a real vocabulary, so token mappings, discrete
prompts and the resume machinery are exercised end to end in seconds:

* the vocabulary is ``<unk>`` plus `` word`` tokens: the eight chatterbot topic names and the 300 most
  frequent words of the corpus;
* P(next token | text) = 0.8 · the ``chatterbot-topics`` classifier's topic probabilities (TF-IDF +
  logistic regression trained on four fifths of the corpus, :func:`oracles.text_models.chatterbot_topics`)
  on the topic-name tokens + 0.2 · the corpus's unigram word distribution on all word tokens.

The prompt's words enter the TF-IDF features, so a prompt moves the answer. The held-out fifth of the
corpus (never trained on) is what the tests classify: :func:`heldout_task`.
"""

from __future__ import annotations

import collections
import functools
import re
from typing import Any, Sequence

import numpy as np

from blackbox_rp.exposure import Response
from blackbox_rp.oracle import Call, InputSpec, Oracle
from blackbox_rp.textdata import TextDataset
from blackbox_rp.vocab import ListVocabulary, TokenOracle, Vocabulary
from oracles.text_models import TOPICS, TextClassifierOracle, chatterbot_topics, load_chatterbot_corpus


@functools.lru_cache(maxsize=1)
def _classifier() -> TextClassifierOracle:
    return chatterbot_topics()


def topic_classifier(**kw: Any) -> TextClassifierOracle:
    """The chatterbot-topics classifier as a class-score oracle (trained once per process)."""
    clf = _classifier()
    return TextClassifierOracle(clf.pipeline, TOPICS, name="chatterbot-topics", **kw)


@functools.lru_cache(maxsize=1)
def _parts() -> tuple[Any, ListVocabulary, np.ndarray, np.ndarray]:
    clf = _classifier()
    texts, _ = load_chatterbot_corpus()
    counts = collections.Counter(w for t in texts for w in re.findall(r"[a-z]+", t.lower()))
    words = list(TOPICS) + [w for w, _ in counts.most_common(400) if w not in TOPICS][:300]
    vocab = ListVocabulary(["<unk>"] + [" " + w for w in words])
    unigram = np.array([0.0] + [counts[w] + 1.0 for w in words])
    unigram /= unigram.sum()
    topic_ids = np.array([vocab.token_id(" " + t) for t in TOPICS], dtype=np.int64)
    return clf.pipeline, vocab, unigram, topic_ids


class WordTopicLM(Oracle, TokenOracle):
    """Next-word distributions over a 309-token vocabulary from the trained topic classifier (module doc)."""

    source_level = "probs"

    def __init__(self, **kw: Any):
        self.pipeline, self._vocab, self.unigram, self.topic_ids = _parts()
        super().__init__(InputSpec.text(), self._vocab.size, **kw)

    @property
    def identity(self) -> str:
        return "test:word-topic-lm@1"

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocab

    def _answer(self, inputs: list[str], call: Call) -> Response:
        call.attempt()
        topic = self.pipeline.predict_proba(list(inputs))
        p = np.repeat(0.2 * self.unigram[None, :], len(inputs), axis=0)
        p[:, self.topic_ids] += 0.8 * topic
        return Response.from_probs(p.astype(np.float32))


class ReorderedWordTopicLM(WordTopicLM):
    """The same model under another tokenizer: the same 309 tokens numbered in reverse order (answers
    permuted to match). Same size, other ids: a fitted token mapping's ids would read other tokens."""

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self._vocab = ListVocabulary([self._vocab.token(i) for i in reversed(range(self._vocab.size))])

    @property
    def identity(self) -> str:
        return "test:word-topic-lm-reordered@1"

    def _answer(self, inputs: list[str], call: Call) -> Response:
        probs = super()._answer(inputs, call).probs()
        return Response.from_probs(np.ascontiguousarray(probs[:, ::-1]))


def heldout_task(topics: Sequence[str] = ("coding", "emotion")) -> TextDataset:
    """The corpus's held-out fifth (every 5th utterance, never trained on) for ``topics``."""
    texts, y = load_chatterbot_corpus()
    keep = [(t, TOPICS.index(TOPICS[k])) for i, (t, k) in enumerate(zip(texts, y))
            if i % 5 == 4 and TOPICS[k] in topics]
    cls = {TOPICS.index(t): j for j, t in enumerate(topics)}
    return TextDataset(tuple(" ".join(t.split())[:300] for t, _ in keep),
                       np.array([cls[k] for _, k in keep], dtype=np.int64), tuple(topics), "chatterbot-heldout")
