"""Any oracle from one config: `reprogram` and `run` against a `blackbox-rp serve` server on loopback (a key,
a rate limit, injected faults) reach the same θ and accuracy as in process, with the retries in the ledger;
an unreachable URL, a wrong key or a missing key variable fail with one line before any query."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("httpx")
pytest.importorskip("starlette")

from blackbox_rp.cli import main  # noqa: E402
from oracles.faults import FaultConfig  # noqa: E402
from oracles.server import OracleServer, ServerConfig  # noqa: E402
from oracles.subprocess_server import free_port  # noqa: E402
from oracles.torch_oracle import TorchOracle  # noqa: E402

KEY = "sk-exp-7d1e0b9c4a2f"
FLAGS = ["--data", "digits", "--split", "200,100,100", "--mapping", "blm+", "--optimizer", "spsa-gc",
         "--budget", "2400", "--batch-size", "32", "--eval-every", "2", "--seed", "1", "--no-progress"]
TOML = """
[task]
data = "digits"
split = [200, 100, 100]
seed = 1
[oracle]
model = "fmnist-cnn"
[mapping]
name = "blm+"
[optimizer]
name = "spsa-gc"
[budget]
queries = 2400
[fit]
batch_size = 32
eval_every = 2
"""


@pytest.fixture()
def server():
    faults = FaultConfig(rate_429=0.08, rate_500=0.08, rate_drop=0.04, rate_malformed=0.04, retry_after=0.02,
                         seed=5)
    # the server's model answers in the batches the client sends (max_batch 256 both sides), as in process
    cfg = ServerConfig(rate_limit=40.0, burst=4, faults=faults, max_batch=1024)
    with OracleServer(TorchOracle("fmnist-cnn", max_batch=256), cfg, api_keys=[KEY]) as srv:
        yield srv


def _results(d):
    return json.loads((d / "results.json").read_text())


@pytest.mark.slow
def test_reprogram_and_run_over_http_equal_the_in_process_run(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setenv("BBRP_EXP_KEY", KEY)
    cfg = tmp_path / "c.toml"
    cfg.write_text(TOML)
    assert main(["run", str(cfg), "--out", str(tmp_path / "local"), "--no-progress"]) == 0
    assert main(["reprogram", "--model", server.url, "--api-key-env", "BBRP_EXP_KEY", *FLAGS,
                 "--out", str(tmp_path / "http")]) == 0
    assert main(["run", str(cfg), "--set", f"oracle.model={server.url}", "--set", "oracle.api_key_env=BBRP_EXP_KEY",
                 "--out", str(tmp_path / "http-run"), "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert KEY not in printed.out + printed.err
    local = _results(tmp_path / "local")
    theta = np.load(tmp_path / "local" / "theta.npy")
    for name in ("http", "http-run"):
        r = _results(tmp_path / name)
        assert np.array_equal(np.load(tmp_path / name / "theta.npy"), theta), name
        assert r["test_accuracy"] == local["test_accuracy"] and r["curve"] == local["curve"]
        assert r["steps"] == local["steps"] and r["best_step"] == local["best_step"]
        t = r["ledger"]["total"]
        assert t["queries"] == local["ledger"]["total"]["queries"]
        assert t["failed_calls"] > 0 and t["calls"] - t["failed_calls"] < t["calls"]  # retries are calls
        assert KEY not in (tmp_path / name / "results.json").read_text()
        assert KEY not in (tmp_path / name / "config.toml").read_text()
    stats = server.stats
    faults = sum(v for k, v in stats.items() if k.startswith("fault_")) + stats.get("refused_429", 0)
    both = [_results(tmp_path / n)["ledger"]["total"] for n in ("http", "http-run")]
    assert sum(t["failed_calls"] for t in both) == faults > 0
    assert sum(t["calls"] - t["failed_calls"] for t in both) == stats["answered_requests"]


def test_unreachable_url_wrong_key_and_missing_key_fail_before_any_query(tmp_path, server, monkeypatch, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["reprogram", "--model", url, *FLAGS, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "cannot reach" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "a").exists()
    monkeypatch.setenv("BBRP_EXP_KEY", "sk-wrong")
    assert main(["reprogram", "--model", server.url, "--api-key-env", "BBRP_EXP_KEY", *FLAGS,
                 "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "refused the API key from $BBRP_EXP_KEY" in err and "sk-wrong" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "b").exists()
    assert main(["reprogram", "--model", server.url, "--api-key-env", "BBRP_NOT_SET_ANYWHERE", *FLAGS,
                 "--out", str(tmp_path / "c")]) == 2
    assert "BBRP_NOT_SET_ANYWHERE is not set" in capsys.readouterr().err
    assert server.stats.get("answered_inputs", 0) == 0


def test_query_resolves_a_served_model_like_every_command(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setenv("BBRP_EXP_KEY", KEY)
    x = (np.random.default_rng(0).random((6, 28, 28)) * 255).astype(np.uint8)
    np.savez(tmp_path / "x.npz", x=x)
    assert main(["query", str(tmp_path / "x.npz"), "--model", "fmnist-cnn", "--exposure", "label", "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main(["query", str(tmp_path / "x.npz"), "--model", server.url, "--api-key-env", "BBRP_EXP_KEY",
                 "--exposure", "label", "--json"]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert [a["label"] for a in remote["answers"]] == [a["label"] for a in local["answers"]]
    assert remote["oracle"]["identity"].startswith("http:torch:fmnist-cnn@")
