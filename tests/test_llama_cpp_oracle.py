"""Gemma-3 270M through llama.cpp: in process (LlamaCppOracle) and behind llama.cpp's own server.

Real model, real server: the GGUF assembled from its PyPI packages, ``python -m llama_cpp.server``
on a loopback port, reached with the official ``openai`` client (OpenAITokenOracle). Skipped only
when llama-cpp-python is not installed (``bash scripts/setup.sh`` builds it; CI does).
"""

from __future__ import annotations

import os
import sys

# before llama_cpp loads OpenMP: spinning threads slow everything down on shared cores
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: bash scripts/setup.sh builds it "
                                        "(pip install 'blackbox-rp[text]' with the portable CMAKE_ARGS it uses)")

from blackbox_rp import InputError, Journal, Ledger  # noqa: E402
from blackbox_rp.vocab import TokenOracle, Vocabulary  # noqa: E402
from oracles.llama_cpp_oracle import GGUF_MODELS, LlamaCppOracle, LlamaVocabulary, gguf_path  # noqa: E402

N_VOCAB = 262_144  # Gemma-3
PROMPTS = ["The capital of France is", "Review: a gorgeous, witty film.\nSentiment (positive or negative):",
           "Review: flat, dull and far too long.\nSentiment (positive or negative):", "1, 2, 3, 4,"]
#: log-probabilities of the same prompt in process and through llama.cpp's server agree within this
#: (same weights and kernels evaluated alike; the server's log-softmax is float32, ours float64)
LOGPROB_TOL = 1e-3


@pytest.fixture(scope="module")
def lm() -> LlamaCppOracle:
    return LlamaCppOracle("gemma3-270m", exposure="logits", n_threads=2)


def test_capital_of_france_top_tokens(lm):
    """The known-prompt check that catches reading zeros (Llama.scores with logits_all=False)."""
    o = lm.with_exposure("top10")
    r = o(["The capital of France is"])
    top = lm.vocabulary.tokens(r.indices[0])
    assert {" the", " a", " Paris"} <= set(top[:5]), top
    assert isinstance(lm, TokenOracle) and isinstance(lm.vocabulary, Vocabulary)
    assert lm.num_classes == lm.vocabulary.size == N_VOCAB == GGUF_MODELS["gemma3-270m"].vocab_size
    assert r.num_classes == N_VOCAB
    assert r.kind == "topk" and r.indices.shape == (1, 10) and np.all(np.diff(r.scores[0]) <= 0)


def test_full_logprobs_and_exposures_agree(lm):
    full = lm(PROMPTS[:2])
    assert full.kind == "logits" and full.scores.shape == (2, N_VOCAB)
    z = full.scores.astype(np.float64)
    np.testing.assert_allclose(np.log(np.exp(z).sum(axis=1)), 0.0, atol=1e-4)  # a log-softmax
    assert full.labels.tolist() == z.argmax(axis=1).tolist()
    top = lm.with_exposure("top20")(PROMPTS[:2])
    for i in range(2):
        want = np.argsort(-z[i], kind="stable")[:20]
        assert top.indices[i].tolist() == want.tolist()
        np.testing.assert_allclose(top.scores[i], np.exp(z[i][want]), rtol=1e-5)
    assert lm.with_exposure("label")(PROMPTS[:2]).labels.tolist() == full.labels.tolist()
    p = lm.with_exposure("probs")(PROMPTS[:1]).scores[0]
    assert abs(float(p.sum()) - 1) < 1e-3


def test_prefix_reuse_gives_the_answers_of_a_fresh_evaluation(lm):
    """Prompts sharing a template reuse its KV cache; answers must equal evaluating each from scratch,
    bit for bit, whatever came before (llama.cpp's kernels round differently for tokens outside
    whole groups of ALIGN, so naive prefix reuse would make answers depend on query order)."""
    fresh = LlamaCppOracle("gemma3-270m", exposure="logits", n_threads=2, reuse_prefix=False)
    base = PROMPTS[1]
    order = [PROMPTS[1], PROMPTS[2], PROMPTS[1], PROMPTS[0], PROMPTS[2],
             base[:-3], base, base + " positive", base[:-1]]  # prefixes of each other, repeats, no sharing
    b = np.stack([fresh.next_token_logprobs(fresh.vocabulary.encode_prompt(t)) for t in order])
    a = np.stack([lm.next_token_logprobs(lm.vocabulary.encode_prompt(t)) for t in order])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0], a[2])  # the same prompt again, after another one
    # what goes wrong without the alignment: the same prompt, its first token evaluated alone
    tokens = fresh.vocabulary.encode_prompt(base)
    llm = fresh._rt.llm
    llm.reset()
    llm.eval(tokens[:1])
    llm.eval(tokens[1:])
    fresh._rt.evaluated = []
    import llama_cpp

    z = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(N_VOCAB,))
    assert np.abs(z - z.max() - (b[1] - b[1].max())).max() > 1e-3  # if this fails, ALIGN may be unneeded


