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


def test_the_text_demo_falls_back_to_a_task_its_label_words_name():
    cfg = demo_config(quick=True, text=True, mr=False)
    data = load_text_target(cfg.task.data)
    assert tuple(cfg.mapping.params["words"]) == data.classes
    assert "{x}" in cfg.transform.params["template"] and cfg.transform.name == "discrete"
    assert demo_config(quick=False, text=True).task.data == "mr"


@pytest.mark.slow
def test_demo_text_quick_prints_both_prompts_and_replays_for_free(tmp_path, capsys):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: bash scripts/setup.sh builds it")
    out = tmp_path / "demo"
    assert main(["demo", "--text", "--quick", "--out", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    if not mr_available():
        assert "MR's archive is absent" in captured.err
    for line in ("hand-written prompt + verbalizer mapping:", "text probe (hand-written prompt + token-linear):",
                 "hand-written prompt:", "learned prompt:", "prompt, black-box (test):", "spent:"):
        assert line in captured.out
    r = json.loads((out / "results.json").read_text())
    assert r["config"]["oracle"]["model"] == "gemma3-270m"
    assert r["hand_prompt"] == r["config"]["transform"]["template"]
    assert "{x}" in r["prompt"] and repr(r["prompt"]) in captured.out
    measured = [b for b in r["baselines"] if not b["skipped"]]
    assert len(measured) == 2 and all(0.0 <= b["accuracy"] <= 1.0 for b in measured)
    led = r["ledger"]
    assert led["train"]["queries"] + led["validation"]["queries"] <= 200 and led["train"]["calls"] > 0
    (out / "results.json").unlink()  # as if killed just before the end
    assert main(["resume", str(out), "--no-progress"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["ledger"]["total"]["calls"] == 0
    assert again["prompt"] == r["prompt"] and again["test_accuracy"] == r["test_accuracy"]
    assert again["baselines"] == r["baselines"]
