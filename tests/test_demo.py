"""`blackbox-rp demo --quick`: the README's main command runs end to end on the real ImageNet model and
writes its results JSON and learning-curve PNG; run again, it resumes from its journal for free."""

from __future__ import annotations

import json

from blackbox_rp.cli import main


def test_demo_quick_writes_results_and_curve_then_replays_for_free(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for line in ("zero-shot (flm, no prompt)", "output-only linear probe", "linear probe on 2 views (32+48 px",
                 "reprogrammed, black-box", "spent:"):
        assert line in printed
    r = json.loads((out / "results.json").read_text())
    assert r["config"]["model"] == "efficientnet-lite0" and r["config"]["data"] == "mnist5k"
    assert r["zero_shot_mapping"] == "flm"
    for key in ("test_accuracy", "zero_shot_accuracy", "linear_probe_accuracy"):
        assert 0.0 <= r[key] <= 1.0
    assert r["multiview_probe"]["image_sizes"] == [32, 48] and 0.0 <= r["multiview_probe"]["accuracy"] <= 1.0
    led = r["ledger"]
    assert led["train"]["queries"] + led["validation"]["queries"] <= 1500
    assert led["train"]["calls"] > 0
    png = (out / "learning_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    # the default journal lives in --out: the same command again pays no call and reaches the same result
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["ledger"]["total"]["calls"] == 0
    assert again["test_accuracy"] == r["test_accuracy"] and again["fit"]["curve"] == r["fit"]["curve"]
    assert again["multiview_probe"] == r["multiview_probe"]
