"""`blackbox-rp defend` against a local backdoored model and against one behind `blackbox-rp serve`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from blackbox_rp.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fmnist():
    from blackbox_rp.data import load_fashion_mnist

    try:
        return load_fashion_mnist("test")
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"Fashion-MNIST not installed: {e}")


def test_bundled_backdoored_model_has_its_backdoor_and_the_control_does_not(fmnist):
    from oracles import TorchOracle
    from oracles.models.backdoor_cnn import ATTACKS
    from blackbox_rp.studies.metrics import backdoor_metrics

    x = fmnist.subset(np.arange(500))
    for name, attack in ATTACKS.items():
        bd = backdoor_metrics(lambda b: TorchOracle(attack.model_name).forward(b).argmax(1), x, attack.trigger, 0)
        ok = backdoor_metrics(lambda b: TorchOracle("fmnist-cnn").forward(b).argmax(1), x, attack.trigger, 0)
        assert bd["asr"].value > 0.9, name           # the trigger works on the backdoored model
        assert ok["asr"].value < 0.2, name           # and not on the clean control
        assert bd["clean_accuracy"].value > 0.8, name


def test_defend_cli_writes_the_defended_pipeline_and_its_metrics(fmnist, tmp_path, capsys):
    out = tmp_path / "d"
    rc = main(["defend", "--model", "fmnist-cnn-badnets", "--n-benign", "200", "--n-eval", "300", "--budget", "1500",
               "--transform", "lowdim", "--trigger", "badnets", "--target", "0", "--whitebox-steps", "4",
               "--rounds", "1", "--round-steps", "5", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    eval_rows = np.random.default_rng(0).permutation(len(fmnist))[200:500]
    assert res["suspect"]["asr"]["value"] > 0.9
    assert res["suspect"]["asr"]["n"] == int((fmnist.y[eval_rows] != 0).sum())  # only non-target rows count
    assert res["suspect"]["clean_accuracy"]["n"] == 300
    bb = res["defended_blackbox"]
    assert bb["black_box"] is True and bb["queries"] <= 1500
    assert res["ledger"]["train"]["queries"] + res["ledger"]["validation"]["queries"] == bb["queries"]
    assert res["defended_whitebox_ceiling"]["black_box"] is False
    for r in (res["suspect"], bb):
        assert r["clean_accuracy"]["ci_low"] <= r["clean_accuracy"]["value"] <= r["clean_accuracy"]["ci_high"]
    saved = np.load(out / "defended.npz")
    assert saved["theta"].shape == (64,) and (saved["source_of"] != np.arange(10)).all()
    assert "clean accuracy" in capsys.readouterr().out
    assert main(["defend", "--model", "fmnist-cnn-badnets", "--budget", "10", "--trigger", "badnets",
                 "--out", str(tmp_path / "x")]) == 2  # --trigger without --target is refused


def test_defend_defaults_to_refines_unet_trained_by_zo_chain_from_the_surrogate_warm_start(fmnist, tmp_path,
                                                                                            capsys):
    out = tmp_path / "default"
    # 120 benign images: 120 pseudo-labels + the warm start's 2 rounds over the 96 training images + the θ₀ pass
    # over 96 + 2 validations of 24 + one step of 16 × 9 (the stand-in's distillation itself costs nothing)
    rc = main(["defend", "--model", "fmnist-cnn-badnets", "--n-benign", "120", "--n-eval", "100", "--budget", "612",
               "--batch-size", "16", "--rounds", "2", "--round-steps", "10", "--out", str(out)])
    assert rc == 0
    bb = json.loads((out / "results.json").read_text())["defended_blackbox"]
    assert bb["transform"]["name"] == "unet" and bb["optimizer"] == "zo-chain"
    assert bb["steps"] == 1 and bb["queries"] == 120 + 2 * 96 + 96 + 16 * 9 + 2 * 24
    ws = bb["warm_start"]
    assert [r["queries"] for r in ws["rounds"]] == [96, 96]
    assert ws["input_prior"] is True and 0.0 <= ws["surrogate_agreement"] <= 1.0 and isinstance(ws["kept"], bool)
    err = capsys.readouterr().err
    assert "warm start: a stand-in distilled from the pseudo-labels agrees" in err
    assert "after 2 rounds of querying the transformed images (192 queries" in err
    assert ("the warm start is what was kept" in err) == ws["kept"]


def test_defend_plans_the_whole_budget_and_refuses_a_too_small_one_before_any_query(fmnist, tmp_path, capsys):
    from blackbox_rp import Journal

    journal = tmp_path / "j.sqlite"
    # 200 pseudo-labels would fit in 300, the fit after them would not: refused before the first query
    rc = main(["defend", "--model", "fmnist-cnn-badnets", "--n-benign", "200", "--n-eval", "100", "--budget", "300",
               "--transform", "lowdim", "--trigger", "badnets", "--target", "0", "--journal", str(journal),
               "--out", str(tmp_path / "small")])
    err = capsys.readouterr().err
    assert rc == 2 and "pseudo-labels cost 200" in err and "at least" in err
    with Journal(journal) as j:
        assert len(j) == 0 and not list(j.calls_log())  # nothing was asked: not the pseudo-labels, not the suspect
    assert not (tmp_path / "small" / "results.json").exists()


@pytest.mark.slow
def test_defend_against_a_backdoored_model_behind_blackbox_rp_serve(fmnist, tmp_path):
    pytest.importorskip("uvicorn")
    from oracles.subprocess_server import running_server

    argv = lambda port: [sys.executable, "-m", "blackbox_rp", "serve", "--model", "fmnist-cnn-badnets",  # noqa: E731
                         "--no-auth", "--port", str(port), "--exposure", "probs", "--threads", "1"]
    with running_server(argv, ready_path="/healthz", timeout=120) as url:
        out = tmp_path / "api"
        rc = main(["defend", "--model", url, "--n-benign", "120", "--n-eval", "200", "--budget", "1500",
                   "--transform", "lowdim", "--trigger", "badnets", "--target", "0", "--rounds", "1",
                   "--round-steps", "5", "--out", str(out)])
        assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["suspect"]["asr"]["value"] > 0.9  # the backdoor answers through the API
    assert res["defended_blackbox"]["queries"] <= 1500 and res["ledger"]["train"]["calls"] >= 1
