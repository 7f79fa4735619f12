"""``blackbox-rp report DIR --mlflow URI`` logs every finished run to a real MLflow tracking store (a local
file store here): the config as parameters, the figures of results.json as metrics, the validation curve
against queries, the run's files as artifacts; run again, it logs nothing twice."""

from __future__ import annotations

import json

import pytest

from blackbox_rp.cli import main

mlflow = pytest.importorskip("mlflow")

BASE = {"task": {"data": "digits", "split": [150, 80, 80], "seed": 0}, "oracle": {"model": "fmnist-cnn"},
        "mapping": {"name": "blm+"}, "optimizer": {"name": "spsa-gc"}, "budget": {"queries": 3000, "max_steps": 2},
        "fit": {"batch_size": 16, "eval_every": 1}}


@pytest.mark.slow
def test_report_logs_each_run_to_mlflow_once(tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    from blackbox_rp.experiments.config import from_dict
    from blackbox_rp.experiments.mlflow_log import TAG_RUN_DIR, metric_name
    from blackbox_rp.experiments.run import run

    results = {}
    for seed in (0, 1):
        tree = json.loads(json.dumps(BASE))
        tree["task"]["seed"] = seed
        results[f"s{seed}"] = run(from_dict(tree), tmp_path / "runs" / f"s{seed}", progress=False, echo=lambda s: None)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps file stores behind this switch
    uri = (tmp_path / "mlruns").as_uri()
    assert main(["report", str(tmp_path / "runs"), "--mlflow", uri, "--mlflow-experiment", "digits"]) == 0
    assert "experiment digits: 2 runs logged, 0 logged before" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("digits")
    logged = {r.data.tags[TAG_RUN_DIR]: r for r in client.search_runs([exp.experiment_id])}
    assert sorted(logged) == ["s0", "s1"]
    for name, r in results.items():
        got = logged[name]
        assert got.info.status == "FINISHED"
        assert got.data.params["task.seed"] == str(r["seed"]) and got.data.params["mapping.name"] == "blm+"
        m = got.data.metrics
        assert m["test_accuracy"] == r["test_accuracy"] and m["queries"] == r["queries"]
        assert m["kept_theta0"] == float(r["kept_theta0"]) and m["calls"] == r["calls"]
        for b in r["baselines"]:
            assert m[f"baseline/{metric_name(b['name'])}"] == b["accuracy"]
            assert m[f"gain_over/{metric_name(b['name'])}"] == pytest.approx(r["gain_over_baselines"][b["name"]])
        history = client.get_metric_history(got.info.run_id, "curve/val_accuracy")
        assert sorted((h.step, h.value) for h in history) == sorted((c["queries"], c["val_accuracy"])
                                                                    for c in r["curve"])
        assert {"results.json", "config.toml", "learning_curve.png"} <= \
            {a.path for a in client.list_artifacts(got.info.run_id)}
    # reported again: both runs are in the experiment already, nothing is logged twice
    assert main(["report", str(tmp_path / "runs"), "--mlflow", uri, "--mlflow-experiment", "digits"]) == 0
    assert "0 runs logged, 2 logged before" in capsys.readouterr().out
    assert len(client.search_runs([exp.experiment_id])) == 2
    assert metric_name("no prompt + blm+ mapping") == "no prompt with blmplus mapping"
    assert metric_name("no prompt + linear probe on 2 views (24+32 px)") == \
        "no prompt with linear probe on 2 views _24plus32 px_"
