"""HTTPOracle against our server over real loopback sockets: answers, faults, budgets, journal, secrets."""

from __future__ import annotations

import json
import logging
import threading
import time
from email.utils import formatdate

import numpy as np
import pytest

pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from blackbox_rp import Budget, BudgetExhausted, Journal, Ledger, OracleError  # noqa: E402
from oracles.faults import FaultConfig  # noqa: E402
from oracles.http_oracle import HTTPOracle, WireSchema  # noqa: E402
from oracles.remote import RetryPolicy, Secret, parse_retry_after  # noqa: E402
from oracles.server import OracleServer, ServerConfig  # noqa: E402
from oracles.torch_oracle import TorchOracle  # noqa: E402

KEY = "sk-test-4f1c9e0d7b2a5e83"
FAST = RetryPolicy(max_attempts=4, max_malformed=1, backoff=0.01, backoff_max=0.05)


@pytest.fixture(scope="module")
def local():
    return TorchOracle("fmnist-cnn")


# The server answers in its own batches and torch threads; batched float32 convolutions differ from the
# in-process batch in the last bits (up to ~10 ulp with 2 threads), so answers agree to float32 precision.
RTOL, ATOL = 1e-5, 1e-7

@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).random((40, 1, 28, 28), dtype=np.float32)


def serve(local, **cfg):
    return OracleServer(local, ServerConfig(**cfg), api_keys=[KEY])


def client(srv, **kw):
    kw.setdefault("retry", FAST)
    kw.setdefault("max_batch", 10)
    return HTTPOracle.from_server(srv.url, api_key=Secret(KEY), **kw)


@pytest.mark.parametrize("encoding", ["binary", "base64", "lists"])
def test_answers_equal_in_process_answers(local, x, encoding):
    with serve(local, exposure="top3") as srv, client(srv, encoding=encoding, max_in_flight=4) as o:
        r = o(x)
        assert srv.stats["answered_inputs"] == len(x)
    ref = local.with_exposure("top3")(x)
    assert r.kind == "topk" and r.indices.shape == (40, 3)
    np.testing.assert_array_equal(r.indices, ref.indices)
    np.testing.assert_allclose(r.scores, ref.scores, rtol=RTOL, atol=ATOL)
    assert o.ledger.queries == 40 and o.ledger.calls == 4  # 4 chunks of 10, one call each


FAULTS = [
    ("429", {"retry_after": 0.05}),
    ("429", {"retry_after": 0.0, "retry_after_http_date": True}),
    ("500", {}),
    ("drop", {}),
    ("malformed", {}),
    ("delay", {"delay": 1.5}),  # the client times out after 0.5 s
]


@pytest.mark.parametrize("fault,params", FAULTS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(FAULTS)])
def test_ledger_is_exact_under_each_fault(local, x, fault, params):
    # the second request fails once; with one request in flight the order is fixed
    faults = FaultConfig(schedule=("ok", fault), **params)
    with serve(local, faults=faults) as srv, client(srv, max_in_flight=1, timeout=0.5) as o:
        r = o(x)
        stats = srv.stats
    assert stats[f"fault_{fault}"] == 1
    t = o.ledger.total()
    assert t.calls == 5 == stats["requests_predict"]  # 4 chunks + 1 retry, every attempt a call
    assert t.failed_calls == 1
    assert t.queries == 40 and t.cache_hits == 0  # nothing counted twice
    np.testing.assert_allclose(r.scores, local(x).scores, rtol=RTOL, atol=ATOL)
    assert len(o.journal or []) == 0


def test_retry_after_is_waited_for(local, x):
    with serve(local, faults=FaultConfig(schedule=("429",), retry_after=0.4)) as srv, client(srv) as o:
        t0 = time.monotonic()
        o(x[:5])
        assert time.monotonic() - t0 >= 0.4  # a lower bound: the sleep cannot be shorter
    assert o.ledger.calls == 2


def test_a_retry_after_beyond_the_policy_fails_instead_of_sleeping(local, x):
    policy = RetryPolicy(max_retry_after=1.0, backoff=0.0)
    with serve(local, faults=FaultConfig(schedule=("429",), retry_after=30)) as srv, client(srv, retry=policy) as o:
        t0 = time.monotonic()
        with pytest.raises(OracleError, match="asked to wait 30 s"):
            o(x[:2])
        assert time.monotonic() - t0 < 30
    assert o.ledger.calls == 1 and o.ledger.total().failed_calls == 1


