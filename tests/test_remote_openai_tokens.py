"""OpenAITokenOracle (tokens mode) against our own OpenAI-compatible server: token strings → ids.

The llama.cpp server path (the real LM) is in tests/test_llama_cpp_oracle.py; this file checks the
mapping, padding and refusals on a server that runs everywhere the ``remote`` extra does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("chatterbot_corpus")

from blackbox_rp.exposure import ExposureError  # noqa: E402
from blackbox_rp.vocab import ListVocabulary, TokenOracle  # noqa: E402
from oracles.openai_oracle import OpenAIConfig, OpenAIOracle, OpenAITokenOracle  # noqa: E402
from oracles.remote import RetryPolicy  # noqa: E402
from oracles.server import OracleServer, ServerConfig  # noqa: E402
from oracles.text_models import TOPICS, chatterbot_topics  # noqa: E402

TEXTS = ["who won the football game last night", "I need a loan from the bank", "how do I sort a list in python"]
FAST = RetryPolicy(max_attempts=2, max_malformed=1, backoff=0.01, backoff_max=0.05)


@pytest.fixture(scope="module")
def text_model():
    return chatterbot_topics()


def serve(model):
    return OracleServer(model, ServerConfig(model_name="topics", require_key=False), api_keys=[])


def test_tokens_mode_maps_top_logprobs_to_vocabulary_ids(text_model):
    vocab = ListVocabulary(["<pad>", "zzz", *TOPICS])  # topic t has id TOPICS.index(t) + 2
    p = text_model(TEXTS).scores.astype(np.float64)
    with serve(text_model) as srv, OpenAITokenOracle("topics", vocab, top_logprobs=5, base_url=srv.url + "/v1",
                                                     api_key_env=None, retry=FAST) as o:
        r = o(TEXTS)
    assert isinstance(o, TokenOracle) and o.vocabulary is vocab
    assert r.kind == "topk" and r.num_classes == vocab.size and r.indices.shape == (3, 5)
    for i in range(3):
        want = np.argsort(-p[i], kind="stable")[:5]
        assert r.indices[i].tolist() == [int(j) + 2 for j in want]
        np.testing.assert_allclose(r.scores[i], p[i][want], rtol=1e-5)
        assert r.labels[i] == r.indices[i, 0]
    assert o.exposure.key() == "top5" and o.ledger.total().calls == 1


def test_tokens_mode_drops_unknown_strings_and_pads_short_rows(text_model):
    # "coding" is not in this vocabulary: it is dropped; the server returns at most 8 tokens, k=10 pads
    vocab = ListVocabulary(["<pad>", *[t for t in TOPICS if t != "coding"], "extra1", "extra2"])
    p = text_model(TEXTS[2:]).scores[0].astype(np.float64)
    with serve(text_model) as srv, OpenAITokenOracle("topics", vocab, top_logprobs=10, base_url=srv.url + "/v1",
                                                     api_key_env=None, retry=FAST) as o:
        r = o(TEXTS[2:])
    known = [j for j in np.argsort(-p, kind="stable") if TOPICS[j] != "coding"]
    ids = r.indices[0].tolist()
    assert ids[:7] == [vocab.token_id(TOPICS[j]) for j in known]
    assert ids[7:] == [0, 8, 9]  # padding: the lowest ids not in the row, with probability 0
    assert r.scores[0, 7:].tolist() == [0.0, 0.0, 0.0]
    assert math.isclose(float(r.scores[0, :7].sum()), float(1 - p[TOPICS.index("coding")]), rel_tol=1e-5)


def test_tokens_mode_refusals():
    vocab = ListVocabulary(["a", "b"])
    with pytest.raises(ValueError, match="use OpenAITokenOracle"):
        OpenAIOracle(OpenAIConfig(model="m", mode="tokens"), api_key_env=None)
    with pytest.raises(ValueError, match="leave labels empty"):
        OpenAIConfig(model="m", mode="tokens", labels=(("yes",), ("no",)))
    with pytest.raises(ValueError, match="needs logprobs=True"):
        OpenAIConfig(model="m", mode="tokens", logprobs=False)
    with pytest.raises(TypeError, match="must be a blackbox_rp.vocab.Vocabulary"):
        OpenAITokenOracle("m", ["a", "b"], api_key_env=None)
    with pytest.raises(ExposureError, match="only returns 'topk'"):
        OpenAITokenOracle("m", vocab, api_key_env=None, exposure="probs")
    o = OpenAITokenOracle("m", vocab, api_key_env=None, top_logprobs=2, exposure="label")
    assert o.num_classes == 2 and o.level == "label"
