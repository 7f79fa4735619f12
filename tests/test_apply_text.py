"""`blackbox-rp apply` on text runs: the run's prompt and mapping rebuilt the way the run built them, applied
to new texts through the run's model, with the queries counted; every misuse refused in one line before any
query.

The fast tests use tests/token_lm.py's WordTopicLM (a real trained scikit-learn model over a 309-token
vocabulary) on the bundled chatterbot topics; the slow one runs Gemma-3 270M in process (llama.cpp) on MR
and checks that apply on the run's own test texts gives results.json's test accuracy exactly.
"""

from __future__ import annotations

import csv
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before llama_cpp loads OpenMP (shared cores)

import pytest  # noqa: E402

from blackbox_rp.cli import main  # noqa: E402
from blackbox_rp.data import split_dataset  # noqa: E402
from blackbox_rp.experiments.apply import ApplyError, apply_run  # noqa: E402
from blackbox_rp.experiments.config import load  # noqa: E402
from blackbox_rp.textdata import load_text_target  # noqa: E402
from token_lm import WordTopicLM  # noqa: E402

#: run classes in an order that is not the sorted one, so labels read from a file must be matched by name
DATA = "chatterbot-topics:emotion,coding"
TEXT = ["reprogram", "--model", "test_apply_text:counting_lm", "--data", DATA,
        "--transform", "discrete", "--mapping", "token-linear", "--optimizer", "bdpl", "--exposure", "top5",
        "--transform-param", "template=Text: {x} Topic:", "--transform-param", "slots=2",
        "--transform-param", "num_candidates=10", "--split", "40,20,40", "--batch-size", "8",
        "--eval-every", "2", "--budget", "300", "--no-progress"]


class CountingLM(WordTopicLM):
    """WordTopicLM counting the texts it evaluates, across copies (so a test sees whether a query was sent)."""

    evaluated = 0

    def _answer(self, inputs, call):
        CountingLM.evaluated += len(inputs)
        return super()._answer(inputs, call)


def counting_lm() -> CountingLM:
    return CountingLM()


def _write_texts(path, texts, labels):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(zip(texts, labels))
    return path


def _test_split(run_dir):
    cfg = load(run_dir / "config.toml")
    return split_dataset(load_text_target(cfg.task.data), cfg.task.split, cfg.task.seed)[2]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("apply") / "run"
    assert main(TEXT + ["--out", str(out)]) == 0
    return out


