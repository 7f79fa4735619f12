"""Exposures for robustness studies: seeded noisy scores, and one task run under several exposures."""

import numpy as np
import pytest

from blackbox_rp.data import load_dataset, split_dataset
from blackbox_rp.exposure import ExposureError, Noisy, Response, parse_exposure
from blackbox_rp.studies.exposure_study import ExposureStudy, run_exposure_study


def _resp(n=20, c=10, seed=0):
    return Response.from_logits(np.random.default_rng(seed).standard_normal((n, c)).astype(np.float32) * 3)


def test_noisy_parses_and_names_itself():
    assert parse_exposure("noisy0.05") == Noisy(0.05, 0)
    assert parse_exposure("noisy0.1:seed3") == Noisy(0.1, 3)
    assert parse_exposure("noisy:0.1:seed=3") == Noisy(0.1, 3)
    e = Noisy(0.05, 2)
    assert parse_exposure(e.key()) == e and e.level == "probs"
    with pytest.raises(ValueError, match="noisy"):
        parse_exposure("noisyhigh")
    with pytest.raises(ValueError, match="sigma"):
        Noisy(2.0)


def test_noisy_is_seeded_per_answer_and_stays_a_distribution():
    r = _resp()
    a, b = Noisy(0.05, 1).apply(r), Noisy(0.05, 1).apply(r)
    assert np.array_equal(a.scores, b.scores)                    # same answer, same noise
    assert not np.array_equal(a.scores, Noisy(0.05, 2).apply(r).scores)  # another seed, other noise
    np.testing.assert_allclose(a.scores.sum(1), 1.0, atol=1e-5)
    assert (a.scores >= 0).all() and np.array_equal(a.labels, a.scores.argmax(1))
    p = r.probs()
    assert 0.01 < np.abs(a.scores - p).mean() < 0.1              # it does perturb, by about sigma
    # a row's noise depends on that row only: the same answer in another batch is perturbed alike
    part = Noisy(0.05, 1).apply(r.take(slice(5, 8)))
    assert np.array_equal(part.scores, a.scores[5:8])
    np.testing.assert_allclose(Noisy(0.0, 1).apply(r).scores, p, atol=1e-6)
    with pytest.raises(ExposureError):
        Noisy(0.05).apply(Response("label", 10, np.zeros(3, np.int64)))


def test_noisy_exposure_on_an_oracle_replays_from_the_journal(tmp_path):
    from oracles import TorchOracle

    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    o1 = TorchOracle("fmnist-cnn", exposure="noisy0.05:seed1", journal=tmp_path / "j.sqlite")
    r1 = o1(x)
    o2 = TorchOracle("fmnist-cnn", exposure="noisy0.05:seed1", journal=tmp_path / "j.sqlite")
    r2 = o2(x)
    assert np.array_equal(r1.scores, r2.scores) and o2.ledger.counts("train").cache_hits == 8
    clean = TorchOracle("fmnist-cnn", exposure="probs")(x)
    assert not np.allclose(r1.scores, clean.scores)


def test_exposure_study_runs_one_task_per_exposure_and_records_refusals():
    from oracles import TorchOracle

    d = load_dataset("digits")
    train, val, test = split_dataset(d.subset(np.arange(300)), (0.5, 0.25, 0.25), seed=0)
    made = []

    def make(exposure, ledger):
        made.append((exposure, ledger))
        return TorchOracle("fmnist-cnn", exposure=exposure, ledger=ledger)

    study = ExposureStudy(exposures=("probs", "top1", "noisy0.05", "label"), mapping="blm+", budget=1200,
                          max_steps=3, eval_every=2, out_size=28)
    rows = run_exposure_study(make, train, val, test, study)
    assert [r["exposure"] for r in rows] == ["probs", "top1", "noisy0.05:seed0", "label"]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "refused"]  # blm+ needs top-k: label is refused
    assert "needs 'topk'" in rows[3]["reason"]
    for r, (_, ledger) in zip(rows[:3], made):
        assert 0 < r["queries"] <= 1200 and r["queries"] == ledger.counts("train").queries + ledger.counts("validation").queries
        assert 0.0 <= r["test_accuracy"] <= 1.0 and r["queries_at_best"] <= r["queries"]
    assert len({id(led) for _, led in made}) == 4  # a fresh ledger (and budget) for every exposure
    with pytest.raises(ValueError, match="unknown exposure"):
        ExposureStudy(exposures=("probs", "fuzzy"), max_steps=2)
    with pytest.raises(ValueError, match="bound"):
        ExposureStudy()
