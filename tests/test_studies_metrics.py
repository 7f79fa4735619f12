"""Metrics: ASR counts only non-target-class inputs; Wilson intervals are right at the edges."""

import numpy as np
import pytest

from blackbox_rp.data import Dataset
from blackbox_rp.studies.metrics import Rate, attack_success_rate, backdoor_metrics, clean_accuracy, wilson_interval
from blackbox_rp.studies.triggers import BadNets


def test_asr_counts_only_non_target_inputs():
    y = np.array([0, 0, 1, 2, 3, 3])
    pred = np.array([0, 0, 0, 0, 3, 0])  # both target-class inputs "succeed": they must not count
    r = attack_success_rate(pred, y, target=0)
    assert (r.k, r.n) == (3, 4)
    assert r.value == 0.75
    assert attack_success_rate(np.array([0, 0]), np.array([0, 0]), 0).n == 0


def test_wilson_interval_known_values_and_edges():
    lo, hi = wilson_interval(95, 100)
    assert lo == pytest.approx(0.8882, abs=1e-4) and hi == pytest.approx(0.9785, abs=1e-4)
    lo, hi = wilson_interval(0, 50)
    assert lo == 0.0 and 0.05 < hi < 0.08
    lo, hi = wilson_interval(50, 50)
    assert hi == 1.0 and 0.92 < lo < 0.95
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 3)
    d = Rate(3, 4).to_dict()
    assert d["value"] == 0.75 and d["ci_low"] < 0.75 < d["ci_high"]


def test_backdoor_metrics_triggers_only_non_target_rows():
    x = np.zeros((6, 1, 8, 8), np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    seen = []

    def predict(batch):
        seen.append(batch.copy())
        patched = batch[:, 0, 5:7, 5:7].min(axis=(1, 2)) == 1.0
        return np.where(patched, 0, 1)  # a perfect backdoor: the patch means class 0, else class 1

    m = backdoor_metrics(predict, Dataset(x, y, ("a", "b", "c")), BadNets(size=2), target=0)
    assert (m["clean_accuracy"].k, m["clean_accuracy"].n) == (2, 6)
    assert (m["asr"].k, m["asr"].n) == (4, 4)
    assert (m["triggered_accuracy"].k, m["triggered_accuracy"].n) == (0, 4)  # no triggered input kept its class
    assert len(seen[1]) == 4  # only the 4 non-target rows were triggered and queried
    assert clean_accuracy(np.array([1, 2]), np.array([1, 1])).value == 0.5
    with pytest.raises(ValueError, match="target"):
        backdoor_metrics(predict, Dataset(x, y, ("a", "b", "c")), BadNets(size=2))
