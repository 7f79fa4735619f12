"""`blackbox-rp reprogram`: results.json (schema v1) carries what a result needs, the budget holds, bad
arguments are refused with what is accepted, and the newcomer's findings of issues 10 and 12 stay fixed:
label-only runs run, θ₀ kept is said, baselines are named for what they are, the canvas follows the model,
a budget that cannot pay for a validated step is refused before any query, no placeholder accuracy."""

from __future__ import annotations

import json

import pytest

from blackbox_rp.cli import main
from blackbox_rp.experiments.run import summary_lines

FAST = ["reprogram", "--model", "fmnist-cnn", "--data", "digits", "--image-size", "20",
        "--split", "300,150,150", "--no-progress"]


def test_results_json_has_the_fields_and_the_budget_holds(tmp_path, capsys):
    out = tmp_path / "run"
    args = FAST + ["--mapping", "blm+", "--optimizer", "spsa-gc", "--budget", "3001", "--seed", "7",
                   "--out", str(out), "--eval-every", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "prompt, black-box (test)" in printed and "no prompt + linear probe" in printed
    r = json.loads((out / "results.json").read_text())
    assert r["schema"] == "blackbox-rp/results" and r["schema_version"] == 1
    for key in ("test_accuracy", "val_accuracy", "kept_theta0", "steps", "best_step", "stop_reason", "baselines",
                "gain_over_baselines", "seed", "split", "budget", "plan", "queries", "calls", "cost", "curve",
                "ledger", "config", "reprogrammer", "oracle", "classes", "canvas"):
        assert key in r, key
    assert r["seed"] == 7 and r["split"] == {"train": 300, "validation": 150, "test": 150, "dataset": "digits"}
    led = r["ledger"]
    assert led["train"]["queries"] + led["validation"]["queries"] <= 3001
    # the plan is exact: the final refit is skipped only when selection kept θ₀
    assert r["queries"] == led["train"]["queries"] + led["validation"]["queries"] == \
        r["plan"]["spent"] - (r["plan"]["final_refit"] if r["kept_theta0"] else 0)
    assert led["test"]["queries"] == 150, "test is charged apart, once"
    assert led["baseline"]["queries"] == 2 * (300 + 150), "the two no-prompt baselines, reported apart"
    assert [b["name"] for b in r["baselines"]] == ["no prompt + blm+ mapping", "no prompt + linear probe"]
    for b in r["baselines"]:
        assert r["gain_over_baselines"][b["name"]] == pytest.approx(r["test_accuracy"] - b["accuracy"])
    assert r["config"]["mapping"]["name"] == "blm+" and r["reprogrammer"]["transform"]["dim"] == 1 * 8 * 8
    assert r["canvas"] == {"size": 28, "image_size": 20}
    assert r["curve"] and all(0 <= c["val_accuracy"] <= 1 for c in r["curve"])
    assert (out / "learning_curve.png").stat().st_size > 10_000
    assert (out / "config.toml").exists() and (out / "environment.json").exists()


@pytest.mark.parametrize("bad, says", [
    (["--mapping", "nope"], "invalid choice: 'nope' (choose from"),
    (["--transform", "none"], "invalid choice: 'none'"),
    (["--optimizer", "adamw"], "spsa-gc"),
    (["--loss", "mse"], "'ce', 'focal', 'hinge', 'neg-acc'"),
    (["--budget", "0"], "expected a positive integer"),
    (["--split", "0.5,0.5"], "TRAIN,VAL,TEST"),
    (["--refit", "always"], "'auto', 'candidate', 'epoch', 'joint', 'none', 'window'"),
    (["--probe-views", "48,x"], "image sizes in pixels separated by commas"),
])
def test_bad_arguments_are_refused_with_what_is_accepted(tmp_path, capsys, bad, says):
    with pytest.raises(SystemExit) as e:
        main(FAST + ["--budget", "100", "--out", str(tmp_path)] + bad)
    assert e.value.code == 2
    assert says in capsys.readouterr().err


def test_errors_found_after_parsing_say_what_to_do_before_any_query(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(FAST + ["--out", str(out)]) == 2  # neither --budget nor --steps
    assert "give --budget N" in capsys.readouterr().err
    assert main(FAST + ["--steps", "2", "--out", str(out), "--opt", "nosuch=1"]) == 2
    assert "accepted parameters" in capsys.readouterr().err
    assert main(FAST + ["--steps", "2", "--out", str(out), "--mapping", "blm+", "--refit", "joint"]) == 2
    assert "no parameters to train" in capsys.readouterr().err
    # the mapping the user chose is the one named (not the probe baseline's)
    assert main(FAST + ["--steps", "2", "--out", str(out), "--mapping", "blm+", "--exposure", "label"]) == 2
    assert "label mapping 'blm+' needs 'topk'" in capsys.readouterr().err
    # a budget that cannot pay for the first fit, one step and its validation: refused, with the number needed
    assert main(FAST + ["--budget", "500", "--mapping", "linear", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot" in err and "at least" in err and "not fitted" not in err
    assert not out.exists(), "refused before any query: nothing written"
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit) as e:  # checked while parsing, naming the option
        main(FAST + ["--steps", "1", "--out", str(tmp_path / "file")])
    assert e.value.code == 2 and "argument --out" in capsys.readouterr().err


@pytest.mark.parametrize("mapping", ["identity", "rlm", "flm", "ilm", "blm"])
def test_label_only_runs_run_and_say_which_baselines_were_skipped(tmp_path, capsys, mapping):
    out = tmp_path / mapping
    assert main(FAST + ["--exposure", "label", "--mapping", mapping, "--loss", "hinge", "--steps", "2",
                        "--batch-size", "16", "--eval-every", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    r = json.loads((out / "results.json").read_text())
    probe = next(b for b in r["baselines"] if b["name"] == "no prompt + linear probe")
    assert probe["accuracy"] is None and probe["skipped"].startswith("skipped: it needs topk outputs")
    assert "no prompt + linear probe:" in printed and "skipped" in printed
    assert r["baselines"][0]["accuracy"] is not None and r["steps"] == 2
    assert "-100" not in printed and "n/a" not in printed.split("no prompt + linear probe")[0]


def test_theta0_kept_is_said_and_no_placeholder_is_printed(tmp_path):
    base = {"test_accuracy": 0.3, "val_accuracy": None, "kept_theta0": True, "steps": 0, "best_step": 0,
            "stop_reason": "budget exhausted", "baselines": [{"name": "no prompt + flm mapping", "accuracy": 0.3,
                                                              "skipped": None}],
            "gain_over_baselines": {"no prompt + flm mapping": 0.0}, "wall_seconds": 1.0,
            "ledger": {p: {"queries": 0, "calls": 0, "cache_hits": 0} for p in
                       ("train", "validation", "test", "baseline", "total")}}
    text = "\n".join(summary_lines(base, tmp_path))
    assert "selection kept θ₀ (no prompt)" in text and "never validated" in text and "-100" not in text
    assert "no prompt + flm mapping: +0.0 points" in text
    moved = "\n".join(summary_lines({**base, "kept_theta0": False, "val_accuracy": 0.4, "best_step": 3}, tmp_path))
    assert "kept θ₀" not in moved and "validation 40.0%" in moved


def test_the_canvas_follows_the_model_and_a_size_it_cannot_take_is_refused(tmp_path, capsys):
    # a bundled model on bundled data with no canvas flag: 28 px for the CNN that takes exactly 28 px
    out = tmp_path / "plain"
    assert main(["reprogram", "--model", "fmnist-cnn", "--data", "digits", "--steps", "1", "--batch-size", "8",
                 "--split", "100,50,50", "--no-progress", "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["canvas"] == {"size": 28, "image_size": 21}
    assert main(FAST + ["--steps", "1", "--size", "64", "--out", str(tmp_path / "x")]) == 2
    assert "takes exactly 28 px" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["models"]) == 0
    assert "28 px exactly" in capsys.readouterr().out


def test_help_shows_the_defaults_and_the_progress_bar_says_why_it_stopped(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["reprogram", "--help"])
    text = capsys.readouterr().out
    assert "(default efficientnet-lite0)" in text and "(default mnist5k)" in text and "runs/reprogram-" in text
    assert main(FAST[:-1] + ["--steps", "2", "--eval-every", "1", "--batch-size", "16", "--out",
                             str(tmp_path / "p")]) == 0
    err = capsys.readouterr().err
    assert "baselines" in err and "done (max_steps (2) reached)" in err


def test_refit_readout_and_views_reach_the_run(tmp_path):
    out = tmp_path / "joint"
    assert main(FAST + ["--mapping", "linear", "--optimizer", "zo-adam", "--steps", "2", "--eval-every", "1",
                        "--refit", "joint", "--readout-lr", "0.02", "--probe-views", "20,28", "--out", str(out),
                        "--transform-param", "low_res=[4,4]"]) == 0  # a prompt option: the views ignore it
    r = json.loads((out / "results.json").read_text())
    assert r["reprogrammer"]["refit"] == "joint"
    assert r["reprogrammer"]["config"]["readout_lr"] == 0.02
    names = [b["name"] for b in r["baselines"]]
    assert names == ["no prompt + linear probe", "no prompt + linear probe on 2 views (20+28 px)"]
    assert all(0 <= b["accuracy"] <= 1 for b in r["baselines"])
    # the probe (with --mapping linear it is the run's own no-prompt baseline) once, then both views
    assert r["ledger"]["baseline"]["queries"] == (300 + 150) + 2 * (300 + 150)


def test_a_split_too_small_to_read_is_said_beside_its_accuracy(tmp_path, capsys):
    """issue 12: `--split 1,1,1` reported 100% on one test image without a warning."""
    args = ["reprogram", "--model", "fmnist-cnn", "--data", "digits", "--split", "1,1,1", "--steps", "2",
            "--mapping", "flm", "--no-progress", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    cap = capsys.readouterr()
    said = cap.out + cap.err  # the run's header and warnings go to stderr, the summary to stdout
    assert "warning: the test split has 1 example(s)" in said and "warning: the validation split has 1" in said
    r = json.loads((tmp_path / "r" / "results.json").read_text())
    assert any("test split has 1 example" in w for w in r["warnings"])
