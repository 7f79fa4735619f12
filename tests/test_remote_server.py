"""The oracle server over real loopback sockets: keys, limits, refusals, exposure, faults, the CLI."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from oracles.faults import FaultConfig, FaultInjector  # noqa: E402
from oracles.server import OracleServer, ServerConfig  # noqa: E402
from oracles.torch_oracle import TorchOracle  # noqa: E402

KEY = "sk-server-test-9a8b7c6d"
AUTH = {"Authorization": f"Bearer {KEY}"}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local():
    return TorchOracle("fmnist-cnn")


def batch(n: int, seed: int = 0) -> dict:
    x = np.random.default_rng(seed).random((n, 1, 28, 28), dtype=np.float32)
    return {"inputs": {"dtype": "float32", "shape": list(x.shape), "b64": base64.b64encode(x.tobytes()).decode()}}


def post(srv, body=None, headers=AUTH, content=None, path="/v1/predict"):
    return httpx.post(srv.url + path, json=body, content=content, headers=headers, timeout=30)


def error(r) -> str:
    return r.json()["error"]["message"]


def test_keys_are_required_and_checked(local):
    with OracleServer(local, api_keys=[KEY]) as srv:
        r = post(srv, batch(2), headers={})
        assert r.status_code == 401 and "missing API key" in error(r)
        r = post(srv, batch(2), headers={"Authorization": "Bearer sk-nope"})
        assert r.status_code == 401 and error(r) == "invalid API key"
        r = post(srv, batch(2), headers={"X-API-Key": KEY})
        assert r.status_code == 200 and len(r.json()["labels"]) == 2
        assert httpx.get(srv.url + "/v1/info", timeout=10).status_code == 401
        assert httpx.get(srv.url + "/healthz", timeout=10).json() == {"ok": True}
        assert srv.stats["refused_401"] == 2
    with pytest.raises(ValueError, match="needs at least one API key"):
        OracleServer(local, ServerConfig())


def test_oversized_and_malformed_requests_are_refused_with_a_clear_message(local):
    with OracleServer(local, ServerConfig(max_body_bytes=128 * 1024, max_batch=16), api_keys=[KEY]) as srv:
        r = post(srv, batch(40))  # 40 * 3136 bytes, base64'd: over 128 KiB
        assert r.status_code == 413 and "exceeds the limit of 131072 bytes" in error(r)
        r = post(srv, batch(17))
        assert r.status_code == 413 and "at most 16" in error(r)
        r = post(srv, content=b'{"inputs": [1, 2', headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in error(r)
        r = post(srv, {"x": 1})
        assert r.status_code == 422 and "'inputs'" in error(r)
        r = post(srv, {"inputs": np.zeros((2, 3, 28, 28)).tolist()})
        assert r.status_code == 422 and "channels" in error(r)
        r = post(srv, {"inputs": (np.ones((1, 1, 28, 28)) * 2).tolist()})
        assert r.status_code == 422 and "[0, 1]" in error(r)
        r = post(srv, {"inputs": {"dtype": "float32", "shape": [2, 1, 28, 28], "b64": "AAAA"}})
        assert r.status_code == 422 and "does not fit shape" in error(r)
        binary = {**AUTH, "Content-Type": "application/octet-stream", "X-Array-Dtype": "float32"}
        r = post(srv, content=b"\0" * 100, headers={**binary, "X-Array-Shape": "2,1,28,28"})
        assert r.status_code == 422 and "100 bytes, which does not fit shape [2, 1, 28, 28]" in error(r)
        r = post(srv, content=b"\0" * 3136, headers={**binary, "X-Array-Shape": "1,1,28,28"})
        assert r.status_code == 200
        assert r.json()["labels"] == local(np.zeros((1, 1, 28, 28), np.float32)).labels.tolist()
        assert srv.stats["answered_requests"] == 1


def test_rate_limit_answers_429_with_retry_after(local):
    with OracleServer(local, ServerConfig(rate_limit=0.1, burst=2), api_keys=[KEY, "sk-other"]) as srv:
        codes = [post(srv, batch(1)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = post(srv, batch(1))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and "rate limit" in error(r)
        # the limit is per key
        assert post(srv, batch(1), headers={"Authorization": "Bearer sk-other"}).status_code == 200


@pytest.mark.parametrize("status", [429, 403])
def test_quota_per_key(local, status):
    with OracleServer(local, ServerConfig(quota=10, quota_status=status), api_keys=[KEY, "sk-other"]) as srv:
        assert post(srv, batch(6)).status_code == 200
        r = post(srv, batch(6))
        assert r.status_code == status and "quota exhausted" in error(r) and "6 of 10" in error(r)
        assert post(srv, batch(4)).status_code == 200  # exactly up to the quota
        assert post(srv, batch(10), headers={"Authorization": "Bearer sk-other"}).status_code == 200
        assert srv.stats["answered_inputs"] == 20


@pytest.mark.parametrize("exposure,kind,shape", [("label", "label", None), ("top3", "topk", (2, 3)),
                                                 ("rounded1", "probs", (2, 10)), ("logits", "logits", (2, 10))])
def test_exposure_policy_shapes_answers(local, exposure, kind, shape):
    with OracleServer(local, ServerConfig(exposure=exposure), api_keys=[KEY]) as srv:
        body = post(srv, batch(2)).json()
        info = httpx.get(srv.url + "/v1/info", headers=AUTH, timeout=10).json()
    assert body["kind"] == kind == info["answer_kind"]
    if shape is None:
        assert "scores" not in body
    else:
        s = body["scores"]
        assert s["shape"] == list(shape)
        if exposure == "rounded1":
            v = np.frombuffer(base64.b64decode(s["b64"]), dtype=np.float32)
            np.testing.assert_allclose(v, np.round(v, 1), atol=1e-6)


def test_fault_injection_is_seeded_and_follows_the_schedule():
    cfg = FaultConfig(rate_429=0.2, rate_500=0.1, rate_drop=0.1, schedule=("drop", "ok"), seed=3)
    a = [FaultInjector(cfg).draw() for _ in range(1)]
    draws1 = [d for inj in [FaultInjector(cfg)] for d in (inj.draw() for _ in range(200))]
    draws2 = [d for inj in [FaultInjector(cfg)] for d in (inj.draw() for _ in range(200))]
    assert a == ["drop"] and draws1 == draws2 and draws1[1] is None
    counts = {f: draws1[2:].count(f) for f in ("429", "500", "drop")}
    assert 20 < counts["429"] < 60 and 5 < counts["500"] < 35 and 5 < counts["drop"] < 35
    with pytest.raises(ValueError, match="sum to at most 1"):
        FaultConfig(rate_429=0.7, rate_500=0.5)
    with pytest.raises(ValueError, match="unknown faults"):
        FaultConfig(schedule=("boom",))


def test_server_stops_promptly_with_connections_open(local):
    srv = OracleServer(local, api_keys=[KEY]).start()
    client = httpx.Client(headers=AUTH, timeout=10)
    assert client.post(srv.url + "/v1/predict", json=batch(1)).status_code == 200  # keep-alive connection open
    t0 = time.monotonic()
    srv.stop(timeout=5)
    assert time.monotonic() - t0 < 15  # bounded (graceful 5 s + forced), not a speed claim
    client.close()
    with pytest.raises(httpx.TransportError):
        httpx.get(srv.url + "/healthz", timeout=2)


def test_cli_serve_on_a_free_port():
    env = {**os.environ, "BBRP_SERVE_KEY": KEY, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "blackbox_rp", "serve", "--model", "fmnist-cnn", "--port", "0",
                             "--exposure", "top2", "--api-key-env", "BBRP_SERVE_KEY"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert "serving torch:fmnist-cnn" in line and KEY not in line
        url = line.split(" on ")[1].split()[0]
        for _ in range(300):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        body = httpx.post(url + "/v1/predict", json=batch(3), headers=AUTH, timeout=30).json()
        assert body["kind"] == "topk" and len(body["labels"]) == 3
        assert httpx.post(url + "/v1/predict", json=batch(1), timeout=30).status_code == 401
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert KEY not in out + err


def test_cli_serve_refuses_to_run_without_keys():
    r = subprocess.run([sys.executable, "-m", "blackbox_rp", "serve", "--model", "fmnist-cnn"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and "--api-key-env" in r.stderr


def test_text_model_is_a_real_classifier():
    from oracles.text_models import TOPICS, chatterbot_topics

    o = chatterbot_topics()
    assert o.test_accuracy > 0.6  # 8 topics: chance is 0.125
    r = o(["what is the stock market and how do I invest money", "do you like football or basketball"])
    assert [TOPICS[i] for i in r.labels] == ["money", "sports"]
    d = json.loads(json.dumps(o.describe()))  # what results files record, as a results file reads it back
    assert d["identity"] == o.identity and d["identity"].startswith("text:chatterbot-topics@")
    assert d["exposure"] == "probs" and d["num_classes"] == len(TOPICS) == 8
    assert d["input"] == "a list of strings" and d["journal"] is None


def test_a_factory_returning_an_oracle_can_be_served():
    from oracles.server import resolve_oracle
    from oracles.text_models import TextClassifierOracle

    o = resolve_oracle("oracles.text_models:chatterbot_topics")
    assert isinstance(o, TextClassifierOracle)
    assert resolve_oracle("chatterbot-topics").identity == o.identity  # by name: the same trained model
    with OracleServer(o, ServerConfig(exposure="top2"), api_keys=[KEY]) as srv:
        body = post(srv, {"inputs": ["do you like football", "how do I invest money in the stock market"]}).json()
    assert body["kind"] == "topk" and [o.label_words[i] for i in body["labels"]] == ["sports", "money"]
