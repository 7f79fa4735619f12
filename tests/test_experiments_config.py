"""The config tree: one checker refuses an unknown key or a bad value before any query, naming the key, the
value and what is accepted; --set overrides any key; the resolved config round-trips through TOML; the
budget plan refuses a budget that cannot validate a step."""

from __future__ import annotations

import pytest

from blackbox_rp.cli import main
from blackbox_rp.experiments.config import ConfigError, dumps_toml, from_dict, load, loads
from blackbox_rp.experiments.preflight import BudgetTooSmall, plan_run

BASE = '[task]\ndata = "digits"\n[oracle]\nmodel = "fmnist-cnn"\n[budget]\nqueries = 3000\n'


@pytest.mark.parametrize("text, says", [
    ('[task]\ndata = "digits"\nsed = 1', "unknown key task.sed (= 1); accepted keys of [task]: data, split, seed"),
    ('[tsk]\ndata = "digits"', "unknown section [tsk]; accepted sections: task, oracle, transform, mapping"),
    ('[task]\nseed = "one"', "task.seed = 'one' is not accepted; expected an integer"),
    ('[task]\nseed = 1.5', "task.seed = 1.5 is not accepted; expected an integer"),
    ('[task]\nseed = -1', "task.seed = -1 is not accepted; expected a non-negative integer"),
    ('[task]\nsplit = [0.5, 0.5]', "task.split = [0.5, 0.5] is not accepted; expected three positive numbers"),
    ('[budget]\nqueries = 0', "budget.queries = 0 is not accepted; expected a positive integer"),
    ('[budget]\nqueries = true', "budget.queries = True is not accepted; expected"),
    ('[optimizer]\nname = "ng:"\n[budget]\nmax_steps=1', None),
    ('[optimizer]\nname = "adamw"', "optimizer.name = 'adamw' is not accepted; expected one of "),
    ('[mapping]\nname = "nope"', "mapping.name = 'nope' is not accepted; expected one of blm, blm+, derangement, flm"),
    ('[oracle]\nexposure = "top0"', "oracle.exposure = 'top0' is not accepted"),
    ('[oracle]\nmodel = "fmnist-cnn"\napi_key_env = "sk-123 secret"', "the NAME of an environment variable"),
    ('[oracle]\nmodel = "fmnist-cnn"\napi_key_env = "KEY"', "an http(s):// URL when wire, openai or api_key_env"),
    ('[fit]\nrefit = "always"', "fit.refit = 'always' is not accepted; expected one of auto, candidate, epoch, joint"),
    ('[fit]\nrefit = "candidate"\nbatch_size = 8\ncandidate_folds = 9',
     "fit.candidate_folds = 9 is not accepted; expected an integer from 2 to fit.batch_size (8)"),
    ('[loss]\nname = "ce"\nnope = 1', "loss parameters {'nope': 1} are not accepted"),
    ('[transform]\nsize = 28\nimage_size = 40', "transform.image_size = 40 is not accepted; expected at most"),
    ('[task]\ndata = "digits"\n[budget]\n', "budget needs queries"),
    ('[task\n', "not valid TOML"),
    ('[optimizer]\nname = "spsa-gc"\ndirections_per_step = 0', "optimizer.directions_per_step = 0 is not accepted; expected a positive"),
    ('[optimizer]\nname = "spsa-gc"\ndirections_per_step = 4\nq = 2', "optimizer.directions_per_step = 4 and optimizer.q = 2 set the same"),
    ('[baselines]\nwhitebox_lr = 0.0', "baselines.whitebox_lr = 0.0 is not accepted; expected a positive number"),
    ('[baselines]\nwhitebox_readout = "adam"', "baselines.whitebox_readout = 'adam' is not accepted; expected one of"),
])
def test_bad_keys_and_values_name_the_key_the_value_and_what_is_accepted(text, says):
    if says is None:  # a family prefix is accepted here, checked when the optimizer is built
        loads(text)
        return
    with pytest.raises(ConfigError) as e:
        loads(text if "[budget]" in text else text + "\n[budget]\nqueries = 3000")
    assert says in str(e.value)


