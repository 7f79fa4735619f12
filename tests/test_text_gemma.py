"""A discrete prompt learned through Gemma-3 270M (llama.cpp, in process): the real language-model path.

Skipped only when llama-cpp-python or the MR archive is missing (``bash scripts/setup.sh`` provides both).
Tiny on purpose (a few dozen reviews, two BDPL steps): it checks that the pieces fit on the real model,
not what accuracy they reach — benchmarks/text.py measures that.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before llama_cpp loads OpenMP (shared cores)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: bash scripts/setup.sh builds it")

from blackbox_rp.data import DatasetUnavailable, split_dataset  # noqa: E402
from blackbox_rp.objective import accuracy_of  # noqa: E402
from blackbox_rp.reprogram import Reprogrammer  # noqa: E402
from blackbox_rp.textdata import load_mr  # noqa: E402

TEMPLATE = "Review: {x}\nSentiment:"


@pytest.fixture(scope="module")
def mr():
    try:
        data = load_mr()
    except DatasetUnavailable as e:
        pytest.skip(str(e))
    return split_dataset(data, (24, 12, 24), seed=0)


@pytest.fixture(scope="module")
def gemma():
    from oracles.llama_cpp_oracle import LlamaCppOracle

    return LlamaCppOracle("gemma3-270m", exposure="top20", n_threads=2)


@pytest.mark.slow
def test_bdpl_learns_a_prompt_through_gemma_and_the_prompt_reproduces_its_accuracy(mr, gemma):
    from oracles.llama_cpp_oracle import LlamaCppOracle

    train, val, test = mr
    rp = Reprogrammer.build("discrete", gemma, "verbalizer", "bdpl", train,
                            transform_params={"template": TEMPLATE, "slots": 2, "num_candidates": 10},
                            mapping_params={"words": ("negative", "positive")},
                            optimizer_params={"samples": 2}, max_steps=2, batch_size=4, eval_every=1)
    assert rp.mapping.describe()["label_tokens"] == [[" negative"], [" positive"]]
    res = rp.fit(train, val)
    assert res.steps == 2
    ev = rp.evaluate(test)
    prompt = rp.describe()["theta_readable"]
    assert prompt.startswith("Review:") and prompt.endswith("\nSentiment:")
    # the prompt string alone, through another oracle on the same model: the same answers, the same accuracy
    other = LlamaCppOracle("gemma3-270m", exposure="top20", n_threads=2)
    answers = other([prompt.replace("{x}", t) for t in test.x])
    assert accuracy_of(rp.mapping.predict(answers), test.y) == ev["accuracy"]
    assert other.ledger.total().queries == len(test)


@pytest.mark.slow
def test_text_probe_on_gemma_reads_a_compact_index_of_returned_tokens(mr, gemma):
    from blackbox_rp.mapping import make_mapping

    train, _, test = mr
    r = gemma([TEMPLATE.replace("{x}", t) for t in train.x])
    assert r.kind == "topk" and r.num_classes == 262_144 and r.indices.shape == (len(train), 20)
    probe = make_mapping("token-linear", gemma.num_classes, 2).fit(r, train.y)
    assert 20 <= len(probe.ids) <= 20 * len(train), "features: the distinct tokens shown in training"
    assert probe.weight.shape == (2, len(probe.ids))
    assert np.isfinite(probe.scores(gemma([TEMPLATE.replace("{x}", t) for t in test.x]))).all()
