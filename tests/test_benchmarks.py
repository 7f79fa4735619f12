"""The visual benchmark's bookkeeping: the gain over the probe is paired by seed, runs saved in pieces merge
into one report without double-counting a baseline, runs of another setup are refused, a cell that cannot
run is refused before any query, and ``--quick`` runs end to end, ends with its JSON line, and started
again on its saved rows runs nothing twice."""

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


SETUP = {"model": "efficientnet-lite0", "split": [3000, 1000, 1000], "size": 64, "canvas": {"image_size": 48},
         "eval_every": 20}


def _row(seed, method, test, transform="none", mapping="linear", optimizer="-", budget=0, **setup):
    return dict(dataset="mnist5k", seed=seed, method=method, transform=transform, mapping=mapping,
                optimizer=optimizer, budget=budget, test=test, queries=budget, calls=1,
                black_box=method != "white-box ceiling", setup={**SETUP, **setup})


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
    with pytest.raises(SystemExit, match="different canvas"):
        grey = [dict(r, setup={**SETUP, "canvas": {"image_size": 48, "background": 0.5}}) for r in _piece(1, 0.9, 0.9)]
        visual.merge_rows([_piece(0, 0.90, 0.91), grey])
    with pytest.raises(SystemExit, match="different split"):
        visual.merge_rows([_piece(0, 0.90, 0.91), [dict(r, setup={**SETUP, "split": [300, 100, 100]})
                                                   for r in _piece(1, 0.9, 0.9)]])
    capsys.readouterr()
    kept = visual.merge_rows([_piece(0, 0.90, 0.91), _piece(0, 0.901, 0.91)])  # float noise between two runs
    assert [r["test"] for r in kept] == [0.2, 0.90, 0.91]
    assert "1 repeated row(s) differ between the files (largest difference 0.0010)" in capsys.readouterr().err


def test_a_seed_without_its_probe_row_is_reported_not_a_crash(visual, capsys):
    rows = _piece(0, 0.90, 0.91) + [_row(1, "black-box", 0.5, "lowdim", "linear", "zo-adam", 30000)]
    head = visual.report(rows, "a killed run")  # seed 1 died before its probe row
    assert "| 70.5 ± 29.0 | +1.0 ± 0.0; 1/1 |" in capsys.readouterr().out
    assert head["best_minus_probe"] == 0.01
    only = visual.report([_row(0, "black-box", 0.5, "lowdim", "linear", "zo-adam", 30000)], "no probe at all")
    assert "| n/a |" in capsys.readouterr().out and only["linear_probe_acc"] is None


def test_plot_draws_a_png(visual, tmp_path):
    rows = _piece(0, 0.90, 0.91) + _piece(1, 0.92, 0.93) + [
        _row(0, "white-box ceiling", 0.94, "lowdim", "linear", "backprop (Adam)")]
    visual.plot(rows, tmp_path / "acc.png")
    import matplotlib
    import numpy as np
    from PIL import Image

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with Image.open(tmp_path / "acc.png") as im:  # two panels (all, around the probe) of one dataset at 110 dpi
        assert im.format == "PNG" and im.size == (715, 880)
        pixels = np.asarray(im.convert("RGB"))
    assert (pixels.min(axis=2) < 200).mean() > 0.01  # something is drawn, not a blank canvas
    fig, ax = plt.subplots()  # the same drawing on axes we can read back: the lines the legend claims
    try:
        visual._draw(ax, rows)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert sorted(labels) == sorted(["lowdim + linear, zo-adam", "linear probe (no prompt): 91.0",
                                         "zero-shot FLM (no prompt): 20.0",
                                         "white-box lowdim + linear (not black-box)"])
        probe, zero = [l for l in ax.get_lines() if l.get_linestyle() in ("--", ":")]
        assert probe.get_ydata()[0] == pytest.approx(91.0) and zero.get_ydata()[0] == pytest.approx(20.0)
        curve = next(l for l in ax.get_lines() if l.get_marker() == "o")
        assert list(curve.get_xdata()) == [30000] and curve.get_ydata()[0] == pytest.approx(92.0)
        star = next(l for l in ax.get_lines() if l.get_marker() == "*")
        assert star.get_ydata()[0] == pytest.approx(94.0)
    finally:
        plt.close(fig)


