"""`blackbox-rp optimize`: list the optimizers with their parameters, run one on a test function."""

from __future__ import annotations

import json

from blackbox_rp.cli import main


def test_list_shows_every_optimizer_with_its_parameters(capsys):
    assert main(["optimize", "--list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name in ("spsa", "spsa-gc", "zo-sgd", "zo-adam", "cma", "cma-subspace", "random", "bdpl", "greedy", "ng:<name>"):
        assert name in rows
    assert rows["bdpl"]["accepts"] == ["categorical"] and rows["zo-adam"]["accepts"] == ["continuous"]
    assert rows["random"]["accepts"] == rows["ng:<name>"]["accepts"] == ["categorical", "continuous", "mixed"]
    assert rows["spsa-gc"]["presets"] == ["blackvip"]
    assert rows["spsa"]["params"]["alpha"] == 0.602 and rows["zo-adam"]["queries_per_step_d100"] == 20


def test_run_one_optimizer_on_a_test_function(capsys):
    assert main(["optimize", "spsa-gc", "--function", "sphere", "--dim", "5", "--budget", "300",
                 "--param", "q=2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["queries"] == 300 and out["best_loss"] < out["start_loss"] / 10


def test_unknown_parameter_is_refused_with_the_accepted_ones(capsys):
    assert main(["optimize", "spsa", "--param", "speed=3"]) == 2
    err = capsys.readouterr().err
    assert "'speed'" in err and "accepted parameters: a, A, alpha" in err
