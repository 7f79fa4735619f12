"""One resolver for every command: bundled names, TorchScript files, module:factory (the only parser of it),
text models, a served model by /v1/info, any JSON API by a wire schema, an OpenAI-compatible endpoint;
keys only by variable name, checked before any query."""

from __future__ import annotations

import numpy as np
import pytest

from blackbox_rp.oracle import Oracle, OracleError
from oracles.resolve import import_factory, is_factory_spec, resolve_oracle
from oracles.torch_oracle import TorchOracle

KEY = "sk-resolve-91c2f0"
X = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)


def small_module():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(3 * 4, 4))


def topic_oracle():
    from oracles.text_models import chatterbot_topics

    return chatterbot_topics()


def test_local_specs_resolve_to_the_right_oracle(tmp_path):
    import torch

    cnn = resolve_oracle("fmnist-cnn", exposure="top2")
    assert cnn.identity.startswith("torch:fmnist-cnn@") and cnn.exposure.key() == "top2"
    assert (cnn.input_spec.height, cnn.input_spec.width) == (28, 28)  # it takes exactly 28 px, and says so
    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(small_module()), str(path))
    ts = resolve_oracle(str(path))
    assert ts.num_classes == 4 and ts.identity.startswith("torch:m.pt@")
    fac = resolve_oracle("tests.test_oracles_resolve:small_module")
    x3 = np.random.default_rng(1).random((5, 3, 16, 16), dtype=np.float32)
    assert fac.num_classes == 4 and np.allclose(fac(x3).scores, ts(x3).scores, atol=1e-6)
    text = resolve_oracle("tests.test_oracles_resolve:topic_oracle", exposure="label")
    assert isinstance(text, Oracle) and text.exposure.key() == "label"
    assert resolve_oracle("chatterbot-topics").identity == text.identity
    for bad, says in [("nope", "neither a bundled model"), ("os:getcwd", "returned str"),
                      ("no_such_mod:f", "cannot import 'no_such_mod:f'")]:
        with pytest.raises((ValueError, TypeError), match=says):
            resolve_oracle(bad)
    with pytest.raises(ValueError, match="api_key_env is for a remote model"):
        resolve_oracle("fmnist-cnn", api_key_env="K")
    assert is_factory_spec("a.b:c") and not is_factory_spec("http://x:80") and not is_factory_spec("./a:b")
    with pytest.raises(ValueError, match="not a factory"):
        import_factory("oracles.resolve:__all__")


def test_the_server_resolves_through_the_same_function():
    from oracles import server

    assert server.resolve_oracle("fmnist-cnn").identity == TorchOracle("fmnist-cnn").identity


@pytest.fixture()
def served(monkeypatch):
    pytest.importorskip("httpx")
    from oracles.server import OracleServer, ServerConfig

    monkeypatch.setenv("BBRP_RESOLVE_KEY", KEY)
    with OracleServer("fmnist-cnn", ServerConfig(exposure="top3"), api_keys=[KEY]) as srv:
        yield srv


def test_a_served_model_by_discovery_or_by_wire_schema(served):
    local = TorchOracle("fmnist-cnn", exposure="top3")
    with resolve_oracle(served.url, api_key_env="BBRP_RESOLVE_KEY") as found:
        assert found.exposure.key() == "top3" and found.num_classes == 10
        np.testing.assert_array_equal(found(X).indices, local(X).indices)
    wire = {"answer_kind": "topk", "top_k": 3, "num_classes": 10,
            "input": {"channels": 1, "height": 28, "width": 28}}
    with resolve_oracle(served.url, wire=wire, api_key_env="BBRP_RESOLVE_KEY") as schema:
        np.testing.assert_array_equal(schema(X).indices, local(X).indices)
        assert schema.ledger.counts("train").calls >= 1
    with pytest.raises(ValueError, match="needs num_classes"):
        resolve_oracle(served.url, wire={"answer_kind": "probs"})


def test_bad_urls_and_keys_fail_before_a_query(served, monkeypatch):
    from oracles.subprocess_server import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(OracleError, match="cannot reach"):
        resolve_oracle(dead)
    with pytest.raises(OracleError, match="cannot reach"):
        resolve_oracle(dead, wire={"num_classes": 10, "input": {"channels": 1}})
    monkeypatch.setenv("BBRP_RESOLVE_KEY", "sk-wrong")
    with pytest.raises(OracleError, match=r"refused the API key from \$BBRP_RESOLVE_KEY") as e:
        resolve_oracle(served.url, api_key_env="BBRP_RESOLVE_KEY")
    assert "sk-wrong" not in str(e.value)
    with pytest.raises(OracleError, match="refused the API key; give --api-key-env"):
        resolve_oracle(served.url)
    assert served.stats.get("answered_inputs", 0) == 0


def test_an_openai_compatible_endpoint(monkeypatch):
    pytest.importorskip("openai")
    from oracles.server import OracleServer, ServerConfig
    from oracles.text_models import TOPICS

    monkeypatch.setenv("BBRP_RESOLVE_KEY", KEY)
    model = topic_oracle()
    texts = ["who won the football game last night", "I need a loan from the bank"]
    settings = {"model": "topics", "mode": "completions", "labels": [[t] for t in TOPICS]}
    with OracleServer(model, ServerConfig(model_name="topics"), api_keys=[KEY]) as srv:
        with resolve_oracle(srv.url + "/v1", openai=settings, api_key_env="BBRP_RESOLVE_KEY") as o:
            assert o.identity.startswith("openai:completions:topics@")
            np.testing.assert_array_equal(o(texts).labels, model(texts).labels)
        monkeypatch.setenv("BBRP_RESOLVE_KEY", "sk-wrong")
        with pytest.raises(OracleError, match="refused the API key"):
            resolve_oracle(srv.url + "/v1", openai=settings, api_key_env="BBRP_RESOLVE_KEY")