def test_text_inputs_through_http(x):
    from oracles.text_models import chatterbot_topics

    model = chatterbot_topics()
    texts = ["do you like football", "what is a python function", "do you like football"]
    with OracleServer(model, api_keys=[KEY]) as srv, client(srv) as o:
        r = o(texts)
        assert o.input_spec.kind == "text" and srv.stats["answered_inputs"] == 2  # the repeat is not re-sent
    np.testing.assert_allclose(r.scores, model(texts).scores, rtol=1e-6)
    assert o.ledger.queries == 3 and o.ledger.cache_hits == 1


def test_parse_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.25") == 0.25
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30.0)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_gives_up_with_an_error_naming_the_request(local, x):
    policy = RetryPolicy(max_attempts=3, backoff=0.0)
    with serve(local, faults=FaultConfig(rate_500=1.0)) as srv, client(srv, retry=policy) as o:
        with pytest.raises(OracleError) as ei:
            o(x[:7])
    msg = str(ei.value)
    assert f"{srv.url}/v1/predict" in msg and "request 0 (7 inputs)" in msg and "3 attempt(s)" in msg
    assert "HTTP 500" in msg and KEY not in msg
    t = o.ledger.total()
    assert (t.calls, t.failed_calls, t.queries, t.reserved) == (3, 3, 0, 0)


def test_malformed_answers_are_retried_a_bounded_number_of_times(local, x):
    policy = RetryPolicy(max_attempts=10, max_malformed=2, backoff=0.0)
    with serve(local, faults=FaultConfig(rate_malformed=1.0)) as srv, client(srv, retry=policy) as o:
        with pytest.raises(OracleError, match="malformed answer"):
            o(x[:3])
        assert srv.stats["requests_predict"] == 3
    assert o.ledger.calls == 3 and o.ledger.queries == 0


def test_refusals_are_not_retried_and_never_show_the_key(local, x):
    with serve(local) as srv:
        o = HTTPOracle.from_server(srv.url, api_key=Secret(KEY), retry=FAST)
        bad = HTTPOracle(srv.url, num_classes=10, input_spec=o.input_spec, api_key=Secret("sk-wrong-0000"),
                         retry=FAST)
        with pytest.raises(OracleError, match="HTTP 401: invalid API key") as ei:
            bad(x[:2])
        assert "sk-wrong-0000" not in str(ei.value)
        assert bad.ledger.calls == 1 and bad.ledger.queries == 0
        bad.close()
        o.close()


def test_answered_chunks_are_kept_when_a_later_request_fails(local, x, tmp_path):
    journal = tmp_path / "run.sqlite"
    policy = RetryPolicy(max_attempts=2, backoff=0.0)
    # chunks 0 and 1 answer, chunk 2 fails twice and the batch stops
    with serve(local, faults=FaultConfig(schedule=("ok", "ok", "500", "500"))) as srv:
        with client(srv, max_in_flight=1, retry=policy, journal=journal) as o:
            with pytest.raises(OracleError, match="request 2"):
                o(x)
            assert o.ledger.queries == 20 and o.ledger.calls == 4
        with client(srv, max_in_flight=1, journal=journal) as o2:  # resume: the server is healthy now
            r = o2(x)
            assert o2.ledger.cache_hits == 20 and o2.ledger.calls == 2 and o2.ledger.queries == 40
    np.testing.assert_allclose(r.scores, local(x).scores, rtol=RTOL, atol=ATOL)


def test_journal_resume_spends_no_call_on_answered_queries(local, x, tmp_path):
    journal = tmp_path / "run.sqlite"
    with serve(local, exposure="top5") as srv:
        with client(srv, journal=journal, max_in_flight=4) as o:
            first = o(x)
        with client(srv, journal=journal, max_in_flight=4) as o2:
            again = o2(x)
        assert srv.stats["requests_predict"] == 4
    assert (o2.ledger.calls, o2.ledger.queries, o2.ledger.cache_hits) == (0, 40, 40)
    np.testing.assert_array_equal(first.indices, again.indices)


def test_call_budget_is_never_exceeded_with_requests_in_flight(local):
    xs = np.random.default_rng(1).random((160, 1, 28, 28), dtype=np.float32)
    ledger = Ledger(Budget(max_calls=5))
    with serve(local, faults=FaultConfig(schedule=("ok", "500"))) as srv:
        with client(srv, ledger=ledger, max_in_flight=8) as o:
            with pytest.raises(BudgetExhausted):
                o(xs)  # 16 chunks, 8 in the air at once
        assert srv.stats["requests_predict"] == 5 == ledger.calls
        answered = srv.stats["answered_inputs"]
    assert ledger.queries == answered == 40  # 5 calls, one failed: 4 chunks of 10 answered and kept
    assert ledger.total().reserved == 0


