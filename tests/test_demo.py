"""`blackbox-rp demo --quick`: the README's main command runs end to end on the real ImageNet model and
writes its run directory; run again it reads the finished run back, and resumed from its journal (results
removed, as if killed before the end) it reaches the same result without a call."""

from __future__ import annotations

import json

from blackbox_rp.cli import main


def test_demo_quick_writes_results_and_curve_then_replays_for_free(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for line in ("no prompt + linear probe:", "no prompt + flm mapping:",
                 "no prompt + linear probe on 2 views (32+48 px):", "prompt, black-box (test):", "spent:"):
        assert line in printed
    r = json.loads((out / "results.json").read_text())
    assert r["config"]["oracle"]["model"] == "efficientnet-lite0" and r["config"]["task"]["data"] == "mnist5k"
    assert [b["name"] for b in r["baselines"]] == ["no prompt + linear probe", "no prompt + flm mapping",
                                                   "no prompt + linear probe on 2 views (32+48 px)"]
    assert all(0.0 <= b["accuracy"] <= 1.0 for b in r["baselines"]) and 0.0 <= r["test_accuracy"] <= 1.0
    led = r["ledger"]
    assert led["train"]["queries"] + led["validation"]["queries"] <= 1500
    assert led["train"]["calls"] > 0
    assert (out / "learning_curve.png").stat().st_size > 5000
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0  # finished: read back
    assert json.loads((out / "results.json").read_text()) == r
    (out / "results.json").unlink()  # as if killed just before the end
    assert main(["resume", str(out), "--no-progress"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["ledger"]["total"]["calls"] == 0
    assert again["test_accuracy"] == r["test_accuracy"] and again["curve"] == r["curve"]
    assert again["baselines"] == r["baselines"]
