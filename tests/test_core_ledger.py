"""Promise 1: the ledger is exact and a budget is never crossed, not by one query."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from blackbox_rp import Budget, BudgetExhausted, InputSpec, Ledger, Oracle, Response
from oracles import TorchOracle


class CountingNet(torch.nn.Module):
    """A real (tiny) linear classifier that counts how many inputs reached it."""

    def __init__(self, dim: int = 6, classes: int = 4):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.lin = torch.nn.Linear(dim, classes)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(classes, dim, generator=g))
            self.lin.bias.zero_()
        self.seen = 0
        self.forwards = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        self.forwards += 1
        return self.lin(x)


def vec_oracle(budget=None, max_batch=64, **kw) -> tuple[TorchOracle, CountingNet]:
    net = CountingNet()
    o = TorchOracle(net, input_spec=InputSpec.vectors(6), ledger=Ledger(budget), max_batch=max_batch, **kw)
    net.seen = net.forwards = 0  # the class-count probe at construction is not a query
    return o, net


def batch(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal((n, 6)).astype(np.float32)


def test_budget_of_n_queries_lets_exactly_n_through_and_refuses_before_any_model_call():
    rng = np.random.default_rng(0)
    o, net = vec_oracle(Budget(max_queries=100))
    for _ in range(3):
        o(batch(rng, 30))
    assert o.ledger.queries == 90 and net.seen == 90
    with pytest.raises(BudgetExhausted) as e:
        o(batch(rng, 11))
    assert net.seen == 90, "a refused batch must not reach the model"
    assert e.value.resource == "queries" and e.value.limit == 100 and e.value.used == 90
    assert "90 of 100" in str(e.value) and "11 more" in str(e.value)
    o(batch(rng, 10))
    assert o.ledger.queries == 100 and net.seen == 100
    with pytest.raises(BudgetExhausted):
        o(batch(rng, 1))
    assert net.seen == 100 and o.ledger.queries == 100


def test_call_budget_stops_mid_batch_and_keeps_what_was_answered(tmp_path):
    rng = np.random.default_rng(1)
    x = batch(rng, 50)
    o, net = vec_oracle(Budget(max_calls=3), max_batch=10, journal=tmp_path / "j.sqlite")
    with pytest.raises(BudgetExhausted) as e:
        o(x)
    assert e.value.resource == "calls"
    assert o.ledger.calls == 3 and o.ledger.queries == 30 and net.seen == 30
    assert len(o.journal) == 30, "answered chunks are journaled before the budget stops the batch"
    # more budget: the 30 answered inputs are replayed, only 20 go to the model, in 2 calls
    o2, net2 = vec_oracle(Budget(max_calls=2), max_batch=10, journal=o.journal)
    r = o2(x)
    assert len(r) == 50 and net2.seen == 20 and o2.ledger.calls == 2
    assert o2.ledger.queries == 50 and o2.ledger.cache_hits == 30


def test_phase_scoped_budget_leaves_other_phases_alone():
    rng = np.random.default_rng(2)
    o, _ = vec_oracle([Budget(max_queries=40, phases=("train", "validation")), Budget(max_queries=25, phases="test")])
    o(batch(rng, 30), phase="train")
    with o.phase("validation"):
        o(batch(rng, 10))
        with pytest.raises(BudgetExhausted) as e:
            o(batch(rng, 1))
    assert e.value.phase == "validation"
    o(batch(rng, 25), phase="test")
    with pytest.raises(BudgetExhausted):
        o(batch(rng, 1), phase="test")
    snap = o.ledger.snapshot()
    assert (snap["train"]["queries"], snap["validation"]["queries"], snap["test"]["queries"]) == (30, 10, 25)
    assert snap["total"]["queries"] == 65


class PricedOracle(Oracle):
    """A priced backend: 0.01 per call plus 0.001 per input, known before sending."""

    source_level = "probs"

    def __init__(self, **kw):
        super().__init__(InputSpec.vectors(2), 2, **kw)

    @property
    def identity(self) -> str:
        return "priced"

    def cost_bound(self, n: int) -> float:
        return 0.01 + 0.001 * n

    def _answer(self, x, call):
        call.attempt()
        call.usage()  # priced by `price`
        p = 1 / (1 + np.exp(-x[:, :1]))
        return Response.from_probs(np.hstack([1 - p, p]))

    def price(self, n, prompt_tokens, completion_tokens):
        return self.cost_bound(n)


def test_cost_budget_is_checked_before_the_call():
    o = PricedOracle(ledger=Ledger(Budget(max_cost=0.05)), max_batch=10)
    x = np.random.default_rng(5).standard_normal((30, 2)).astype(np.float32)
    for i in range(2):  # 2 calls x 0.02 = 0.04
        o(x[10 * i:10 * i + 10])
    with pytest.raises(BudgetExhausted) as e:
        o(x[20:])
    assert e.value.resource == "cost"
    assert o.ledger.total().cost == pytest.approx(0.04) and o.ledger.calls == 2


def test_concurrent_reservations_never_overshoot():
    ledger = Ledger(Budget(max_queries=1000))
    granted = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        r = np.random.default_rng(seed)
        for _ in range(200):
            n = int(r.integers(1, 9))
            try:
                res = ledger.reserve_queries(n, "train")
            except BudgetExhausted:
                continue
            ledger.commit_queries(res, n)
            ledger.release(res)
            with lock:
                granted.append(n)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert ledger.queries == sum(granted) <= 1000
    assert ledger.queries >= 1000 - 8, "the budget should be filled up to the last small batch"
    assert ledger.counts("train").reserved == 0


class FlakyOracle(Oracle):
    """A backend whose every k-th attempt fails and is retried, as a remote API's would be.

    It answers with a real linear model; `attempts`/`failures` are counted here,
    independently of the ledger, so the test can check the ledger against them.
    """

    source_level = "logits"

    def __init__(self, fail_every: int, **kw):
        self.fail_every = fail_every
        self.attempts = 0
        self.failures = 0
        self.w = np.random.default_rng(3).standard_normal((6, 4)).astype(np.float32)
        super().__init__(InputSpec.vectors(6), 4, **kw)

    @property
    def identity(self) -> str:
        return "flaky-linear"

    def _answer(self, x, call):
        for _ in range(5):
            call.attempt()
            self.attempts += 1
            if self.attempts % self.fail_every == 0:
                self.failures += 1
                call.failed("injected 503")
                continue
            return Response.from_logits(x @ self.w)
        raise RuntimeError("gave up")


def test_calls_queries_and_cache_hits_add_up_with_retries_and_repeats(tmp_path):
    rng = np.random.default_rng(4)
    o = FlakyOracle(fail_every=3, max_batch=8, journal=tmp_path / "j.sqlite")
    base = batch(rng, 20)
    # a batch with in-batch repeats: 20 distinct inputs, 5 of them twice
    x1 = np.concatenate([base, base[:5]])
    r1 = o(x1)
    np.testing.assert_array_equal(r1.labels[20:], r1.labels[:5])
    # the same inputs again (journal) plus 4 new ones
    x2 = np.concatenate([base[10:], batch(rng, 4)])
    o(x2)
    t = o.ledger.total()
    assert t.queries == 25 + 14
    assert t.cache_hits == 5 + 10
    assert t.queries - t.cache_hits == 24 == len(o.journal), "each distinct input reached the model once"
    assert t.calls == o.attempts and t.failed_calls == o.failures > 0
    requests = -(-20 // 8) + -(-4 // 8)
    assert t.calls == requests + o.failures
    log = list(o.journal.calls_log())
    assert sum(c["ok"] for c in log) == requests and sum(not c["ok"] for c in log) == o.failures


def test_budget_validation_messages():
    with pytest.raises(ValueError, match="max_queries"):
        Budget(max_queries=-1)
    with pytest.raises(ValueError, match="max_cost"):
        Budget(max_cost=float("nan"))
    with pytest.raises(TypeError, match="Budget"):
        Ledger([Budget(), "100"])  # type: ignore[list-item]
