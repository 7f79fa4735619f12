"""A real local text classifier, so the OpenAI-compatible endpoints have a model to answer with.

``chatterbot-topics``: TF-IDF (word 1–2-grams) + multinomial logistic
regression, trained at load time (under a second) on the English conversation
files of PyPI ``chatterbot-corpus`` (BSD licence): every utterance of a topic
file is labelled with its topic. Eight topics whose name is one plain word —
the word the server answers with, and the token whose log-probability carries
the class probability. The corpus is read from the installed package, never
copied into this repository.

Recipe (deterministic): utterances in file order, every 5th one held out for
testing; ``TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)``,
``LogisticRegression(C=10, max_iter=2000)``. ``TextClassifierOracle.test_accuracy``
reports the held-out accuracy (0.87 over 8 classes; chance is 0.125).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from blackbox_rp.exposure import Exposure, Response
from blackbox_rp.ledger import Ledger
from blackbox_rp.oracle import Call, InputSpec, Oracle

logger = logging.getLogger(__name__)

__all__ = ["TextClassifierOracle", "TEXT_MODELS", "chatterbot_topics", "gemma3_270m", "gemma3_270m_torch", "load_chatterbot_corpus"]

TOPICS = ("coding", "emotion", "literature", "money", "psychology", "science", "sports", "movies")
INSTALL_HINT = "pip install chatterbot-corpus==1.3.3 PyYAML"


def load_chatterbot_corpus(topics: Sequence[str] = TOPICS) -> tuple[list[str], np.ndarray]:
    """(utterances, topic index) from the installed ``chatterbot-corpus`` English files."""
    try:
        import chatterbot_corpus
        import yaml
    except ImportError as e:
        raise ImportError(f"the chatterbot-topics model needs chatterbot-corpus and PyYAML ({e}); "
                          f"{INSTALL_HINT}") from e
    root = Path(chatterbot_corpus.__file__).parent / "data" / "english"
    texts: list[str] = []
    labels: list[int] = []
    for k, topic in enumerate(topics):
        path = root / f"{topic}.yml"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing from chatterbot-corpus; {INSTALL_HINT}")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for conv in data.get("conversations", []):
            for utt in conv:
                if isinstance(utt, str) and utt.strip():
                    texts.append(utt.strip())
                    labels.append(k)
    return texts, np.asarray(labels, dtype=np.int64)


class TextClassifierOracle(Oracle):
    """A scikit-learn text pipeline (``predict_proba``) as an oracle over strings.

    ``label_words[c]`` is the word the model "says" for class ``c``: the OpenAI-compatible
    endpoints of :mod:`oracles.server` answer with it and give the class probabilities as
    the log-probabilities of that first token.
    """

    source_level = "probs"

    def __init__(self, pipeline: Any, label_words: Sequence[str], *, name: str, test_accuracy: float | None = None,
                 exposure: Exposure | str | None = None, ledger: Ledger | None = None, journal: Any = None,
                 max_batch: int = 256):
        words = [w.strip() for w in label_words]
        if len(set(w.lower() for w in words)) != len(words) or not all(words):
            raise ValueError(f"label words must be distinct and non-empty, got {label_words!r}")
        self.pipeline = pipeline
        self.label_words = words
        self.test_accuracy = test_accuracy
        h = hashlib.blake2b(repr((name, words)).encode(), digest_size=6)
        final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
        coef = getattr(final, "coef_", None)  # journal keys change when the weights do
        if coef is not None:
            h.update(np.ascontiguousarray(coef, dtype=np.float64).tobytes())
        digest = h.hexdigest()
        self._identity = f"text:{name}@{digest}"
        super().__init__(InputSpec.text(), len(words), exposure=exposure, ledger=ledger, journal=journal,
                         max_batch=max_batch, class_names=words)

    @property
    def identity(self) -> str:
        return self._identity

    def _answer(self, inputs: list[str], call: Call) -> Response:
        call.attempt()
        return Response.from_probs(self.pipeline.predict_proba(list(inputs)).astype(np.float32))


def chatterbot_topics(**kwargs: Any) -> TextClassifierOracle:
    """Train (deterministically, < 1 s) and wrap the ``chatterbot-topics`` classifier."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, y = load_chatterbot_corpus()
    test = np.arange(len(texts)) % 5 == 4
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                         LogisticRegression(C=10.0, max_iter=2000))
    pipe.fit([t for t, m in zip(texts, test) if not m], y[~test])
    acc = float((pipe.predict([t for t, m in zip(texts, test) if m]) == y[test]).mean())
    logger.info("chatterbot-topics: %d train / %d test utterances, held-out accuracy %.3f",
                int((~test).sum()), int(test.sum()), acc)
    return TextClassifierOracle(pipe, TOPICS, name="chatterbot-topics", test_accuracy=acc, **kwargs)


def gemma3_270m(**kwargs: Any) -> Oracle:
    """Gemma-3 270M through llama.cpp, in process: next-token distributions (see :mod:`oracles.llama_cpp_oracle`)."""
    from .llama_cpp_oracle import LlamaCppOracle

    return LlamaCppOracle("gemma3-270m", **kwargs)


def gemma3_270m_torch(**kwargs: Any) -> Oracle:
    """The same Gemma-3 270M in torch (float32): next-token distributions of texts *and* soft prompts
    (see :mod:`oracles.torch_lm_oracle`); what transform ``soft`` (BBT) needs."""
    from .torch_lm_oracle import TorchLMOracle

    return TorchLMOracle("gemma3-270m", **kwargs)


#: text models resolved by name (``resolve_oracle``, ``blackbox-rp serve``); the torch zoo is
#: :data:`oracles.models.MODELS`
TEXT_MODELS: dict[str, Callable[..., Oracle]] = {"chatterbot-topics": chatterbot_topics, "gemma3-270m": gemma3_270m,
                                                 "gemma3-270m-torch": gemma3_270m_torch}