def test_ledger_journal_and_bad_input(lm, tmp_path):
    ledger = Ledger()
    o = lm.with_exposure("top20")
    o.ledger, o.journal = ledger, Journal(tmp_path / "j.sqlite")
    first = o(PROMPTS[:3], phase="train")
    again = o(PROMPTS[:3], phase="train")
    s = ledger.snapshot()["train"]
    assert s["queries"] == 6 and s["calls"] == 1 and s["cache_hits"] == 3
    assert again.indices.tolist() == first.indices.tolist()
    small = LlamaCppOracle("gemma3-270m", n_ctx=16, n_threads=1)
    with pytest.raises(InputError, match=r"input 1 is \d+ tokens, over the context of 16"):
        small(["short", "word " * 40])
    assert small.ledger.total().calls == 0  # refused before anything was charged
    with pytest.raises(InputError, match="one string"):
        small("not a list")


def test_vocabulary(lm):
    v = lm.vocabulary
    paris = v.single_token(" Paris")
    assert paris is not None and v.token(paris) == " Paris" and v.token_id(" Paris") == paris
    assert v.encode(" Paris") == [paris]  # no BOS
    assert v.encode_prompt(" Paris")[-1] == paris and len(v.encode_prompt(" Paris")) == 2  # BOS + token
    assert v.single_token(" extraordinarilyunlikelyword") is None
    colon = v.single_token(":")
    assert len([i for i in range(300) if v.token(i) == ":"]) == 1 and colon > 300  # another id reads ":"
    assert v.token_id(":") == colon  # resolved to the tokenizer's own id for ":"
    assert v.tokens(v.encode(" positive or negative")) == [" positive", " or", " negative"]
    # the vocabulary loaded without the weights reads the same
    w = LlamaVocabulary.from_file("gemma3-270m")
    assert w.size == v.size and w.token(paris) == " Paris" and w.encode(" negative") == v.encode(" negative")


def test_resolvable_by_name():
    from oracles.server import resolve_oracle

    o = resolve_oracle("gemma3-270m", n_threads=1)
    assert isinstance(o, LlamaCppOracle) and o.exposure.key() == "top20"
    assert o.identity.startswith("llama.cpp:gemma3-270m@")
    with pytest.raises(ValueError, match="neither a bundled GGUF model"):
        LlamaCppOracle("no-such-model.gguf")


#: prompts for the server comparison: consecutive ones share exactly a 4-token prefix (BOS "Input" " text"
#: ":"), so the server's own prefix cache reuses whole groups and evaluates them as from scratch
SERVED = ["Input text: " + p for p in (PROMPTS[0], PROMPTS[1], PROMPTS[3], PROMPTS[2])]


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@pytest.mark.slow
def test_llama_cpp_server_agrees_with_in_process(lm):
    """The same GGUF behind llama.cpp's own OpenAI-compatible server, through the official openai client:
    the same top-20 tokens in the same order and the same log-probabilities (float32 rounding).

    llama_cpp.server reuses the KV prefix a prompt shares with the previous request at any length;
    prompts whose shared prefix is not whole groups of ALIGN tokens then answer up to ~0.15 nats
    differently (see oracles.llama_cpp_oracle; benchmarks/llm_oracle.py measures it on real texts).
    SERVED avoids that, so any difference here is a real disagreement."""
    pytest.importorskip("openai")
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] extras are not installed")
    from oracles.llama_cpp_oracle import ALIGN, reusable_prefix
    from oracles.openai_oracle import OpenAITokenOracle
    from oracles.subprocess_server import running_server

    toks = [lm.vocabulary.encode_prompt(p) for p in SERVED]
    for prev, cur in zip(toks, toks[1:]):  # the server's prefix reuse is whole groups here
        assert _common(prev, cur) == reusable_prefix(prev, cur) == ALIGN
    model = str(gguf_path())
    argv = lambda port: [sys.executable, "-m", "llama_cpp.server", "--model", model,  # noqa: E731
                         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"]
    local = lm.with_exposure("top20")(SERVED)
    with running_server(argv, timeout=180) as url:
        with OpenAITokenOracle("gemma3-270m", LlamaVocabulary.from_file(model), top_logprobs=20,
                               base_url=url + "/v1", api_key_env=None, timeout=120, max_batch=1,
                               max_in_flight=1) as remote:
            served = remote(SERVED)
        import openai  # the raw client, no blackbox_rp: the text the server generates is the top token

        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=120)
        text = client.completions.create(model="gemma3-270m", prompt=SERVED[0], max_tokens=1,
                                         temperature=0).choices[0].text
        client.close()
    t = remote.ledger.total()
    assert t.queries == t.calls == len(SERVED)
    assert isinstance(remote, TokenOracle) and served.num_classes == N_VOCAB
    assert text == lm.vocabulary.token(int(local.indices[0, 0]))
    assert served.indices.tolist() == local.indices.tolist()
    np.testing.assert_allclose(np.log(served.scores), np.log(local.scores), atol=LOGPROB_TOL)


@pytest.mark.slow
def test_benchmark_runs_and_ends_with_its_json_line():
    import json
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_WAIT_POLICY": "passive"}
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "llm_oracle.py"), "--quick", "--prompts", "3"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| llama.cpp server (openai client) | 3 | 3 |" in r.stdout
    head = json.loads(r.stdout.strip().splitlines()[-1])
    assert head["prompts"] == 3 and head["exposure"] == "top20" and 0 <= head["top1_agreement"] <= 1
    assert head["inprocess_queries_per_s"] > 0 and head["server_queries_per_s"] > 0
