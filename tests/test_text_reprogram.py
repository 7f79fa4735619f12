"""Text reprogramming end to end: Reprogrammer.build("discrete", token oracle, token mapping, categorical optimizer).

The token oracle is tests/token_lm.py's WordTopicLM (a trained scikit-learn model over a word vocabulary);
tests/test_text_gemma.py runs the same path on Gemma-3 270M through llama.cpp.
"""

from __future__ import annotations

import functools
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from blackbox_rp import Journal
from blackbox_rp.data import split_dataset
from blackbox_rp.objective import accuracy_of
from blackbox_rp.optim import ConfigError
from blackbox_rp.reprogram import Reprogrammer
from killable import run_killable
from token_lm import WordTopicLM, heldout_task, topic_classifier

TOPICS3 = ("coding", "emotion", "psychology")
PROMPT = {"template": "Text: {x} Topic:", "slots": 2, "candidates": "pmi", "num_candidates": 12}


@pytest.fixture(scope="module")
def splits():
    return split_dataset(heldout_task(TOPICS3), (0.5, 0.2, 0.3), seed=0)


def build(train, mapping="verbalizer", optimizer="bdpl", exposure="top5", **config):
    lm = WordTopicLM(exposure=exposure)
    mp = {"words": TOPICS3} if mapping == "verbalizer" else {}
    cfg = {"max_steps": 4, "batch_size": 12, "eval_every": 2, **config}
    return lm, Reprogrammer.build("discrete", lm, mapping, optimizer, train, transform_params=PROMPT,
                                  mapping_params=mp, **cfg)


def test_discrete_verbalizer_bdpl_runs_end_to_end_and_the_prompt_is_a_reusable_string(splits):
    train, val, test = splits
    lm, rp = build(train)
    assert rp.transform.space.kind == "categorical" and rp.optimizer.name == "bdpl"
    res = rp.fit(train, val)
    assert res.steps == 4 and 0.0 <= res.val_accuracy <= 1.0
    prompt = rp.describe()["theta_readable"]
    assert isinstance(prompt, str) and prompt == rp.transform.readable(res.theta) and "{x}" in prompt
    ev = rp.evaluate(test)
    assert ev["queries"] == len(test) and ev["calls"] >= 1
    # the learned prompt, used without blackbox_rp's transform: fill {x}, ask a fresh oracle, read the
    # label words — the same accuracy
    fresh = WordTopicLM(exposure="top5")
    answers = fresh([prompt.replace("{x}", t) for t in test.x], phase="test")
    assert accuracy_of(rp.mapping.predict(answers), test.y) == ev["accuracy"]
    d = rp.describe()["transform"]
    assert d["template"] == PROMPT["template"] and d["init_prompt"] == "Text: {x} Topic:"
    assert len(d["options"]) == 2 and d["options"][0][0] == ""


@pytest.mark.parametrize("mapping", ["verbalizer", "token-flm", "token-blm", "token-blm+", "token-linear"])
def test_every_token_mapping_reprograms(splits, mapping):
    train, val, test = splits
    _, rp = build(train, mapping=mapping, optimizer="greedy", optimizer_params={"popsize": 3}, max_steps=2)
    rp.fit(train, val)
    acc = rp.evaluate(test)["accuracy"]
    assert acc > 1 / 3 + 0.1, f"{mapping}: {acc} is not above chance (3 classes) on a model that knows the topics"


@pytest.mark.parametrize("optimizer", ["random", "ng:DiscreteOnePlusOne", "ng:PortfolioDiscreteOnePlusOne"])
def test_categorical_optimizers_plug_into_the_reprogrammer(splits, optimizer):
    train, val, _ = splits
    _, rp = build(train, optimizer=optimizer, optimizer_params={"num_workers": 4} if optimizer.startswith("ng:")
                  else {"popsize": 4}, max_steps=2)
    res = rp.fit(train, val)
    assert rp.transform.space.contains(res.theta)
    rp.optimizer.close()


@pytest.mark.parametrize("optimizer", ["zo-adam", "cma"])
def test_a_continuous_only_optimizer_is_refused_when_the_text_run_is_built(splits, optimizer):
    with pytest.raises(ConfigError, match=f"optimizer '{optimizer}' searches continuous spaces; this θ is "
                                          f"categorical"):
        build(splits[0], optimizer=optimizer)


