"""The ask/tell contract: registry, config errors, state round trips, reproducibility, the minimize loop."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from blackbox_rp import Budget, BudgetExhausted, Ledger
from blackbox_rp.optim import (ConfigError, EarlyStopping, JsonLinesLogger, available, make, minimize)
from blackbox_rp.optim.minimize import BatchObjective
from blackbox_rp.optim.functions import make_function

ROOT = Path(__file__).resolve().parents[1]
OURS = ["spsa", "spsa-gc", "zo-sgd", "zo-adam", "cma", "cma-subspace", "random"]
ALL = OURS + ["ng:OnePlusOne", "ng:CMA", "ng:DE"]
SMALL = {"cma-subspace": {"subspace_dim": 4}}


def _opt(name: str, dim: int = 8, seed: int = 0, **params):
    return make(name, dim, seed=seed, x0=np.full(dim, 0.5), **{**SMALL.get(name, {}), **params})


def _run(opt, f, steps: int) -> None:
    for _ in range(steps):
        c = opt.ask()
        opt.tell(c, [f(x) for x in c])


# ------------------------------------------------------------------ registry and configs
def test_registry_lists_the_required_names():
    names = available()
    for name in OURS:
        assert name in names
    assert "ng:<name>" in names


def test_unknown_optimizer_lists_the_registry():
    with pytest.raises(ConfigError) as e:
        make("spsaa", 3)
    for name in OURS:
        assert name in str(e.value)


def test_unknown_nevergrad_name_suggests_close_matches():
    with pytest.raises(ConfigError, match="NGOpt"):
        make("ng:NGOptt", 3)


@pytest.mark.parametrize("name", OURS + ["ng:OnePlusOne"])
def test_unknown_param_is_rejected_naming_the_accepted_ones(name):
    with pytest.raises(ConfigError) as e:
        make(name, 3, learning_rat=0.1)
    msg = str(e.value)
    assert "learning_rat" in msg and "accepted parameters" in msg
    accepted = msg.split("accepted parameters:")[1]
    assert {"spsa": "first_step", "zo-adam": "beta1", "cma": "sigma0", "random": "popsize",
            "ng:OnePlusOne": "num_workers"}.get(name, "") in accepted


@pytest.mark.parametrize("name,params,needle", [
    ("spsa", {"q": 0}, "q must be a positive int"),
    ("spsa", {"perturbation": "gauss"}, "'rademacher', 'segmented'"),
    ("zo-adam", {"directions": "cube"}, "'gaussian', 'sphere'"),
    ("zo-sgd", {"block": 9}, "block 9 is larger than dim 3"),
    ("cma", {"options": {"seed": 3}}, "seed comes from make"),
    ("random", {"sigma": -1.0}, "sigma must be positive"),
    ("spsa-gc", {"preset": "nope"}, "presets: blackvip"),
])
def test_bad_values_get_a_message_saying_what_is_allowed(name, params, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        make(name, 3, **params)


def test_blackvip_preset_gives_blackvip_values_and_explicit_params_win():
    opt = make("spsa-gc", 4, preset="blackvip", c=0.005)
    assert (opt.config.a, opt.config.A, opt.config.alpha, opt.config.gamma, opt.config.beta, opt.config.q) == \
        (0.01, 1.0, 0.4, 0.1, 0.9, 5)
    assert opt.config.c == 0.005


def test_x0_must_match_dim():
    with pytest.raises(ConfigError, match="x0 has 2 values but dim is 3"):
        make("spsa", 3, x0=[1.0, 2.0])


# ------------------------------------------------------------------ the ask/tell contract
@pytest.mark.parametrize("name", ALL)
def test_ask_tell_contract(name):
    opt = _opt(name)
    cands = opt.ask()
    assert len(cands) == opt.queries_per_step
    assert all(c.dtype == np.float64 and c.shape == (8,) for c in cands)
    assert [c.tolist() for c in opt.ask()] == [c.tolist() for c in cands], "asking twice re-asks the same step"
    with pytest.raises(ValueError, match="one loss each"):
        opt.tell(cands, [0.0] * (len(cands) + 1))
    with pytest.raises(ValueError, match="must be finite"):
        opt.tell(cands, [float("nan")] * len(cands))
    opt.tell(cands, [float(c @ c) for c in cands])
    assert opt.step == 1 and opt.recommend().shape == (8,)
    with pytest.raises(RuntimeError, match="call ask"):
        opt.tell(cands, [0.0] * len(cands))


def test_gradient_optimizers_expose_last_gradient():
    for name in ("spsa", "spsa-gc", "zo-sgd", "zo-adam"):
        opt = _opt(name)
        _run(opt, lambda x: float(x @ x), 1)
        assert opt.last_gradient.shape == (8,) and np.any(opt.last_gradient != 0)


def test_spsa_pairs_are_symmetric_around_the_iterate():
    opt = make("spsa", 5, seed=0, x0=np.arange(5.0), q=3)
    cands = opt.ask()
    for plus, minus in zip(cands[0::2], cands[1::2]):
        np.testing.assert_allclose((plus + minus) / 2, np.arange(5.0))


# ------------------------------------------------------------------ state
@pytest.mark.parametrize("name", ALL)
def test_save_load_continue_equals_continuing(name):
    f = make_function("ellipsoid", 8)
    a = _opt(name, seed=3)
    _run(a, f, 4)
    a.ask()  # a pending ask is part of the state too
    saved = pickle.loads(pickle.dumps(a.state_dict()))
    _run(a, f, 6)
    b = _opt(name, seed=99)  # another seed: everything must come from the state
    b.load_state_dict(saved)
    _run(b, f, 6)
    assert b.step == a.step
    np.testing.assert_array_equal(a.recommend(), b.recommend())
    assert a.best[1] == b.best[1]


def test_loading_a_state_of_another_optimizer_is_refused():
    with pytest.raises(ValueError, match="state is of 'spsa'"):
        make("zo-adam", 8).load_state_dict(make("spsa", 8).state_dict())


# ------------------------------------------------------------------ reproducibility and global state
_RUN = """
import json, sys, numpy as np
from blackbox_rp.optim import make, minimize
from blackbox_rp.optim.functions import make_function
f = make_function("rosenbrock", 6)
out = {}
for name in sys.argv[1].split(","):
    opt = make(name, 6, seed=7, x0=f.x0, **({"subspace_dim": 3} if name == "cma-subspace" else {}))
    r = minimize(f, opt, budget=300)
    out[name] = [r.fun, r.recommendation.tolist(), r.queries]
