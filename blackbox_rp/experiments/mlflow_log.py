"""Finished runs into MLflow: one MLflow run per run directory, its config as parameters, its accuracies,
baselines, paired gains and validation curve as metrics, its files as artifacts.

Why from the run directories and not during a run: ``results.json`` is the record (schema-versioned,
written atomically last); logging it afterwards keeps MLflow out of the fit, works for runs made on
other machines or by a Dask cluster, and can be repeated — a run already logged to the experiment
(the same ``results.json``, by its SHA-256) is not logged twice.

Needs the optional extra: ``pip install 'blackbox-rp[mlflow]'`` (``mlflow-skinny``). MLflow 3 refuses a
``file:`` tracking store unless ``MLFLOW_ALLOW_FILE_STORE=true`` is set; an ``http(s)://`` tracking
server or a database URI needs nothing more.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Sequence

from .report import _flat

logger = logging.getLogger(__name__)

__all__ = ["log_runs", "metric_name", "TAG_RUN_DIR", "TAG_SHA"]

#: tags that name where an MLflow run came from and identify its results
TAG_RUN_DIR, TAG_SHA = "blackbox_rp.run_dir", "blackbox_rp.results_sha256"


def metric_name(text: str) -> str:
    """A baseline's name as an MLflow key (letters, digits, ``_ - . / :`` and spaces only):
    ``"no prompt + blm+ mapping"`` → ``"no prompt with blmplus mapping"``."""
    return re.sub(r"[^A-Za-z0-9_\-. /:]", "_", text.replace(" + ", " with ").replace("+", "plus"))


def _metrics(r: dict[str, Any]) -> dict[str, float]:
    """The run's figures as numbers (a value that is None — nothing validated, a baseline skipped — is left out)."""
    m: dict[str, Any] = {"test_accuracy": r["test_accuracy"], "val_accuracy": r["val_accuracy"],
                         "kept_theta0": float(bool(r["kept_theta0"])), "steps": r["steps"],
                         "best_step": r.get("best_step"), "queries": r["queries"], "calls": r["calls"]}
    for b in r["baselines"]:
        m[f"baseline/{metric_name(b['name'])}"] = b["accuracy"]
        m[f"gain_over/{metric_name(b['name'])}"] = r["gain_over_baselines"].get(b["name"])
    if "whitebox" in r:
        m["whitebox_test_accuracy"] = r["whitebox"].get("test_accuracy")
    return {k: float(v) for k, v in m.items() if v is not None}


def log_runs(runs: Sequence[dict[str, Any]], root: str | Path, uri: str, experiment: str = "blackbox-rp"
             ) -> dict[str, int]:
    """Log ``runs`` (:func:`blackbox_rp.experiments.report.collect` of ``root``) to the MLflow tracking ``uri``.

    Returns ``{"logged": n, "skipped": m}``; skipped runs were in the experiment already."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ImportError("--mlflow needs MLflow: pip install 'blackbox-rp[mlflow]'") from None
    root = Path(root)
    client = MlflowClient(tracking_uri=uri)  # no mlflow.set_tracking_uri: the caller's global choice stays
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
    counts = {"logged": 0, "skipped": 0}
    for r in runs:
        run_dir = root / r["run_dir"]
        text = (run_dir / "results.json").read_bytes()
        sha = hashlib.sha256(text).hexdigest()
        if client.search_runs([exp_id], filter_string=f"tags.`{TAG_SHA}` = '{sha}'", max_results=1):
            counts["skipped"] += 1
            continue
        run = client.create_run(exp_id, run_name=r["run_dir"], tags={TAG_RUN_DIR: r["run_dir"], TAG_SHA: sha})
        rid = run.info.run_id
        try:
            for key, value in _flat(r["config"]).items():
                client.log_param(rid, key, str(value))
            for key, value in _metrics(r).items():
                client.log_metric(rid, key, value)
            for c in r["curve"]:  # the validation curve against queries spent (MLflow's step axis)
                client.log_metric(rid, "curve/val_accuracy", float(c["val_accuracy"]), step=int(c["queries"]))
            for name in ("results.json", "config.toml", "learning_curve.png"):
                if (run_dir / name).is_file():
                    client.log_artifact(rid, str(run_dir / name))
        except Exception:
            client.set_terminated(rid, status="FAILED")
            raise
        client.set_terminated(rid, status="FINISHED")
        counts["logged"] += 1
        logger.info("logged %s to MLflow run %s", r["run_dir"], rid)
    return counts