def test_params_go_to_their_component_and_set_overrides_any_key():
    cfg = loads(BASE + '[optimizer]\nname = "zo-adam"\nlr = 0.05\n[transform]\nname = "pad"\nwidth = 3',
                ["optimizer.lr=0.01", "task.seed=4", "mapping.name=flm", "transform.low_res=[4,4]"])
    assert cfg.optimizer.params == {"lr": 0.01} and cfg.task.seed == 4 and cfg.mapping.name == "flm"
    assert cfg.transform.params == {"width": 3, "low_res": (4, 4)}
    with pytest.raises(ConfigError, match="SECTION.KEY"):
        loads(BASE, ["lr=0.01"])
    with pytest.raises(ConfigError, match="unknown key budget.querys"):
        loads(BASE, ["budget.querys=10"])


def test_the_resolved_config_round_trips_through_toml(tmp_path):
    cfg = loads(BASE + '[optimizer]\nname = "spsa-gc"\nq = 2\n[baselines]\nprobe_views = [20, 28]',
                ["mapping.params_x=1"] if False else None)
    (tmp_path / "c.toml").write_text(dumps_toml(cfg))
    assert load(tmp_path / "c.toml") == cfg
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "missing.toml")


def test_run_plan_refuses_what_cannot_validate_a_step_and_warns_when_validation_is_rare():
    from blackbox_rp.data import load_dataset, split_dataset
    from blackbox_rp.reprogram import Reprogrammer
    from oracles import TorchOracle

    train, val, _ = split_dataset(load_dataset("digits"), (1079, 359, 359), seed=0)
    rp = Reprogrammer.build("lowdim", TorchOracle("fmnist-cnn"), "blm", "spsa-gc", train, out_size=28,
                            optimizer_params={"q": 2}, batch_size=64, eval_every=25)
    # θ₀ fit 1079 + validation 359 + a step of 4 × 64 + its validation 359 + the final refit's 1079
    with pytest.raises(BudgetTooSmall, match="at least 3132 are needed"):
        plan_run(rp, 3000, None, len(train), len(val))
    plan = plan_run(rp, 5000, None, len(train), len(val))
    assert plan.steps == rp.budget_plan(len(train), len(val)).steps(5000) >= 1
    assert plan.spent <= 5000 and any("fewer than the evaluation interval" in w for w in plan.warnings)
    free = plan_run(rp, None, 7, len(train), len(val))
    assert free.steps == 7 and not free.warnings
    assert plan_run(rp, None, None, len(train), len(val)).steps is None


def test_run_command_refuses_a_bad_config_before_any_query(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE + "[optimizer]\nname = \"spsa\"\n[fitt]\nx = 1\n")
    assert main(["run", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "unknown section [fitt]" in err and str(bad) in err
    assert not (tmp_path / "r").exists()
    ok = tmp_path / "ok.toml"
    ok.write_text(BASE.replace("digits", "no-such-data"))
    assert main(["run", str(ok), "--out", str(tmp_path / "r")]) == 2
    assert "neither a bundled dataset" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_directions_set_what_each_optimizer_calls_its_candidates_per_step():
    from blackbox_rp.optim import make
    from blackbox_rp.optim.base import directions_param

    assert [directions_param(n) for n in ("spsa-gc", "zo-adam", "cma", "random", "ng:TwoPointsDE")] == \
        ["q", "q", "popsize", "popsize", "num_workers"]
    for name, per_step in (("spsa-gc", 8), ("zo-adam", 8), ("cma", 4), ("random", 4)):
        cfg = loads(f'[optimizer]\nname = "{name}"\ndirections_per_step = 4\nlr = 0.01\n[budget]\nmax_steps = 1'
                    if name == "zo-adam" else f'[optimizer]\nname = "{name}"\ndirections_per_step = 4\n[budget]\nmax_steps = 1')
        params = cfg.optimizer.resolved_params(cfg.mapping.name)
        # the queries one step costs follow the directions (SPSA-GC: 2 per pair; ZO-Adam: 2 per central difference)
        assert make(name, 6, seed=0, **params).queries_per_step == per_step, name
    assert loads('[optimizer]\nname = "zo-adam"\nlr = 0.01\n[budget]\nmax_steps = 1').optimizer.resolved_params(
        "linear")["lr"] == 0.01  # params still override the recommendation
