"""BBT soft prompts (transform ``soft``) on the torch Gemma-3 270M oracle that takes embeddings.

The fast tests need no language model: the input type, the journal keys and the refusals, on the small
real token oracle of ``token_lm.py``. The slow ones load Gemma-3 270M into torch once (one module-scoped
fixture; 30–90 s) and skip only when transformers/gguf/llama-cpp-python or the MR archive are missing
(``bash scripts/setup.sh`` provides all of them).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before llama_cpp loads OpenMP (shared cores)

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from blackbox_rp import Budget, Ledger  # noqa: E402
from blackbox_rp.cache import Journal  # noqa: E402
from blackbox_rp.data import DatasetUnavailable, split_dataset  # noqa: E402
from blackbox_rp.embeddings import EmbeddingOracle, SoftText  # noqa: E402
from blackbox_rp.oracle import InputError, InputSpec  # noqa: E402
from blackbox_rp.reprogram import Reprogrammer  # noqa: E402
from blackbox_rp.transforms import TRANSFORMS  # noqa: E402
from blackbox_rp.transforms.soft_prompt import SoftPrompt, SoftPromptConfig  # noqa: E402
from blackbox_rp.transforms.text_prompt import PromptError  # noqa: E402
from token_lm import WordTopicLM, heldout_task  # noqa: E402

TEMPLATE = "\nReview: {x}\nSentiment:"
WORDS = ("negative", "positive")
INIT = "Decide the sentiment."


# ---------------------------------------------------------------- no model needed
def test_soft_text_is_a_frozen_float32_copy_and_refuses_what_is_not_rows():
    buf = np.ones((2, 3))
    s = SoftText(buf, "hi")
    buf[0, 0] = 5.0
    assert s.embeddings.dtype == np.float32 and s.embeddings[0, 0] == 1.0, "a copy: the caller's buffer may change"
    with pytest.raises(ValueError):
        s.embeddings[0, 0] = 2.0
    for bad in (np.ones(3), np.ones((0, 3)), np.array([[np.nan, 1.0]]), np.array([["a"]])):
        with pytest.raises(ValueError):
            SoftText(bad, "hi")
    with pytest.raises(TypeError):
        SoftText(np.ones((1, 2)), 3)  # type: ignore[arg-type]


def test_input_spec_takes_soft_text_only_where_declared_and_checks_the_width():
    rows = SoftText(np.zeros((2, 4)), "x")
    assert InputSpec.text(embed_dim=4).validate(["plain", rows])[1] is rows
    with pytest.raises(InputError, match="width 4|rows of 4"):
        InputSpec.text(embed_dim=4).validate([SoftText(np.zeros((2, 5)), "x")])
    with pytest.raises(InputError, match="text only"):
        InputSpec.text().validate([rows])
    with pytest.raises(ValueError, match="embed_dim"):
        InputSpec(kind="image", embed_dim=4)


def test_journal_keys_of_soft_inputs_depend_on_rows_and_text_and_never_equal_a_string():
    lm = WordTopicLM(exposure="top5")
    a = SoftText(np.zeros((2, 4)), "x")
    keys = lm.keys([a, SoftText(np.zeros((2, 4)), "x"), SoftText(np.ones((2, 4)), "x"), SoftText(np.zeros((2, 4)), "y"),
                    SoftText(np.zeros((1, 8)), "x"), "x"])
    assert keys[0] == keys[1], "the same bytes: the same query"
    assert len(set(keys[1:])) == 5, "rows, text, shape and plain-vs-soft each change the key"


def test_soft_refuses_a_text_only_oracle_naming_both():
    train, _, _ = split_dataset(heldout_task(("coding", "emotion")), (0.5, 0.2, 0.3), seed=0)
    lm = WordTopicLM(exposure="top5")
    assert not isinstance(lm, EmbeddingOracle)
    with pytest.raises(PromptError, match=r"transform 'soft'.*WordTopicLM.*text only"):
        Reprogrammer.build("soft", lm, "verbalizer", "cma", train, transform_params={"template": "{x} Topic:"},
                           mapping_params={"words": ("coding", "emotion")})
    with pytest.raises(PromptError, match="built from the oracle"):
        SoftPrompt.for_task(train, lm.input_spec)
    assert "soft" in TRANSFORMS and TRANSFORMS.lookup("soft").modality == "text"


@pytest.mark.parametrize("params, match", [
    ({"template": "no placeholder"}, "{x}"), ({"tokens": 0}, "tokens"), ({"dim": 2.5}, "dim"),
    ({"alpha": -1.0}, "alpha"), ({"sigma": math.inf}, "sigma"), ({"init": ["a"]}, "init")])
def test_soft_config_errors_say_what_to_change(params, match):
    with pytest.raises(PromptError, match=match):
        SoftPromptConfig(**params)


# ---------------------------------------------------------------- the real model
@pytest.fixture(scope="module")
def gemma_torch():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: bash scripts/setup.sh builds it")
    pytest.importorskip("transformers", reason="transformers is not installed: pip install 'blackbox-rp[text]'")
    pytest.importorskip("gguf", reason="gguf is not installed: pip install 'blackbox-rp[text]'")
    from oracles.torch_lm_oracle import TorchLMOracle

    return TorchLMOracle("gemma3-270m", exposure="top20", n_threads=2)


@pytest.fixture(scope="module")
def mr():
    from blackbox_rp.textdata import load_mr

    try:
        data = load_mr()
    except DatasetUnavailable as e:
        pytest.skip(str(e))
    return split_dataset(data, (6, 4, 4), seed=0)


def _logprobs(oracle, inputs):
    return oracle.with_exposure("logits")(inputs).scores.astype(np.float64)


@pytest.mark.slow
def test_torch_oracle_agrees_with_llama_cpp_on_plain_prompts(gemma_torch, mr):
    """Both read the same Q4_K_M weights; llama.cpp multiplies 8-bit-quantized activations, torch float32 ones.

    Measured on 48 MR prompts (2026-11-29): the top token agreed on 46 (the other two were near-ties), the
    top-5 sets shared at least 4 tokens, the log-probabilities of llama.cpp's top-5 tokens differed by at
    most 0.40 nats (median 0.15), the verbalizer margin log p(" positive") - log p(" negative") by at most
    0.35 (median 0.10; its sign agreed on all 48). The bounds below leave about 2x headroom; a wrong weight
    layout or a missing embedding scale moves them by nats.
    """
    from oracles.llama_cpp_oracle import LlamaCppOracle

    llama = LlamaCppOracle("gemma3-270m", exposure="logits", n_threads=2)
    prompts = ["The capital of France is"] + [TEMPLATE.lstrip().replace("{x}", t) for t in mr[0].x]
    a, b = _logprobs(gemma_torch, prompts), _logprobs(llama, prompts)
    assert gemma_torch.vocabulary.size == llama.vocabulary.size == a.shape[1]
    rows = np.arange(len(prompts))
    assert (b[rows, a.argmax(axis=1)] >= b.max(axis=1) - 0.8).all(), "torch's top token is llama's or a near-tie"
    top5 = np.argsort(-b, axis=1)[:, :5]
    assert np.abs(np.take_along_axis(a, top5, 1) - np.take_along_axis(b, top5, 1)).max() < 0.8
    v = gemma_torch.vocabulary
    neg, pos = v.single_token(" negative"), v.single_token(" positive")
    assert np.abs((a[:, pos] - a[:, neg]) - (b[:, pos] - b[:, neg])).max() < 0.7
    # the same answer shape and vocabulary as the llama.cpp oracle, through the same exposure
    r, q = gemma_torch(prompts[:1]), llama.with_exposure("top20")(prompts[:1])
    assert (r.kind, r.num_classes, r.indices.shape) == (q.kind, q.num_classes, q.indices.shape)
    assert v.tokens(r.indices[0, :3]) == llama.vocabulary.tokens(q.indices[0, :3]) == [" the", " a", " Paris"]


@pytest.mark.slow
def test_an_answer_barely_depends_on_the_batch_it_was_padded_into(gemma_torch, mr):
    """Alone or padded into a batch, the same input: equal to float32 rounding (measured: at most 1.9e-5
    nats over 16 MR prompts), and bit for bit equal when asked again the same way."""
    prompts = [TEMPLATE.lstrip().replace("{x}", t) for t in mr[0].x]
    together = _logprobs(gemma_torch, prompts + ["Hi"])
    alone = np.concatenate([_logprobs(gemma_torch, [p]) for p in prompts[:2]])
    assert np.abs(alone - together[:2]).max() < 1e-3
    assert np.array_equal(_logprobs(gemma_torch, prompts[:2]), _logprobs(gemma_torch, prompts[:2]))


@pytest.mark.slow
def test_zero_z_with_p0_from_words_answers_as_the_plain_prompt_of_those_words(gemma_torch, mr):
    v = gemma_torch.vocabulary
    t = SoftPrompt.for_oracle(mr[0], gemma_torch, seed=0, template=TEMPLATE, init=INIT)
    x = list(mr[2].x[:4])
    texts = [INIT + TEMPLATE.replace("{x}", s) for s in x]
    # hand check: the words' tokens followed by the template's tokens are the plain prompt's tokens
    # ("Decide the sentiment." then "\n" "Review" ":" ...), so the model reads the same sequence
    for s, text in zip(x, texts):
        assert v.encode(INIT) + v.encode(TEMPLATE.replace("{x}", s)) == v.encode(text)
    assert t.tokens == len(v.encode(INIT)) == 5
    soft = t.apply(t.init_theta(), x)
    assert all(isinstance(s, SoftText) and s.embeddings.shape == (5, 640) for s in soft)
    assert np.array_equal(soft[0].embeddings, gemma_torch.embed_tokens(v.encode(INIT)))
    assert np.array_equal(_logprobs(gemma_torch, soft), _logprobs(gemma_torch, texts))
    # any other z moves the answer
    z = np.zeros(t.space.dim)
    z[0] = 1.0
    assert not np.array_equal(_logprobs(gemma_torch, t.apply(z, x[:1])), _logprobs(gemma_torch, texts[:1]))


@pytest.mark.slow
def test_search_space_projection_scale_and_readable(gemma_torch, mr):
    t = SoftPrompt.for_oracle(mr[0], gemma_torch, seed=3, template=TEMPLATE, tokens=4)
    assert t.space.kind == "continuous" and t.space.dim == 500 and (t.space.low, t.space.high) == (-math.inf, math.inf)
    assert t.A.shape == (4 * 640, 500) and t.A.dtype == np.float32 and not t.p0.any()
    _, std = gemma_torch.embedding_stats()
    assert 0.9 < std < 1.2, "Gemma's scaled embedding table: entries of std ~1.03"
    assert t.projection_std == pytest.approx(std / math.sqrt(500))
    assert float(t.A.std()) == pytest.approx(t.projection_std, rel=0.01)
    # BBT's scale: z ~ N(0, 1) gives prompt entries of about the embedding table's spread
    z = np.random.default_rng(0).standard_normal(500)
    assert float(t.prompt_embeddings(z).std()) == pytest.approx(std, rel=0.1)
    assert np.array_equal(SoftPrompt.for_oracle(mr[0], gemma_torch, seed=3, template=TEMPLATE, tokens=4).A, t.A)
    assert not np.array_equal(SoftPrompt.for_oracle(mr[0], gemma_torch, seed=4, template=TEMPLATE, tokens=4).A, t.A)
    assert "not text" in t.readable(z) and t.readable(z).endswith(TEMPLATE)
    small = SoftPrompt.for_oracle(mr[0], gemma_torch, dim=20, template=TEMPLATE)
    assert small.space.dim == 20 and small.tokens == 5
    with pytest.raises(PromptError, match="tokens=5"):
        SoftPrompt.for_oracle(mr[0], gemma_torch, template=TEMPLATE, init=INIT, tokens=7)
    with pytest.raises(PromptError, match="does not accept"):
        SoftPrompt.for_oracle(mr[0], gemma_torch, slots=2)


def _build(oracle, train, seed=0, journal=None, budget=200):
    oracle = oracle.with_exposure("top20")
    oracle.ledger = Ledger(Budget(max_queries=budget, phases=("train", "validation")))
    oracle.journal = journal
    rp = Reprogrammer.build("soft", oracle, "verbalizer", "cma", train, seed=seed,
                            transform_params={"template": TEMPLATE, "init": INIT, "dim": 50},
                            mapping_params={"words": WORDS}, optimizer_params={"sigma0": 1.0, "popsize": 3},
                            max_steps=2, batch_size=3, eval_every=1)
    return rp, oracle


def _fit(oracle, mr, seed=0, journal=None, callback=None):
    train, val, _ = mr
    rp, lm = _build(oracle, train, seed, journal)
    return rp, rp.fit(train, val, callback=callback), lm


@pytest.fixture(scope="module")
def reference_fit(gemma_torch, mr):
    """One CMA-ES fit of a 50-d z on 6 reviews (2 steps of 3 candidates x 3 reviews): tiny, to stay fast."""
    return _fit(gemma_torch, mr)


@pytest.mark.slow
def test_cma_fit_counts_every_query_and_repeats_by_seed(gemma_torch, mr, reference_fit):
    train, val, _ = mr
    rp, res, lm = reference_fit
    assert rp.optimizer.name == "cma" and rp.transform.space.dim == 50 and res.steps == 2
    # the initial fit, a validation at steps 0, 1 and 2, 2 steps of 3 candidates x 3 reviews, the final
    # refit: each input one query
    want = len(train) + 3 * len(val) + 2 * 3 * 3 + len(train)
    tot = lm.ledger.total()
    assert tot.queries == res.queries == want == 42, (tot.queries, res.queries, want)
    assert tot.cache_hits == 0 and tot.calls == 1 + 3 + 2 + 1, "each of those batches is one call (max_batch 16)"
    assert "not text" in rp.describe()["theta_readable"]
    _, res2, _ = _fit(gemma_torch, mr)
    assert np.array_equal(res.theta, res2.theta) and res.val_accuracy == res2.val_accuracy
    # another seed: another projection and other candidates (built only: no queries)
    other, _ = _build(gemma_torch, train, seed=1)
    assert not np.array_equal(other.transform.A, rp.transform.A)


class _Crash(RuntimeError):
    pass


@pytest.mark.slow
def test_an_interrupted_fit_resumes_from_its_journal_to_the_same_prompt(gemma_torch, mr, tmp_path, reference_fit):
    _, ref, ref_lm = reference_fit
    journal = Journal(tmp_path / "run.sqlite")

    def crash(info):
        if info.step >= 1:
            raise _Crash("killed after step 1")

    with pytest.raises(_Crash):
        _fit(gemma_torch, mr, journal=journal, callback=crash)
    answered = len(journal)
    assert answered > 0
    _, res, lm = _fit(gemma_torch, mr, journal=journal)
    assert np.array_equal(res.theta, ref.theta) and res.val_accuracy == ref.val_accuracy
    tot, ref_tot = lm.ledger.total(), ref_lm.ledger.total()
    assert tot.queries == ref_tot.queries, "queries are the algorithm's, wherever the answers came from"
    assert tot.cache_hits >= answered and tot.calls < ref_tot.calls
