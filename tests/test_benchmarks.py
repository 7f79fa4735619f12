"""The visual benchmark's bookkeeping: the gain over the probe is paired by seed, runs saved in pieces merge
into one report without double-counting a baseline, runs on other canvases are refused, and ``--quick``
runs end to end and ends with its JSON line."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def visual():
    spec = importlib.util.spec_from_file_location("visual_benchmark", ROOT / "benchmarks" / "visual.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(seed, method, test, transform="none", mapping="linear", optimizer="-", budget=0, canvas=None):
    return dict(dataset="mnist5k", seed=seed, method=method, transform=transform, mapping=mapping,
                optimizer=optimizer, budget=budget, test=test, queries=budget, calls=1,
                black_box=method != "white-box ceiling", canvas=canvas or {"size": 64, "image_size": 48})


def _piece(seed, probe, prompt):
    return [_row(seed, "zero-shot FLM (no prompt)", 0.2, mapping="flm"),
            _row(seed, "linear probe (no prompt)", probe),
            _row(seed, "black-box", prompt, "lowdim", "linear", "zo-adam", 30000)]


def test_gain_over_the_probe_is_paired_by_seed_and_pieces_merge(visual, capsys):
    # seed 0: probe 0.90, prompt 0.91 (+1); seed 1: probe 0.95, prompt 0.93 (-2); the baselines of seed 0
    # appear in both pieces and must count once
    rows = visual.merge_rows([_piece(0, 0.90, 0.91), _piece(0, 0.90, 0.91)[:2] + _piece(1, 0.95, 0.93)])
    assert len(rows) == 6
    head = visual.report(rows, "hand-made rows")
    table = capsys.readouterr().out
    assert "| mnist5k | black-box | lowdim | linear | zo-adam | 30000 | 92.0 ± 1.4 | -0.5 ± 2.1; 1/2 |" in table
    assert head["linear_probe_acc"] == 0.925 and head["best_blackbox_acc"] == 0.92
    assert head["best_minus_probe"] == -0.005 and head["best_above_probe_seeds"] == "1/2"
    with pytest.raises(SystemExit, match="different canvases"):
        grey = [dict(r, canvas={"size": 64, "image_size": 48, "background": 0.5}) for r in _piece(1, 0.9, 0.9)]
        visual.merge_rows([_piece(0, 0.90, 0.91), grey])


def test_plot_draws_a_png(visual, tmp_path):
    rows = _piece(0, 0.90, 0.91) + _piece(1, 0.92, 0.93) + [
        _row(0, "white-box ceiling", 0.94, "lowdim", "linear", "backprop (Adam)")]
    visual.plot(rows, tmp_path / "acc.png")
    assert (tmp_path / "acc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_runs_end_to_end_and_reports_from_its_saved_rows(tmp_path):
    saved = tmp_path / "rows.json"
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "visual.py"), "--quick", "--json-out", str(saved)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    head = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("zero_shot_acc", "linear_probe_acc", "best_blackbox_acc", "whitebox_acc"):
        assert 0 <= head[key] <= 1, key
    again = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "visual.py"), "--from-json", str(saved)],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-2000:]
    replayed = json.loads(again.stdout.strip().splitlines()[-1])
    assert {k: replayed[k] for k in head if k != "seconds"} == {k: head[k] for k in head if k != "seconds"}