def test_a_class_score_oracle_with_a_token_mapping_is_refused_when_the_run_is_built(splits):
    from blackbox_rp.mapping.tokens import TokenMappingError

    with pytest.raises(TokenMappingError, match="answers class scores"):
        Reprogrammer.build("discrete", topic_classifier(), "verbalizer", "bdpl", splits[0], transform_params=PROMPT,
                           mapping_params={"words": TOPICS3})


RUN = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[2])
    from blackbox_rp.data import split_dataset
    from blackbox_rp.reprogram import Reprogrammer
    from token_lm import WordTopicLM, heldout_task
    train, val, test = split_dataset(heldout_task(("coding", "emotion", "psychology")), (0.5, 0.2, 0.3), seed=0)
    lm = WordTopicLM(exposure="top5", journal=sys.argv[1], max_batch=8)
    variant = json.loads(sys.argv[3])
    rp = Reprogrammer.build("discrete", lm, variant["mapping"], variant["optimizer"], train,
                            transform_params=variant["transform"], mapping_params=variant["mapping_params"],
                            optimizer_params=variant["optimizer_params"], max_steps=10, batch_size=12, eval_every=3,
                            seed=2, **variant["fit"])
    r = rp.fit(train, val, callback=lambda s: print("step", s.step, flush=True))
    t = lm.ledger.total()
    print(json.dumps({"theta": r.theta.tolist(), "prompt": rp.transform.readable(r.theta), "val": r.val_accuracy,
                      "test": rp.evaluate(test)["accuracy"], "queries": t.queries, "calls": t.calls,
                      "cache_hits": t.cache_hits}), flush=True)
""")


#: BDPL with a fixed verbalizer; and the text demo's recipe — slots that end the prompt, greedy edits, the
#: token-linear readout fitted to every candidate (refit="candidate": its per-candidate fits must replay too)
RESUME_VARIANTS = {
    "bdpl-verbalizer": {"mapping": "verbalizer", "optimizer": "bdpl",
                        "transform": {"template": "Text: {x} Topic:", "slots": 3, "num_candidates": 12},
                        "mapping_params": {"words": ["coding", "emotion", "psychology"]},
                        "optimizer_params": {"samples": 4, "lr": 1.0}, "fit": {}},
    "greedy-candidate": {"mapping": "token-linear", "optimizer": "greedy",
                         "transform": {"template": "Text: {x}\n{p0} {p1}", "init": ["", "Topic:"],
                                       "candidates": "freq", "num_candidates": 12},
                         "mapping_params": {}, "optimizer_params": {"popsize": 3},
                         "fit": {"refit": "candidate", "candidate_folds": 3}},
}


def _run(journal: Path, variant: str, kill_after: int | None = None) -> dict | None:
    return run_killable(RUN, str(journal), str(Path(__file__).parent), json.dumps(RESUME_VARIANTS[variant]),
                        kill_after=kill_after, seconds=240)


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(RESUME_VARIANTS))
def test_killed_text_fit_resumes_to_the_same_prompt_without_paying_again(tmp_path, variant):
    run = functools.partial(_run, variant=variant)
    ref = run(tmp_path / "ref.sqlite")
    journal = tmp_path / "killed.sqlite"
    assert run(journal, kill_after=4) is None
    with Journal(journal) as j:
        answered, calls_before = len(j), j.stats()["calls_logged"]
    assert answered > 0 and calls_before > 0
    resumed = run(journal)
    assert (resumed["theta"], resumed["prompt"], resumed["val"], resumed["test"]) == \
        (ref["theta"], ref["prompt"], ref["val"], ref["test"])
    assert resumed["queries"] == ref["queries"], "queries are the algorithm's, wherever answers came from"
    assert resumed["cache_hits"] >= answered, "every answer journaled before the kill is replayed"
    # no completed call is paid again: at most the one in flight at the kill is re-sent
    assert ref["calls"] - calls_before <= resumed["calls"] <= ref["calls"] - calls_before + 1
    again = run(journal)
    assert again["prompt"] == ref["prompt"] and again["calls"] == 0