def test_apply_on_the_runs_own_test_texts_gives_its_test_accuracy_and_counts_the_queries(text_run, tmp_path, capsys):
    r = json.loads((text_run / "results.json").read_text())
    test = _test_split(text_run)
    assert r["classes"] == ["emotion", "coding"]
    # the labels as names, in a file whose sorted classes (coding, emotion) are not the run's order
    data = _write_texts(tmp_path / "test.csv", test.x, [test.classes[y] for y in test.y])
    capsys.readouterr()
    before = CountingLM.evaluated
    assert main(["apply", str(text_run), "--data", str(data), "--out", str(tmp_path / "pred.csv")]) == 0
    printed = capsys.readouterr().out
    assert CountingLM.evaluated - before == len(test)
    assert f"spent {len(test)} queries / 1 calls" in printed and repr(r["prompt"]) in printed
    assert f"accuracy against the given labels {100 * r['test_accuracy']:.1f}%" in printed
    with open(tmp_path / "pred.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["text"] for row in rows] == list(test.x)
    assert [int(row["label"]) for row in rows] == test.y.tolist()  # run's class indices, matched by name
    assert sum(row["prediction"] == row["label"] for row in rows) == round(r["test_accuracy"] * len(test))
    # the library call gives the same, exactly
    got = apply_run(text_run, test)
    assert got["accuracy"] == r["test_accuracy"] and got["queries"] == len(test) and got["calls"] == 1
    assert got["prompt"] == r["prompt"] and (got["labels"] == test.y).all()


@pytest.mark.parametrize("args, says", [
    (["--data", "digits"], "the run reprograms a text model but --data digits is image data; give texts"),
    (["--data", "THREE"], "the data has 3 classes ['coding', 'emotion', 'money'] but the run learned 2"),
    (["--data", "TEST", "--model", "token_lm:ReorderedWordTopicLM"],
     "indexes token ids of another vocabulary than oracle token_lm:ReorderedWordTopicLM's"),
    (["--data", "TEST", "--model", "chatterbot-topics"], "but oracle chatterbot-topics declares none"),
    (["--data", "TEST", "--model", "fmnist-cnn"], "makes text inputs but oracle fmnist-cnn takes float32"),
])
def test_misuse_is_one_line_before_any_query(text_run, tmp_path, capsys, args, says):
    test = _test_split(text_run)
    files = {"TEST": _write_texts(tmp_path / "t.csv", test.x, [test.classes[y] for y in test.y]),
             "THREE": _write_texts(tmp_path / "3.csv", ["a program in python", "I feel sad", "my bank account"],
                                   ["coding", "emotion", "money"])}
    args = [str(files.get(a, a)) for a in args]
    before = CountingLM.evaluated
    capsys.readouterr()
    assert main(["apply", str(text_run)] + args + ["--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert CountingLM.evaluated == before and not (tmp_path / "p.csv").exists()


def test_a_theta_that_is_not_the_learned_prompt_is_refused_before_any_query(text_run, tmp_path):
    import shutil

    import numpy as np

    copy = tmp_path / "copy"
    shutil.copytree(text_run, copy)
    theta = np.load(copy / "theta.npy")
    np.save(copy / "theta.npy", (theta + 1) % 3)  # another valid prompt of the same slots
    before = CountingLM.evaluated
    with pytest.raises(ApplyError, match="the rebuilt prompt reads .* not the learned"):
        apply_run(copy, _test_split(text_run))
    # a run whose data gave other candidate words than the rebuilt ones (its data changed since)
    np.save(copy / "theta.npy", theta)
    r = json.loads((copy / "results.json").read_text())
    r["reprogrammer"]["transform"]["options"][0][1] = "zzz"
    (copy / "results.json").write_text(json.dumps(r))
    with pytest.raises(ApplyError, match="is not the one results.json records"):
        apply_run(copy, _test_split(text_run))
    assert CountingLM.evaluated == before


def test_an_image_run_refuses_texts_in_one_line(tmp_path, capsys):
    run = tmp_path / "img"
    assert main(["reprogram", "--model", "fmnist-cnn", "--data", "digits", "--split", "60,30,30", "--mapping", "flm",
                 "--optimizer", "spsa", "--steps", "1", "--batch-size", "8", "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["apply", str(run), "--data", "chatterbot-topics"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the run reprograms an image model but --data chatterbot-topics is text data" in err[0]
    with pytest.raises(ApplyError, match="the data holds texts"):
        apply_run(run, load_text_target("chatterbot-topics:coding,emotion"))
    # and its own kind of data still works: the transform rebuilt from the run's split, θ and ω applied
    r = apply_run(run, "digits", limit=30)
    assert r["queries"] == 30 and r["inputs"] is None and len(r["pred"]) == 30


@pytest.mark.slow
def test_gemma_apply_reproduces_the_runs_test_accuracy_exactly(tmp_path, capsys):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: bash scripts/setup.sh builds it")
    from blackbox_rp.data import DatasetUnavailable

    try:
        load_text_target("mr")
    except DatasetUnavailable as e:
        pytest.skip(str(e))
    run = tmp_path / "gemma"
    assert main(["reprogram", "--model", "gemma3-270m", "--data", "mr", "--transform", "discrete",
                 "--transform-param", "template=Review: {x}\nSentiment:", "--transform-param", "slots=2",
                 "--transform-param", "num_candidates=10", "--mapping", "token-linear", "--optimizer", "bdpl",
                 "--opt", "samples=2", "--exposure", "top20", "--split", "8,8,16", "--batch-size", "4",
                 "--eval-every", "1", "--budget", "40", "--no-progress", "--out", str(run)]) == 0
    r = json.loads((run / "results.json").read_text())
    test = _test_split(run)
    data = _write_texts(tmp_path / "mr_test.csv", test.x, [test.classes[y] for y in test.y])
    capsys.readouterr()
    assert main(["apply", str(run), "--data", str(data), "--out", str(tmp_path / "pred.csv")]) == 0
    printed = capsys.readouterr().out
    assert f"spent {len(test)} queries" in printed
    got = apply_run(run, str(data))
    assert got["accuracy"] == r["test_accuracy"], (got["accuracy"], r["test_accuracy"], r["prompt"])
    assert got["queries"] == len(test) and got["calls"] >= 1 and got["prompt"] == r["prompt"]


@pytest.mark.slow
def test_a_text_run_applies_through_a_served_copy_of_its_model_with_the_same_predictions(tmp_path, monkeypatch):
    """The run's model in process, then the same model behind `blackbox-rp serve` (a real HTTP server on
    loopback, with a key): the same predictions, each path's queries and calls counted."""
    from oracles.server import OracleServer
    from oracles.text_models import chatterbot_topics

    run = tmp_path / "clf"
    assert main(["reprogram", "--model", "chatterbot-topics", "--data", DATA, "--transform", "discrete",
                 "--transform-param", "template=Text: {x} Topic:", "--transform-param", "slots=2",
                 "--transform-param", "num_candidates=10", "--mapping", "linear", "--optimizer", "bdpl",
                 "--split", "40,20,40", "--batch-size", "8", "--eval-every", "2", "--steps", "2",
                 "--no-progress", "--out", str(run)]) == 0
    r = json.loads((run / "results.json").read_text())
    test = _test_split(run)
    here = apply_run(run, test)
    assert here["accuracy"] == r["test_accuracy"] and here["queries"] == len(test)
    key = "sk-apply-text-0f1e2d"
    monkeypatch.setenv("BBRP_APPLY_KEY", key)
    with OracleServer(chatterbot_topics(), api_keys=[key]) as srv:
        there = apply_run(run, test, model=srv.url, api_key_env="BBRP_APPLY_KEY", batch=16)
    assert there["oracle"] != here["oracle"] and there["queries"] == len(test) and there["calls"] == 3
    assert (there["pred"] == here["pred"]).all() and there["accuracy"] == r["test_accuracy"]


def test_reprogrammer_build_takes_a_built_transform_and_refuses_parameters_beside_it():
    from blackbox_rp.reprogram import Reprogrammer
    from blackbox_rp.transforms.text_prompt import DiscretePrompt

    train = split_dataset(load_text_target(DATA), (40, 20, 40), 0)[0]
    lm = WordTopicLM(exposure="top5")
    t = DiscretePrompt.for_task(train, lm.input_spec, template="Text: {x} Topic:", slots=2, num_candidates=10)
    rp = Reprogrammer.build(t, lm, "token-linear", "bdpl", train)
    assert rp.transform is t
    with pytest.raises(ValueError, match="the transform is given built"):
        Reprogrammer.build(t, lm, "token-linear", "bdpl", train, transform_params={"slots": 3})
