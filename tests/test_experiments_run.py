"""Run directories: a run killed with SIGKILL at random points and resumed equals the uninterrupted run bit
for bit (θ, mapping, accuracy) and pays no query twice; a finished run is read back, not re-run."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from blackbox_rp.experiments.config import from_dict
from blackbox_rp.experiments.run import load_mapping_state
from tests.killable import run_killable

TREE = {"task": {"data": "digits", "split": [200, 100, 100], "seed": 3},
        "oracle": {"model": "fmnist-cnn", "max_batch": 64},
        "mapping": {"name": "blm+"}, "optimizer": {"name": "spsa-gc"},
        "budget": {"queries": 3600}, "fit": {"batch_size": 32, "eval_every": 3}}

SCRIPT = """
import json, sys
from pathlib import Path
from blackbox_rp.experiments.config import from_dict
from blackbox_rp.experiments.run import run
cfg = from_dict(json.loads(sys.argv[1]))
r = run(cfg, Path(sys.argv[2]), progress=False, echo=lambda s: None,
        on_step=lambda info: print(f"step {info.step}", flush=True))
print(json.dumps({"test_accuracy": r["test_accuracy"], "ledger": r["ledger"], "steps": r["steps"]}))
"""


def _journal_counts(path):
    with sqlite3.connect(path) as db:
        answers = db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        paid = db.execute("SELECT COALESCE(SUM(n_inputs), 0) FROM calls WHERE ok = 1").fetchone()[0]
    return answers, paid


@pytest.mark.slow
def test_killed_at_random_points_and_resumed_equals_the_uninterrupted_run(tmp_path):
    arg = json.dumps(TREE)
    whole = run_killable(SCRIPT, arg, str(tmp_path / "whole"))
    assert whole["steps"] >= 6
    kills = sorted(np.random.default_rng(0).choice(np.arange(1, whole["steps"] - 1), 2, replace=False))
    d = tmp_path / "killed"
    for k in kills:  # killed twice, at two random steps, each time resumed from the same directory
        assert run_killable(SCRIPT, arg, str(d), kill_after=int(k)) is None
        assert not (d / "results.json").exists()
    done = run_killable(SCRIPT, arg, str(d))
    assert done["test_accuracy"] == whole["test_accuracy"]
    assert np.array_equal(np.load(d / "theta.npy"), np.load(tmp_path / "whole" / "theta.npy"))
    a, b = load_mapping_state(d / "mapping.npz"), load_mapping_state(tmp_path / "whole" / "mapping.npz")
    assert a.keys() == b.keys() and all(np.array_equal(a["arrays"][k], b["arrays"][k]) for k in a["arrays"])
    ra = json.loads((d / "results.json").read_text())
    rb = json.loads((tmp_path / "whole" / "results.json").read_text())
    assert ra["curve"] == rb["curve"] and ra["best_step"] == rb["best_step"]
    # the budget saw the same queries (replayed answers count), and the resumed process paid fewer calls
    assert done["ledger"]["total"]["queries"] == whole["ledger"]["total"]["queries"]
    assert done["ledger"]["total"]["cache_hits"] > whole["ledger"]["total"]["cache_hits"]
    # no query paid twice: every input the model answered over the three processes is one journal row
    answers, paid = _journal_counts(d / "journal.sqlite")
    assert paid == answers
    assert answers == _journal_counts(tmp_path / "whole" / "journal.sqlite")[0]


def test_a_finished_run_is_read_back_and_a_directory_holds_one_config(tmp_path):
    from blackbox_rp.experiments.run import RunDirError, resume, run

    cfg = from_dict({**TREE, "budget": {"queries": 2000, "max_steps": 2}, "fit": {"batch_size": 16, "eval_every": 1}})
    r = run(cfg, tmp_path / "r", progress=False, echo=lambda s: None)
    assert r["schema"] == "blackbox-rp/results" and r["schema_version"] == 1
    assert resume(tmp_path / "r", progress=False) == r  # finished: read back, nothing spent
    other = from_dict({**TREE, "budget": {"queries": 2000, "max_steps": 1}})
    with pytest.raises(RunDirError, match="holds a run of another config"):
        run(other, tmp_path / "r", progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(RunDirError, match="not a run directory"):
        run(cfg, tmp_path / "junk", progress=False)


def test_the_plot_keeps_validation_and_test_apart_and_every_line_visible(tmp_path):
    import matplotlib.pyplot as plt

    from blackbox_rp.experiments.run import curve_figure, run

    cfg = from_dict({**TREE, "budget": {"queries": 2000, "max_steps": 1}, "fit": {"batch_size": 16, "eval_every": 5}})
    r = run(cfg, tmp_path / "r", progress=False, echo=lambda s: None)
    fig = curve_figure(r)
    ax, bx = fig.axes
    assert "validation" in ax.get_ylabel() and "test" in bx.get_xlabel()
    assert ax.get_ylim() == (0, 102) and bx.get_xlim() == (0, 100)
    xs = ax.lines[0].get_xdata()
    assert len(xs) == len(r["curve"]) == 2 and ax.get_xlim()[0] < min(xs) <= max(xs) < ax.get_xlim()[1]
    assert all(0 <= y <= 100 for y in ax.lines[0].get_ydata())
    bars = [p.get_width() for p in bx.patches]
    shown = [r["test_accuracy"]] + [b["accuracy"] for b in r["baselines"] if b["accuracy"] is not None]
    assert bars == pytest.approx([100 * v for v in shown])
    assert [t.get_text() for t in bx.get_yticklabels()][0] == "prompt (selected)"
    plt.close(fig)
