"""The backdoor and exposure benchmarks run end to end on a tiny grid, end with their JSON line, and started
again on their saved rows run nothing twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(name, *args, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module", autouse=True)
def fmnist():
    from blackbox_rp.data import load_fashion_mnist

    try:
        load_fashion_mnist("test")
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"Fashion-MNIST not installed: {e}")


@pytest.mark.slow
def test_backdoor_benchmark_tiny_grid_and_resume(tmp_path):
    rows = tmp_path / "rows.jsonl"
    args = ["--attacks", "badnets", "--seeds", "0", "--budgets", "1500", "--n-benign", "200", "--n-eval", "300",
            "--whitebox-steps", "5", "--no-recipe", "--rows", rows]
    out = _bench("backdoor.py", *args)
    assert out.returncode == 0, out.stderr
    head = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("clean_acc_backdoored", "asr_backdoored", "clean_acc_blackbox_refine", "asr_blackbox_refine",
                "queries", "clean_acc_whitebox_refine", "goal_met"):
        assert key in head
    assert head["asr_backdoored"] > 0.9 and head["queries"] == 1500
    saved = [json.loads(x) for x in rows.read_text().splitlines()]
    assert {r["method"] for r in saved} == {"clean control", "backdoored", "white-box REFINE (ceiling)",
                                            "black-box REFINE"}
    assert all(r["queries"] <= 1500 for r in saved)
    again = _bench("backdoor.py", *args)  # every cell is in the file: nothing runs, the same report
    assert again.returncode == 0 and "queries," not in again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1]) == head
    assert len(rows.read_text().splitlines()) == len(saved)


@pytest.mark.slow
def test_exposure_benchmark_tiny_grid(tmp_path):
    out = _bench("exposure.py", "--seeds", "0", "--budget", "1300", "--split", "200,100,200", "--exposures",
                 "probs,label,noisy0.05", "--rows", tmp_path / "rows.jsonl")
    assert out.returncode == 0, out.stderr
    head = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"acc_linear_probs", "acc_blm_label", "acc_blm_noisy0.05:seed0"} <= set(head)
    assert "| linear | label | – | refused" in out.stdout  # the linear readout cannot run on labels: said so