print(json.dumps(out))
"""


def test_fixed_seeds_give_identical_results_across_processes():
    names = ",".join(OURS + ["ng:OnePlusOne", "ng:NGOpt"])
    runs = [subprocess.run([sys.executable, "-c", _RUN, names], capture_output=True, text=True, timeout=120,
                           cwd=ROOT, check=True).stdout.strip().splitlines()[-1] for _ in range(2)]
    assert runs[0] == runs[1]
    assert set(json.loads(runs[0])) == set(names.split(","))


@pytest.mark.parametrize("name", ["cma", "cma-subspace", "ng:CMA", "ng:OnePlusOne"] + OURS)
def test_global_numpy_random_state_is_untouched(name):
    before = np.random.get_state()
    minimize(make_function("sphere", 5), _opt(name, dim=5), budget=200)
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_cma_seed_controls_the_run():
    f = make_function("sphere", 6)
    r1 = minimize(f, make("cma", 6, seed=1, x0=f.x0), budget=120)
    r2 = minimize(f, make("cma", 6, seed=1, x0=f.x0), budget=120)
    r3 = minimize(f, make("cma", 6, seed=2, x0=f.x0), budget=120)
    np.testing.assert_array_equal(r1.recommendation, r2.recommendation)
    assert not np.array_equal(r1.recommendation, r3.recommendation)


# ------------------------------------------------------------------ minimize
class _CountingObjective(BatchObjective):
    def __init__(self):
        self.evaluations = 0
        self.batches: list[int] = []

    def __call__(self, x: np.ndarray) -> float:
        self.evaluations += 1
        return float(x @ x)

    def batch(self, xs: list[np.ndarray]) -> list[float]:
        self.batches.append(len(xs))
        return [self(x) for x in xs]


@pytest.mark.parametrize("name", ["spsa-gc", "zo-adam", "cma", "random"])
def test_minimize_never_exceeds_the_budget_and_batches_each_step(name):
    obj = _CountingObjective()
    opt = _opt(name)
    budget = 7 * opt.queries_per_step + opt.queries_per_step - 1  # not a multiple of a step
    res = minimize(obj, opt, budget=budget)
    assert res.queries == obj.evaluations == 7 * opt.queries_per_step <= budget
    assert obj.batches == [opt.queries_per_step] * 7, "one batch call per ask"
    assert res.steps == 7 and "budget" in res.stop_reason
    assert res.fun == min(h["best"] for h in res.history) and res.fun == pytest.approx(float(res.x @ res.x))


def test_minimize_works_with_a_plain_function_and_max_steps():
    res = minimize(lambda x: float(np.sum((x - 1) ** 2)), make("zo-adam", 3, seed=0), max_steps=5)
    assert res.steps == 5 and res.queries == 5 * 20 and res.stop_reason == "max_steps (5) reached"


def test_budget_smaller_than_one_step_is_an_error():
    with pytest.raises(ValueError, match="smaller than one step"):
        minimize(lambda x: 0.0, make("spsa-gc", 3), budget=5)


def test_callbacks_log_json_lines_and_stop_early(tmp_path):
    log = tmp_path / "run.jsonl"
    res = minimize(lambda x: 1.0, make("random", 3, seed=0), budget=10_000,
                   callbacks=[JsonLinesLogger(log), EarlyStopping(patience=3)])
    assert res.stop_reason.startswith("early stopping") and res.steps == 4
    lines = [json.loads(s) for s in log.read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4] and lines[-1]["queries"] == res.queries


def test_a_callback_returning_a_reason_stops_the_loop():
    res = minimize(lambda x: float(x @ x), make("spsa", 3, seed=0, x0=np.ones(3)), budget=1000,
                   callbacks=[lambda rec: "good enough" if rec["best"] < 2.5 else None])
    assert res.stop_reason == "good enough" and res.fun < 2.5


def test_progress_bar_runs(capsys):
    from blackbox_rp.optim import ProgressBar

    res = minimize(lambda x: float(x @ x), make("random", 2, seed=0), budget=30, callbacks=[ProgressBar(total=30)])
    assert res.queries == 30
    assert "30/30" in capsys.readouterr().err


def test_minimize_stops_cleanly_on_budget_exhausted_from_a_real_oracle():
    """A TorchOracle over the bundled fmnist-cnn with a query budget drives the loop's end."""
    pytest.importorskip("torch")
    from oracles import TorchOracle

    ledger = Ledger(Budget(max_queries=500))
    oracle = TorchOracle("fmnist-cnn", exposure="probs", ledger=ledger)
    rng = np.random.default_rng(0)
    images = rng.uniform(0.2, 0.8, size=(8, 1, 28, 28)).astype(np.float32)
    labels = np.arange(8) % 10

    class PromptLoss(BatchObjective):
        """Cross-entropy of an additive 7x7 prompt upsampled to 28x28: one oracle query per image."""

        def _inputs(self, theta: np.ndarray) -> np.ndarray:
            prompt = np.kron(theta.reshape(7, 7), np.ones((4, 4)))
            return np.clip(images + prompt[None, None], 0, 1).astype(np.float32)

        def __call__(self, theta: np.ndarray) -> float:
            return self.batch([theta])[0]

        def batch(self, thetas: list[np.ndarray]) -> list[float]:
            x = np.concatenate([self._inputs(t) for t in thetas])
            p = oracle(x).probs().reshape(len(thetas), len(images), -1)  # one request for the whole step
            return [float(-np.mean(np.log(pi[np.arange(len(labels)), labels] + 1e-12))) for pi in p]

    opt = make("spsa-gc", 49, seed=0, q=2)  # 4 candidates x 8 images = 32 queries per step
    res = minimize(PromptLoss(), opt, budget=None)
    assert res.stop_reason.startswith("budget exhausted")
    assert ledger.queries <= 500 and ledger.queries == res.queries * len(images) == 15 * 32
    assert np.isfinite(res.fun) and res.x.shape == (49,)
    with pytest.raises(BudgetExhausted):
        oracle(images[:1].repeat(21, axis=0))