def _visual(*args, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "visual.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_a_cell_that_cannot_run_is_refused_before_any_query(tmp_path):
    out = _visual("--quick", "--mappings", "blm+,linear", "--refits", "joint", "--json-out", tmp_path / "r.json")
    assert out.returncode != 0 and "cell lowdim/blm+/zo-adam/2000/default/joint cannot run" in out.stderr
    assert "no parameters to train" in out.stderr and not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_quick_runs_end_to_end_and_reports_from_its_saved_rows(tmp_path):
    saved = tmp_path / "rows.json"
    out = _visual("--quick", "--json-out", saved)
    assert out.returncode == 0, out.stderr[-2000:]
    head = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("zero_shot_acc", "linear_probe_acc", "best_blackbox_acc", "whitebox_acc"):
        assert 0 <= head[key] <= 1, key
    same = {k: head[k] for k in head if k != "seconds"}
    again = _visual("--from-json", saved, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert {k: v for k, v in json.loads(again.stdout.strip().splitlines()[-1]).items() if k != "seconds"} == same
    # started again on its own saved rows: every cell is kept, none is run twice
    rows = json.loads(saved.read_text())
    resumed = _visual("--quick", "--json-out", saved)
    assert resumed.returncode == 0 and f"{len(rows)} rows kept" in resumed.stderr
    assert json.loads(saved.read_text()) == rows
    assert {k: v for k, v in json.loads(resumed.stdout.strip().splitlines()[-1]).items() if k != "seconds"} == same


# ------------------------------------------------------------------ benchmarks/text.py
@pytest.fixture(scope="module")
def text_bench():
    spec = importlib.util.spec_from_file_location("text_benchmark", ROOT / "benchmarks" / "text.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _text_row(seed, method, test, optimizer="-", mapping="verbalizer", calls=0):
    return dict(dataset="mr", seed=seed, method=method, optimizer=optimizer, mapping=mapping, budget=0, test=test,
                queries=calls * 16, calls=calls, prompt="Review: {x}\nSentiment:", qps=3.0)


def test_text_benchmark_headline_names_the_three_accuracies_and_the_best_learned_cell(text_bench, capsys):
    rows = [_text_row(s, "hand prompt", 0.5) for s in (0, 1)] + \
           [_text_row(s, "text probe", 0.7, mapping="token-linear", calls=7) for s in (0, 1)] + \
           [_text_row(0, "learned prompt", 0.6, "bdpl", calls=100), _text_row(1, "learned prompt", 0.8, "bdpl", calls=100),
            _text_row(0, "learned prompt", 0.65, "greedy", calls=90), _text_row(1, "learned prompt", 0.66, "greedy", calls=90)]
    head = text_bench.report(rows + rows[4:5])  # a repeated cell (a resumed file) counts once
    table = capsys.readouterr().out
    assert "| mr | learned prompt | bdpl | verbalizer | 0 | 70.0 ± 14.1 | 1600 | 100 | 2 |" in table
    assert head["dataset"] == "mr" and head["hand_prompt_accuracy"] == 0.5 and head["text_probe_accuracy"] == 0.7
    assert head["learned_prompt_accuracy"] == pytest.approx(0.7) and head["learned_with"] == "bdpl + verbalizer"
    assert head["calls"] == 380 and head["in_process_queries_per_s"] == 3.0
    json.dumps(head)


def test_text_benchmark_headline_says_how_often_the_top_k_showed_a_label_word(text_bench, capsys):
    rows = [dict(_text_row(s, "hand prompt", 0.3), label_word_shown=v) for s, v in ((0, 0.05), (1, 0.15))] + \
           [_text_row(s, "hand prompt (all log-probs)", 0.55) for s in (0, 1)]
    head = text_bench.report(rows)
    capsys.readouterr()
    assert head["label_word_shown"] == pytest.approx(0.10) and head["hand_prompt_all_logprobs_accuracy"] == 0.55
    head = text_bench.report([_text_row(0, "hand prompt", 0.5)])  # rows saved before the field existed
    assert head["label_word_shown"] is None and head["hand_prompt_all_logprobs_accuracy"] is None
