"""`blackbox-rp demo --text --quick`: Gemma-3 270M (llama.cpp, in process) learns a discrete prompt for MR through
the one run pipeline; resumed from its journal it reaches the same prompt without a call.

Skipped when llama-cpp-python is not importable (``bash scripts/setup.sh`` builds it). Without MR's archive the
demo runs on the chatterbot topics and says so (the fast test below checks that recipe is a valid task).
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before llama_cpp loads OpenMP (shared cores)

import pytest  # noqa: E402

from blackbox_rp.cli import main  # noqa: E402
from blackbox_rp.commands.demo import demo_config, mr_available  # noqa: E402
from blackbox_rp.textdata import load_text_target  # noqa: E402


def test_the_text_demo_recipe_and_its_fallback_are_valid_tasks():
    full = demo_config(quick=False, text=True)
    assert full.task.data == "mr" and full.mapping.name == "token-linear" and full.optimizer.name == "greedy"
    assert full.fit.refit == "candidate"
    cfg = demo_config(quick=True, text=True, mr=False)
    data = load_text_target(cfg.task.data)
    # the zero-shot baseline reads the class names as label words: plain words, one per class
    assert all(c.isalpha() for c in data.classes) and data.classes == ("coding", "emotion")
    assert "{x}" in cfg.transform.params["template"] and cfg.transform.name == "discrete"


@pytest.mark.slow
def test_demo_text_quick_prints_the_three_readings_and_replays_for_free(tmp_path, capsys):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: bash scripts/setup.sh builds it")
    out = tmp_path / "demo"
    assert main(["demo", "--text", "--quick", "--out", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    mr = mr_available()
    if not mr:
        assert "MR's archive is absent" in captured.err
    words = "negative/positive" if mr else "coding/emotion"
    for line in (f"hand-written prompt + verbalizer, zero-shot (label words: {words}):",
                 "text probe (hand-written prompt + token-linear):", "hand-written prompt:", "learned prompt:",
                 "learned prompt + token-linear, black-box (test):",
                 "learned prompt over baselines (paired: same seed and split):", "spent:"):
        assert line in captured.out
    r = json.loads((out / "results.json").read_text())
    assert r["config"]["oracle"]["model"] == "gemma3-270m"
    assert r["hand_prompt"] == ("Review: {x}\nSentiment:" if mr else "Text: {x}\nTopic:")
    assert "{x}" in r["prompt"] and repr(r["prompt"]) in captured.out
    measured = [b for b in r["baselines"] if not b["skipped"]]
    assert [b["mapping"] for b in measured] == ["verbalizer", "token-linear"]
    assert all(0.0 <= b["accuracy"] <= 1.0 for b in measured)
    assert set(r["gain_over_baselines"]) == {b["name"] for b in measured}
    # θ₀ kept is said plainly, and then the learned prompt is the hand-written one
    assert r["kept_theta0"] == ("selection kept θ₀ (the hand-written prompt)" in captured.out)
    if r["kept_theta0"]:
        assert r["prompt"] == r["hand_prompt"]
    led = r["ledger"]
    assert led["train"]["queries"] + led["validation"]["queries"] <= 200 and led["train"]["calls"] > 0
    assert led["baseline"]["queries"] == 16 + 32  # θ₀ on train and test, shared by both baselines
    (out / "results.json").unlink()  # as if killed just before the end
    assert main(["resume", str(out), "--no-progress"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["ledger"]["total"]["calls"] == 0
    assert again["prompt"] == r["prompt"] and again["test_accuracy"] == r["test_accuracy"]
    assert again["baselines"] == r["baselines"]
