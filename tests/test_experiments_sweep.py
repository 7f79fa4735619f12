"""Sweeps and reports: the product of a grid and seeds, each run in its own directory; a sweep on a real
Dask LocalCluster (loopback TCP) gives the rows of the local process pool; a restarted sweep skips finished
runs; the report's numbers are the runs' JSON; apply reuses a run's θ and ω."""

from __future__ import annotations

import csv
import json
import statistics

import pytest

from blackbox_rp.cli import main
from blackbox_rp.experiments.report import collect, summarize, write_report
from blackbox_rp.experiments.sweep import expand, parse_grid, sweep

BASE = {"task": {"data": "digits", "split": [150, 80, 80], "seed": 0},
        "oracle": {"model": "fmnist-cnn"}, "mapping": {"name": "blm+"}, "optimizer": {"name": "spsa-gc"},
        "budget": {"queries": 3000, "max_steps": 3}, "fit": {"batch_size": 16, "eval_every": 1}}
GRID = {"mapping.name": ["blm+", "flm"]}


def test_grid_expansion_is_checked_before_any_query():
    assert parse_grid(["budget.queries=4000,8000", "optimizer.name=spsa,cma"]) == \
        {"budget.queries": [4000, 8000], "optimizer.name": ["spsa", "cma"]}
    assert len(expand(BASE, GRID, 3)) == 6
    with pytest.raises(ValueError, match="mapping.name = 'nope' is not accepted"):
        expand(BASE, {"mapping.name": ["flm", "nope"]}, 1)
    with pytest.raises(ValueError, match="unknown key budget.querys"):
        expand(BASE, {"budget.querys": [1]}, 1)
    with pytest.raises(ValueError, match="names point mapping.name=flm,seed=0 twice"):
        expand(BASE, {"mapping.name": ["flm", "flm"]}, 1)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_rows_of_local_processes_and_restarts_skip_finished(tmp_path):
    distributed = pytest.importorskip("distributed")
    from blackbox_rp.experiments.sweep import make_executor

    done: list[tuple[str, bool]] = []
    local = sweep(BASE, tmp_path / "local", GRID, seeds=1, max_workers=2, on_done=lambda r, s: done.append((r["run"], s)))
    assert [s for _, s in done] == [False, False]
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "local").rglob("results.json")}
    # restarted with one more seed: the two finished runs are read back, only the new two run
    done.clear()
    more = sweep(BASE, tmp_path / "local", GRID, seeds=2, max_workers=2, on_done=lambda r, s: done.append((r["run"], s)))
    assert sorted(done) == [("mapping.name=blm+,seed=0", True), ("mapping.name=blm+,seed=1", False),
                            ("mapping.name=flm,seed=0", True), ("mapping.name=flm,seed=1", False)]
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    assert [r for r in more if r["seed"] == 0] == local
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        executor, close = make_executor("dask://" + cluster.scheduler_address.split("://")[1], None)
        try:
            on_dask = sweep(BASE, tmp_path / "dask", GRID, seeds=2, executor=executor)
        finally:
            close()
    assert on_dask == more
    # each run kept its own journal
    assert len(list((tmp_path / "dask").glob("*/journal.sqlite"))) == 4

    # the report's numbers are the runs' JSON
    rep = write_report(tmp_path / "local", tmp_path / "rep", target=0.2)
    runs = collect(tmp_path / "local")
    assert rep["runs"] == 4 and len(rep["rows"]) == 2
    for row in rep["rows"]:
        mapping = row["group"].split("=")[-1]
        mine = [r for r in runs if r["config"]["mapping"]["name"] == mapping]
        accs = [r["test_accuracy"] for r in mine]
        assert row["test_mean"] == pytest.approx(statistics.fmean(accs), abs=0)
        assert row["test_sd"] == pytest.approx(statistics.stdev(accs), abs=0)
        name = f"no prompt + {mapping} mapping"
        base = [next(b["accuracy"] for b in r["baselines"] if b["name"] == name) for r in mine]
        gains = [a - b for a, b in zip(accs, base)]
        assert row["baselines"][name]["gain_mean"] == pytest.approx(statistics.fmean(gains), abs=0)
        reach = [next((c["queries"] for c in r["curve"] if c["val_accuracy"] >= 0.2), None) for r in mine]
        hit = [q for q in reach if q is not None]
        assert row["reach_runs"] == len(hit)
        assert f"{100 * row['test_mean']:.1f} ± {100 * row['test_sd']:.1f}" in rep["table"]
    with open(tmp_path / "rep" / "runs.csv") as fh:
        rows = list(csv.DictReader(fh))
    by_dir = {r["run_dir"]: r for r in runs}
    assert set(by_dir) == {p.parent.name for p in (tmp_path / "local").glob("*/results.json")}
    assert len(rows) == 4
    for row in rows:
        r = by_dir[row["run_dir"]]
        assert float(row["test_accuracy"]) == r["test_accuracy"] and int(row["queries"]) == r["queries"]
    assert (tmp_path / "rep" / "report.png").stat().st_size > 10_000

    # apply: the run's θ and ω on inputs, with the queries spent
    one = sorted((tmp_path / "local").glob("mapping.name=blm+,seed=0"))[0]
    out = tmp_path / "pred.csv"
    assert main(["apply", str(one), "--data", "digits", "--limit", "40", "--out", str(out)]) == 0
    with open(out) as fh:
        preds = list(csv.DictReader(fh))
    assert len(preds) == 40 and set(preds[0]) == {"index", "prediction", "class", "label"}