def test_query_budget_holds_across_threads(local):
    ledger = Ledger(Budget(max_queries=100))
    outcomes: list[str] = []
    with serve(local) as srv, client(srv, ledger=ledger, max_in_flight=4) as o:
        def work(seed: int) -> None:
            xs = np.random.default_rng(seed).random((40, 1, 28, 28), dtype=np.float32)
            try:
                o(xs)
                outcomes.append("ok")
            except BudgetExhausted:
                outcomes.append("refused")

        threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert srv.stats["answered_inputs"] <= 100
    assert sorted(outcomes) == ["ok", "ok", "refused", "refused"]
    assert ledger.queries == 80


def test_priced_calls_respect_a_cost_budget(local, x):
    ledger = Ledger(Budget(max_cost=1.0))
    with serve(local) as srv, client(srv, ledger=ledger, price_per_call=0.1, price_per_query=0.01) as o:
        o(x)  # 4 calls of 10: 4 * (0.1 + 0.1) = 0.8
        with pytest.raises(BudgetExhausted, match="cost"):
            o(x[::-1].copy())  # the next call would cost 0.2 more: refused before sending
    assert ledger.total().cost == pytest.approx(1.0) and ledger.calls == 5


def test_a_custom_schema_reads_a_foreign_layout(local, x):
    """A third-party layout: nested lists in, probabilities under output.probs out."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def classify(request):
        body = await request.json()
        assert body["model"] == "cnn"
        probs = local(np.asarray(body["instances"], dtype=np.float32)).scores
        return JSONResponse({"output": {"probs": probs.tolist()}})

    import socket

    import uvicorn

    app = Starlette(routes=[Route("/classify", classify, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        schema = WireSchema(path="/classify", encoding="lists", inputs_field="instances", extra=(("model", "cnn"),),
                            answer_kind="probs", kind_field=None, scores_field="output.probs", labels_field=None)
        with HTTPOracle(url, num_classes=10, input_spec=local.input_spec, schema=schema, retry=FAST) as o:
            r = o(x[:6])
        np.testing.assert_allclose(r.scores, local(x[:6]).scores, rtol=RTOL, atol=ATOL)
        assert o.ledger.calls == 1 and o.ledger.queries == 6
    finally:
        server.should_exit = True
        th.join(10)


def test_no_key_in_logs_journal_results_reprs_or_errors(local, x, tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("BBRP_TEST_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    journal = tmp_path / "run.sqlite"
    faults = FaultConfig(schedule=("429", "500", "drop", "malformed"), retry_after=0.01)
    with serve(local, faults=faults) as srv:
        o = HTTPOracle.from_server(srv.url, api_key_env="BBRP_TEST_KEY", retry=FAST, journal=journal, max_batch=10)
        r = o(x)
        texts = [repr(o), str(o.describe()), json.dumps(o.ledger.snapshot()), repr(o.ledger), repr(r),
                 str(srv.stats)]
        with pytest.raises(OracleError) as ei:
            with serve(local, faults=FaultConfig(rate_500=1.0)) as bad_srv:
                HTTPOracle(bad_srv.url, num_classes=10, input_spec=o.input_spec, api_key_env="BBRP_TEST_KEY",
                           retry=RetryPolicy(max_attempts=2, backoff=0.0))(x[:1])
        texts.append(str(ei.value))
        o.close()
    log = list(Journal(journal).calls_log())  # the audit log: 4 answered calls and the 4 failed attempts
    assert len(log) == 8 and sum(not row["ok"] for row in log) == 4
    blob = journal.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("run.sqlite*"))
    assert KEY.encode() not in blob
    assert KEY not in caplog.text and all(KEY not in t for t in texts)
    assert "BBRP_TEST_KEY" in str(o.describe())  # says where the key comes from, not what it is


def test_cost_bounds_of_calls_in_flight_are_held_until_settled():
    from blackbox_rp.ledger import Ledger as L

    ledger = L(Budget(max_cost=1.0))
    ledger.charge_call("train", cost_bound=0.6)
    with pytest.raises(BudgetExhausted, match="cost"):
        ledger.charge_call("train", cost_bound=0.6)  # the first call's bound is still in flight
    ledger.record_call_outcome("train", cost=0.3, settle=0.6)  # it cost less than declared
    ledger.charge_call("train", cost_bound=0.6)  # 0.3 spent + 0.6 held <= 1.0
    assert ledger.total().cost == pytest.approx(0.3) and ledger.calls == 2
    assert "pending_cost" not in ledger.snapshot()["total"]
