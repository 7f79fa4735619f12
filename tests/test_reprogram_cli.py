"""`blackbox-rp reprogram`: results.json carries what a result needs, the budget holds, bad arguments are
refused with what is accepted."""

from __future__ import annotations

import json

import pytest

from blackbox_rp.cli import main

FAST = ["reprogram", "--model", "fmnist-cnn", "--data", "digits", "--size", "28", "--image-size", "20",
        "--split", "300,150,150", "--no-progress"]


def test_results_json_has_the_fields_and_the_budget_holds(tmp_path, capsys):
    out = tmp_path / "run"
    args = FAST + ["--mapping", "blm+", "--optimizer", "spsa-gc", "--budget", "3001", "--seed", "7",
                   "--out", str(out), "--eval-every", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "reprogrammed, black-box" in printed and "linear probe" in printed
    r = json.loads((out / "results.json").read_text())
    for key in ("test_accuracy", "zero_shot_accuracy", "linear_probe_accuracy", "val_accuracy", "seed", "splits",
                "config", "ledger", "fit", "budget"):
        assert key in r, key
    assert r["seed"] == 7 and r["black_box"] is True
    assert r["splits"] == {"train": 300, "validation": 150, "test": 150, "dataset": "digits"}
    led = r["ledger"]
    for phase in ("train", "validation", "test"):
        assert set(led[phase]) >= {"queries", "calls", "cache_hits"}
    assert led["train"]["queries"] + led["validation"]["queries"] <= 3001
    assert led["test"]["queries"] == 150, "test is charged apart, once"
    assert led["baseline"]["queries"] == 2 * (300 + 150), "zero-shot and linear probe, reported apart"
    assert r["config"]["mapping"] == "blm+" and r["config"]["reprogrammer"]["transform"]["dim"] == 1 * 8 * 8  # grey model: 1x8x8
    assert r["fit"]["curve"] and all(0 <= c["val_accuracy"] <= 1 for c in r["fit"]["curve"])
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("bad, says", [
    (["--mapping", "nope"], "invalid choice: 'nope' (choose from"),
    (["--transform", "none"], "invalid choice: 'none'"),
    (["--optimizer", "adamw"], "spsa-gc"),
    (["--loss", "mse"], "'ce', 'focal', 'hinge', 'neg-acc'"),
    (["--budget", "0"], "expected a positive integer"),
    (["--split", "0.5,0.5"], "TRAIN,VAL,TEST"),
    (["--refit", "always"], "'auto', 'epoch', 'joint', 'none', 'window'"),
    (["--probe-views", "48,x"], "image sizes in pixels separated by commas"),
])
def test_bad_arguments_are_refused_with_what_is_accepted(tmp_path, capsys, bad, says):
    with pytest.raises(SystemExit) as e:
        main(FAST + ["--budget", "100", "--out", str(tmp_path)] + bad)
    assert e.value.code == 2
    assert says in capsys.readouterr().err


def test_errors_found_after_parsing_say_what_to_do(tmp_path, capsys):
    assert main(FAST + ["--out", str(tmp_path)]) == 2  # neither --budget nor --steps
    assert "give --budget N" in capsys.readouterr().err
    assert main(FAST + ["--steps", "2", "--out", str(tmp_path), "--opt", "nosuch=1"]) == 2
    assert "accepted parameters" in capsys.readouterr().err
    assert main(FAST + ["--steps", "2", "--out", str(tmp_path), "--mapping", "blm+", "--refit", "joint"]) == 2
    assert "no parameters to train" in capsys.readouterr().err
    assert main(FAST + ["--steps", "2", "--out", str(tmp_path), "--mapping", "blm+", "--exposure", "label"]) == 2
    assert "needs 'topk'" in capsys.readouterr().err


def test_refit_readout_and_views_reach_the_run(tmp_path):
    out = tmp_path / "joint"
    assert main(FAST + ["--mapping", "linear", "--optimizer", "zo-adam", "--steps", "2", "--eval-every", "1",
                        "--refit", "joint", "--readout-lr", "0.02", "--probe-views", "20,28", "--out", str(out),
                        "--transform-param", "low_res=[4,4]"]) == 0  # a prompt option: the views ignore it
    r = json.loads((out / "results.json").read_text())
    assert r["config"]["reprogrammer"]["refit"] == "joint"
    assert r["config"]["reprogrammer"]["config"]["readout_lr"] == 0.02
    mv = r["multiview_probe"]
    assert mv["image_sizes"] == [20, 28] and mv["queries_per_image"] == 2 and 0 <= mv["accuracy"] <= 1
    # the probe (with --mapping linear it is the zero-shot row too) once, then both views of the multi-view probe
    assert r["ledger"]["baseline"]["queries"] == (300 + 150) + 2 * (300 + 150)