def test_report_cli_prints_the_table(tmp_path, capsys):
    from blackbox_rp.experiments.config import from_dict
    from blackbox_rp.experiments.run import run

    for seed in (0, 1):
        tree = json.loads(json.dumps(BASE))
        tree["task"]["seed"] = seed
        tree["budget"]["max_steps"] = 1
        run(from_dict(tree), tmp_path / f"s{seed}", progress=False, echo=lambda s: None)
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| all runs | 2 |" in out and "gain over it (paired, points; seeds above)" in out
    assert summarize(collect(tmp_path))[0]["seeds"] == [0, 1]


@pytest.mark.slow
def test_sweep_cli_runs_the_grid_then_skips_it_and_says_so(tmp_path, capsys):
    cfg = tmp_path / "base.toml"
    cfg.write_text('[task]\ndata = "digits"\nsplit = [120, 60, 60]\n[oracle]\nmodel = "fmnist-cnn"\n'
                   '[mapping]\nname = "flm"\n[optimizer]\nname = "spsa-gc"\n[budget]\nqueries = 3000\nmax_steps = 1\n'
                   '[fit]\nbatch_size = 8\neval_every = 1\n')
    args = ["sweep", str(cfg), "--grid", "mapping.name=flm,blm", "--seeds", "1", "--workers", "2",
            "--out", str(tmp_path / "s")]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "2 runs (2 run now, 0 already finished)" in out.out and "sweep" in out.err
    assert main(args) == 0
    assert "2 runs (0 run now, 2 already finished)" in capsys.readouterr().out
    assert main(["sweep", str(cfg), "--grid", "mapping.name=flm", "--executor", "ray://x", "--out",
                 str(tmp_path / "t")]) == 2
    assert "expected local or dask://HOST:PORT" in capsys.readouterr().err
    # every point is built before any run: a parameter the mapping lacks, a budget too small for a point
    assert main(["sweep", str(cfg), "--grid", "mapping.nme=1,2", "--out", str(tmp_path / "u")]) == 2
    err = capsys.readouterr().err
    assert "sweep point mapping.nme=1,seed=0 cannot run" in err and not (tmp_path / "u").exists()
    assert main(["sweep", str(cfg), "--grid", "budget.queries=3000,200", "--out", str(tmp_path / "v")]) == 2
    assert "sweep point budget.queries=200,seed=0 cannot run: a budget of 200" in capsys.readouterr().err


def _results(seed, test, probe, mapping="blm+", whitebox=None, kept=False):
    """A finished run's results.json as the report reads it (hand-made numbers, so the table can be checked)."""
    r = {"config": {"task": {"data": "digits", "seed": seed}, "mapping": {"name": mapping}}, "seed": seed,
         "test_accuracy": test, "budget": {"queries": 3000}, "queries": 2990, "kept_theta0": kept, "curve": [],
         "baselines": [{"name": "no prompt + linear probe", "accuracy": probe}]}
    if whitebox is not None:
        r["whitebox"] = whitebox
    return r


def test_report_pairs_gains_by_seed_counts_seeds_above_and_shows_the_whitebox_ceiling():
    from blackbox_rp.experiments.report import markdown

    # seed 0: prompt 0.91 over probe 0.90 (+1); seed 1: 0.93 under 0.95 (-2); seed 2's probe was skipped
    runs = [_results(0, 0.91, 0.90, whitebox={"test_accuracy": 0.96}),
            _results(1, 0.93, 0.95, whitebox={"test_accuracy": 0.94}, kept=True),
            _results(2, 0.50, None, whitebox={"test_accuracy": 0.95}),
            _results(0, 0.40, 0.90, mapping="flm", whitebox={"skipped": "the white-box ceiling needs a local torch model"})]
    rows = summarize(runs)
    blm = rows[0]
    assert blm["group"] == "mapping.name=blm+" and blm["kept_theta0"] == 1
    probe = blm["baselines"]["no prompt + linear probe"]
    assert probe["n"] == 2 and probe["above"] == 1 and probe["gain_mean"] == pytest.approx(-0.005)
    assert probe["gain_sd"] == pytest.approx(statistics.stdev([0.01, -0.02]))
    assert blm["whitebox"]["mean"] == pytest.approx(0.95) and blm["whitebox"]["n"] == 3
    table = markdown(rows)
    assert "| mapping.name=blm+ | 3 | 3000 | 78.0 ± 24.3 | 2990 | 1/3 | 92.5 ± 3.5 | -0.5 ± 2.1; 1/2 | 95.0 ± 1.0 |" \
        in table
    assert "| mapping.name=flm | 1 | 3000 | 40.0 ± 0.0 | 2990 | 0/1 | 90.0 ± 0.0 | -50.0 ± 0.0; 0/1 | " \
           "the white-box ceiling needs a local torch model |" in table
    assert "white-box ceiling % (NOT black-box)" in table
    assert "white-box" not in markdown(summarize([_results(0, 0.9, 0.8)]))  # no ceiling asked: no column


def test_a_finished_run_of_another_config_is_refused_not_mixed_in(tmp_path):
    from blackbox_rp.experiments.config import dumps_toml, from_dict

    (name, tree), = expand(BASE, {}, 1)
    other = json.loads(json.dumps(tree))
    other["task"]["split"] = [100, 50, 50]  # the same point name, another split
    d = tmp_path / name
    d.mkdir()
    (d / "config.toml").write_text(dumps_toml(from_dict(other)))
    (d / "results.json").write_text("{}")
    with pytest.raises(ValueError, match=f"{name} holds a finished run of another config"):
        sweep(BASE, tmp_path, {}, 1)
