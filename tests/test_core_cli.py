"""The first CLI commands: models, query, journal — and errors that say what is accepted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from blackbox_rp.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_the_commands_and_explains_itself():
    out = subprocess.run([sys.executable, "-m", "blackbox_rp", "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0
    for word in ("models", "query", "journal", "y_target", "examples:"):
        assert word in out.stdout


def test_models_lists_bundled_models(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["efficientnet-lite0"]["classes"] == 1000
    assert rows["fmnist-cnn"]["classes"] == 10
    assert rows["gemma3-270m"]["classes"] == 262_144 and rows["gemma3-270m"]["input"].startswith("text")


def test_query_sample_images_then_replay_from_journal(tmp_path, capsys):
    args = ["query", "--sample-images", "--exposure", "top3", "--journal", str(tmp_path / "j.sqlite"),
            "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert [a["label_name"] for a in first["answers"]][1] == "daisy"
    assert len(first["answers"][0]["top"]) == 3
    assert first["ledger"]["test"]["queries"] == 2 and first["ledger"]["test"]["calls"] == 1
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["answers"] == first["answers"]
    assert again["ledger"]["test"]["calls"] == 0 and again["ledger"]["test"]["cache_hits"] == 2
    assert main(["journal", str(tmp_path / "j.sqlite")]) == 0
    assert json.loads(capsys.readouterr().out)["answers"][0]["count"] == 2


def test_query_an_npz_of_uint8_grey_images_on_the_small_cnn(tmp_path, capsys):
    x = (np.random.default_rng(0).random((3, 28, 28)) * 255).astype(np.uint8)
    np.savez(tmp_path / "x.npz", x=x)
    assert main(["query", str(tmp_path / "x.npz"), "--model", "fmnist-cnn", "--exposure", "label"]) == 0
    out = capsys.readouterr().out
    assert out.count("x.npz[") == 3 and "3 queries, 1 calls" in out


def test_bad_arguments_get_a_message_not_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:  # refused by argparse, naming the option, before anything runs
        main(["query", "--sample-images", "--exposure", "everything"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --exposure: unknown exposure 'everything'" in err and "top<k>" in err
    assert "Traceback" not in err
    assert main(["query", "--model", "resnet-9000", "--sample-images"]) == 2
    assert "efficientnet-lite0" in capsys.readouterr().err
    assert main(["query", "--sample-images", "--max-queries", "1"]) == 2
    assert "query budget exhausted" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"")
    np.savez(tmp_path / "bad.npz", images=np.zeros((1, 3, 32, 32)))
    assert main(["query", str(tmp_path / "bad.npz")]) == 2
    assert "expected one named 'x'" in capsys.readouterr().err