# ------------------------------------------------------------------ the nevergrad adapter
def test_importing_nevergrad_through_the_adapter_leaves_global_random_state_alone():
    code = ("import numpy as np\nfrom blackbox_rp.optim import make\nb = np.random.get_state()[1].copy()\n"
            "make('ng:OnePlusOne', 3, seed=0).ask()\nprint(bool((np.random.get_state()[1] == b).all()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         check=True).stdout.split()
    assert out[-1] == "True"


def test_nevergrad_batch_asks_honour_num_workers():
    opt = make("ng:DE", 5, seed=0, num_workers=4)
    assert opt.queries_per_step == 4 and len(opt.ask()) == 4
    res = minimize(lambda x: float(x @ x), make("ng:DE", 5, seed=0, num_workers=4), budget=41)
    assert res.queries == 40 and res.steps == 10


@pytest.mark.filterwarnings("ignore:COBYLA")
def test_nevergrad_thread_based_optimizers_are_closed_and_refuse_to_save():
    from blackbox_rp.optim.ng import NevergradError, _messaging_threads

    opt = make("ng:Cobyla", 3, seed=0, x0=[1.0, 1.0, 1.0], budget=1000)  # scipy's run outlives our 20
    minimize(lambda x: float(x @ x), opt, budget=20)
    threads = _messaging_threads(opt.opt)
    assert len(threads) == 1 and threads[0].is_alive()
    with pytest.raises(NevergradError, match="cannot be saved"):
        opt.state_dict()
    opt.close()
    threads[0]._thread.join(timeout=10)
    assert not threads[0].is_alive(), "close() must end nevergrad's worker thread (else the process hangs at exit)"


def test_a_process_left_with_a_live_nevergrad_thread_still_exits():
    code = ("import numpy as np\nfrom blackbox_rp.optim import make\n"
            "opt = make('ng:Cobyla', 3, seed=0, x0=[1.0, 1.0, 1.0], budget=1000)\n"
            "for _ in range(3):\n    c = opt.ask(); opt.tell(c, [float(x @ x) for x in c])\n"
            "print('done')\n")  # opt is still referenced at exit and never closed
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.split()[-1] == "done"


@pytest.mark.filterwarnings("ignore:COBYLA:UserWarning")  # scipy's note on nevergrad's settings, not ours
def test_every_optimizer_can_be_closed():
    """close() leaves no thread behind: ng:Cobyla starts one (scipy in nevergrad's worker), the others none;
    closing twice is harmless."""
    import threading
    import time

    before = set(threading.enumerate())
    for name in OURS + ["ng:OnePlusOne", "ng:Cobyla"]:
        opt = _opt(name)
        _run(opt, lambda x: float(x @ x), 3)
        started = set(threading.enumerate()) - before
        assert bool(started) == (name == "ng:Cobyla"), (name, started)
        opt.close()
        opt.close()
        deadline = time.monotonic() + 10
        while any(t.is_alive() for t in started) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not [t for t in started if t.is_alive()], f"{name}: close() left {started} running"
