"""Promise 4, closed as a class: every exposure × mapping (and a sample of transforms × optimizers) through
`blackbox-rp reprogram` on the fast bundled model either is refused before any query in one line naming
what to change, or runs and says what it did — never a traceback, a placeholder accuracy, or train +
validation queries above the budget.

The combinations are generated from the registries, so a new mapping, exposure form, transform or
optimizer is covered without editing this file.
"""

from __future__ import annotations

import itertools
import json

import pytest

from blackbox_rp.cli import main
from blackbox_rp.mapping import MAPPINGS
from blackbox_rp.mapping.tokens import TokenMapping

EXPOSURES = ["probs", "logits", "top5", "top1", "label", "rounded1", "noisy0.05:seed1"]
MAPPINGS_ALL = sorted(MAPPINGS)
BUDGET = 1500
BASE = ["reprogram", "--model", "fmnist-cnn", "--data", "digits", "--split", "150,60,60", "--budget", str(BUDGET),
        "--batch-size", "16", "--eval-every", "2", "--no-progress"]

# a sample of transforms × optimizers (every transform and every optimizer at least once)
TRANSFORMS = ["pad", "full", "lowdim", "coordinator"]
OPTIMIZERS = ["spsa", "spsa-gc", "zo-sgd", "zo-adam", "cma", "cma-subspace", "random", "ng:OnePlusOne"]
SAMPLE = [(TRANSFORMS[i % len(TRANSFORMS)], o) for i, o in enumerate(OPTIMIZERS)]


def _check(args: list[str], out_dir, capsys) -> str:
    """Run one combination; assert it is an honest refusal or an honest run; return which."""
    code = main(args + ["--out", str(out_dir)])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err and "Traceback" not in cap.out
    if code == 2:
        lines = [ln for ln in cap.err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("blackbox-rp reprogram: error: "), cap.err
        assert not out_dir.exists(), "a refusal comes before any query: nothing written"
        return "refused"
    assert code == 0, cap.err
    r = json.loads((out_dir / "results.json").read_text())
    led = r["ledger"]
    assert led["train"]["queries"] + led["validation"]["queries"] == r["queries"] <= BUDGET
    assert 0.0 <= r["test_accuracy"] <= 1.0
    assert r["val_accuracy"] is None or 0.0 <= r["val_accuracy"] <= 1.0
    assert isinstance(r["steps"], int) and isinstance(r["kept_theta0"], bool) and r["stop_reason"]
    assert "-100" not in cap.out and "nan%" not in cap.out.lower()
    # the summary states its steps, whether θ₀ was kept, and what it spent
    assert "spent:" in cap.out and ("steps" in cap.out or "θ₀" in cap.out)
    if r["kept_theta0"]:
        assert "θ₀" in cap.out
    return "ran"


@pytest.mark.slow
@pytest.mark.parametrize("exposure,mapping", list(itertools.product(EXPOSURES, MAPPINGS_ALL)))
def test_every_exposure_and_mapping_is_refused_clearly_or_runs_honestly(tmp_path, capsys, exposure, mapping):
    what = _check(BASE + ["--exposure", exposure, "--mapping", mapping], tmp_path / "run", capsys)
    needs = MAPPINGS[mapping].needs
    level = {"label": "label", "top1": "topk", "top5": "topk", "logits": "logits"}.get(exposure, "probs")
    order = ["logits", "probs", "topk", "label"]
    # a class mapping runs exactly when the exposure gives what it needs (label-only runs are possible);
    # a token mapping (a language model's verbalizer) is refused on this class-score model
    runs = order.index(level) <= order.index(needs) and not issubclass(MAPPINGS[mapping], TokenMapping)
    assert (what == "ran") == runs, (exposure, mapping, what)


@pytest.mark.slow
@pytest.mark.parametrize("transform,optimizer", SAMPLE)
def test_a_sample_of_transforms_and_optimizers_runs_honestly(tmp_path, capsys, transform, optimizer):
    assert _check(BASE + ["--transform", transform, "--optimizer", optimizer, "--mapping", "blm"],
                  tmp_path / "run", capsys) in ("ran", "refused")


@pytest.mark.parametrize("budget", ["1", "300", "483"])
def test_budgets_below_one_judged_step_are_refused_before_any_query(tmp_path, capsys, budget):
    args = [a if a != str(BUDGET) else budget for a in BASE]
    assert _check(args + ["--mapping", "flm"], tmp_path / "run", capsys) == "refused"
