"""Text tasks through the one run pipeline: `blackbox-rp reprogram --transform discrete` on a token oracle.

The model is tests/token_lm.py's WordTopicLM (a real trained scikit-learn model over a word vocabulary),
named as a ``module:factory`` spec like any user model; the data is the bundled chatterbot topics.
"""

from __future__ import annotations

import json

import pytest

from blackbox_rp.cli import main

TEXT = ["reprogram", "--model", "token_lm:WordTopicLM", "--data", "chatterbot-topics:coding,emotion",
        "--transform", "discrete", "--mapping", "verbalizer", "--optimizer", "bdpl", "--exposure", "top5",
        "--transform-param", "template=Text: {x} Topic:", "--transform-param", "slots=2",
        "--transform-param", "num_candidates=10", "--mapping-param", 'words=["coding","emotion"]',
        "--split", "40,20,40", "--batch-size", "8", "--eval-every", "2", "--no-progress"]


def test_a_text_run_learns_a_readable_prompt_beside_the_hand_written_one_and_the_text_probe(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(TEXT + ["--budget", "400", "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["hand_prompt"] == "Text: {x} Topic:"
    assert "{x}" in r["prompt"] and r["prompt"].startswith("Text: ")
    assert r["canvas"] is None and r["split"]["dataset"].startswith("chatterbot")
    by_name = {b["name"]: b for b in r["baselines"]}
    hand = by_name["hand-written prompt + verbalizer mapping"]
    probe = by_name["text probe (hand-written prompt + token-linear)"]
    for b in (hand, probe):
        assert b["skipped"] is None and 0.0 <= b["accuracy"] <= 1.0
    assert hand["accuracy"] > 0.6  # the topic words are in the vocabulary: zero-shot reads them
    assert by_name["no prompt + linear probe"]["skipped"].startswith("skipped: image-only")
    assert by_name["no prompt + linear probe"]["accuracy"] is None
    led = r["ledger"]
    assert led["train"]["queries"] + led["validation"]["queries"] <= 400
    assert led["baseline"]["queries"] == 40 + 40  # θ₀ answers on train and test, shared by both baselines
    assert led["test"]["queries"] == 40
    if r["kept_theta0"]:
        assert r["prompt"] == r["hand_prompt"]
    printed = capsys.readouterr().out
    assert "learned prompt:" in printed and "hand-written prompt:" in printed and "text probe" in printed
    # the same command again reads the finished run back: no query
    assert main(TEXT + ["--budget", "400", "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text()) == r
    capsys.readouterr()
    # apply takes texts for a text run (tests/test_apply_text.py): images are refused in one line
    assert main(["apply", str(out), "--data", "digits"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the run reprograms a text model but --data digits is image data" in err[0], err


@pytest.mark.parametrize("extra, says", [
    (["--transform", "lowdim"], "transform lowdim makes image inputs but model token_lm:WordTopicLM takes"),
    (["--size", "64"], "transform.size (--size) sets an image canvas"),
    (["--data", "digits"], "digits"),
])
def test_text_refusals_are_one_line_before_any_query(tmp_path, capsys, extra, says):
    out = tmp_path / "run"
    assert main(TEXT + ["--budget", "400", "--out", str(out)] + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert not out.exists()  # nothing claimed, so nothing was queried


def test_an_image_model_refuses_the_text_prompt_in_one_line(tmp_path, capsys):
    assert main(["reprogram", "--model", "fmnist-cnn", "--data", "digits", "--transform", "discrete",
                 "--mapping", "flm", "--optimizer", "bdpl", "--steps", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "use transform pad, full, lowdim or coordinator" in err[0], err


def test_a_readout_run_shows_the_zero_shot_verbalizer_or_says_why_it_cannot(tmp_path, capsys):
    import csv

    from blackbox_rp.textdata import load_text_target

    d = load_text_target("chatterbot-topics:coding,emotion")
    names = {"coding": "computer code", "emotion": "human feelings"}  # not one token each: no zero-shot reading
    with open(tmp_path / "t.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows((x, names[d.classes[y]]) for x, y in zip(d.x, d.y))
    base = [a for a in TEXT if a not in ("--mapping-param", 'words=["coding","emotion"]')]
    base[base.index("verbalizer")] = "token-linear"
    for data, out in (("chatterbot-topics:coding,emotion", "named"), (str(tmp_path / "t.csv"), "phrases")):
        args = list(base)
        args[args.index("--data") + 1] = data
        assert main(args + ["--budget", "300", "--steps", "1", "--out", str(tmp_path / out)]) == 0
        r = json.loads((tmp_path / out / "results.json").read_text())
        by_name = {b["name"]: b for b in r["baselines"]}
        probe = by_name.pop("text probe (hand-written prompt + token-linear)")
        assert probe["skipped"] is None and 0.0 <= probe["accuracy"] <= 1.0
        zero = [b for name, b in by_name.items() if name.startswith("hand-written prompt + verbalizer, zero-shot")]
        assert len(zero) == 1 and zero[0]["mapping"] == "verbalizer"
        if out == "named":  # the topic names are words of the model's vocabulary: read zero-shot, for free
            assert zero[0]["skipped"] is None and zero[0]["accuracy"] > 0.6
            assert r["ledger"]["baseline"]["queries"] == 40 + 40
        else:
            assert zero[0]["skipped"].startswith("skipped: label word") and zero[0]["accuracy"] is None
        assert set(r["gain_over_baselines"]) == {b["name"] for b in r["baselines"]}
    capsys.readouterr()


@pytest.mark.parametrize("test_acc, mapping, kept, says", [
    (0.63, "token-linear", False, "the prompt search did NOT beat the text probe on this split (-1.0 points)"),
    (0.66, "token-linear", False, "the learned prompt beats the text probe by +2.0 points on this split (the same"),
    (0.60, "verbalizer", False, "the learned prompt + verbalizer stays under the text probe on this split (-4.0"),
    (0.64, "token-linear", True, "selection kept θ₀ (the hand-written prompt)"),
])
def test_a_text_summary_says_plainly_what_the_search_added_over_the_text_probe(test_acc, mapping, kept, says):
    from pathlib import Path

    from blackbox_rp.experiments.run import summary_lines

    probe = {"name": "text probe (hand-written prompt + token-linear)", "mapping": "token-linear",
             "accuracy": 0.64, "skipped": None}
    zero = {"name": "hand-written prompt + verbalizer, zero-shot (label words: negative/positive)",
            "mapping": "verbalizer", "accuracy": 0.555, "skipped": None,
            "note": "a label word was among the top-20 tokens of 40% of the test answers"}
    r = {"baselines": [zero, probe], "val_accuracy": 0.65, "test_accuracy": test_acc, "steps": 21,
         "best_step": 0 if kept else 10, "kept_theta0": kept, "prompt": "Review: {x}\nSentiment:" if kept else
         "Review: their films {x}\nSentiment:", "hand_prompt": "Review: {x}\nSentiment:",
         "gain_over_baselines": {b["name"]: test_acc - b["accuracy"] for b in (zero, probe)},
         "config": {"mapping": {"name": mapping}}, "stop_reason": None, "wall_seconds": 1.0,
         "ledger": {p: {"queries": 0, "calls": 0, "cache_hits": 0} for p in
                    ("train", "validation", "test", "baseline", "total")}}
    lines = summary_lines(r, Path("run"))
    assert any(says in line for line in lines), lines
    assert lines[1] == "  (a label word was among the top-20 tokens of 40% of the test answers)"  # under its baseline
    assert f"learned prompt + {mapping}, black-box (test):" in "\n".join(lines)
    if kept:  # θ₀ kept: the comparison with the probe is the readout's alone, and no verdict on the search
        assert not any("prompt search" in line or "beats the text probe" in line for line in lines)


def test_a_verbalizer_read_from_the_top_k_says_how_often_a_label_word_was_shown():
    import numpy as np

    from blackbox_rp.exposure import Response
    from blackbox_rp.experiments.text_baselines import label_word_note
    from blackbox_rp.mapping import make_mapping
    from blackbox_rp.vocab import ListVocabulary

    v = ListVocabulary(["<unk>", " bad", " good", " the", " a"])
    m = make_mapping("verbalizer", v.size, 2, vocabulary=v, words=("bad", "good"))
    top2 = lambda rows: Response("topk", v.size, np.array([r[0] for r in rows]), np.full((len(rows), 2), 0.4),  # noqa: E731
                                 np.array(rows))
    assert label_word_note(m, top2([[1, 3], [3, 2]])) is None  # every answer shows one
    note = label_word_note(m, top2([[1, 3], [3, 4], [4, 3], [0, 3]]))
    assert note.startswith("a label word was among the top-2 tokens of 25% of the test answers")
    rows = m.predict(top2([[3, 4], [4, 3]]))
    assert rows.tolist() == [0, 0]  # the tie rule the note warns about
    assert label_word_note(m, Response.from_probs(np.full((2, v.size), 0.2))) is None  # all classes shown
