"""Query accounting: budgets that are never crossed, and a ledger that is exact.

Two numbers matter and they are different:

* ``queries`` — inputs the model answered for the algorithm, whether the answer
  came over the wire or from the journal. This is the query complexity papers
  report, and it does not depend on what the cache held, so a resumed run stops
  at exactly the same point as an uninterrupted one.
* ``calls`` — requests actually sent (every retry is a call). This is what an
  API bills; answers replayed from the journal cost no call.

``cache_hits`` says how many of the queries were answered from the journal.
Everything is kept per phase: :data:`PHASES` are the ones this library spends in
(``train``, ``validation``, ``test``, plus ``baseline``, ``serve`` and ``setup``);
queries may be charged to any other non-empty name too, but a :class:`Budget`
may only be scoped to the known phases — a budget over a misspelled phase would
limit nothing, silently.

A :class:`Budget` is checked *before* anything is sent: the oracle reserves the
queries of a whole batch, and every call is charged before its request leaves.
Reservations make this exact even with many requests in flight at once.

Example::

    >>> from blackbox_rp import Budget, Ledger, BudgetExhausted
    >>> ledger = Ledger(Budget(max_queries=100))
    >>> r = ledger.reserve_queries(64, phase="train")
    >>> ledger.commit_queries(r, answered=64, cache_hits=0)
    >>> ledger.reserve_queries(64, phase="train")
    Traceback (most recent call last):
    ...
    blackbox_rp.ledger.BudgetExhausted: query budget exhausted: 64 of 100 queries spent ...
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import logging
import math
import numbers
import threading
from dataclasses import dataclass, fields
from typing import Any, Iterator, Mapping, Sequence

logger = logging.getLogger(__name__)

PHASES = ("train", "validation", "test")
#: every phase the library itself charges: the three splits, the no-prompt baselines, predictions of a
#: reprogrammed model (``Reprogrammer.predict``) and set-up calls of remote oracles; a Budget may name only these
KNOWN_PHASES = PHASES + ("baseline", "serve", "setup")
DEFAULT_PHASE = "train"

__all__ = ["Budget", "BudgetExhausted", "Ledger", "PhaseCounts", "Reservation", "PHASES", "KNOWN_PHASES"]


def _count(value: Any, what: str) -> int:
    """``value`` as a non-negative int (numpy integers welcome), or ValueError naming ``what``.

    bool is refused although it is an int subclass: ``True`` queries is a mistake, not 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be a whole number >= 0, got {value!r} ({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{what} must be a whole number >= 0, got {value!r}")
    return int(value)


def _phase_name(value: Any) -> str:
    """A phase name as given: a non-empty string (an empty one used to become ``train`` silently)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"phase must be a non-empty name such as {', '.join(map(repr, KNOWN_PHASES))}; "
                         f"got {value!r}")
    return value


def _known_phase(value: Any) -> str:
    name = _phase_name(value)
    if name not in KNOWN_PHASES:
        close = difflib.get_close_matches(name, KNOWN_PHASES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Budget.phases: unknown phase {name!r}{hint} A budget limits only the phases it "
                         f"names, and the library spends in {', '.join(map(repr, KNOWN_PHASES))}")
    return name


@dataclass(frozen=True)
class Budget:
    """Limits on what may be spent. ``None`` means unlimited.

    ``phases`` scopes the limit: the counts of those phases are summed and
    compared to the limit (``None``: all phases together). A ledger can hold
    several budgets, e.g. one for train + validation and one for test.

    ``max_cost`` is checked against the cost bound the oracle declares for a
    call before sending it (a fixed price per call and per query is exact;
    token-priced APIs declare an upper bound).
    """

    max_queries: int | None = None
    max_calls: int | None = None
    max_cost: float | None = None
    phases: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("max_queries", "max_calls"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, _count(v, f"Budget.{name} (None: unlimited)"))
        if self.max_cost is not None:
            c = self.max_cost
            if isinstance(c, bool) or not isinstance(c, numbers.Real) or not (c >= 0) or math.isnan(c):
                raise ValueError(f"Budget.max_cost must be a number >= 0 or None (unlimited), got {c!r}")
            object.__setattr__(self, "max_cost", float(c))
        if self.phases is not None:
            phases = (self.phases,) if isinstance(self.phases, str) else self.phases
            if not isinstance(phases, (tuple, list)) or not phases:
                raise ValueError(f"Budget.phases must be None (all phases) or a non-empty tuple of phase names "
                                 f"from {', '.join(map(repr, KNOWN_PHASES))}; got {self.phases!r}")
            object.__setattr__(self, "phases", tuple(_known_phase(p) for p in phases))

    def covers(self, phase: str) -> bool:
        return self.phases is None or phase in self.phases

    def describe(self) -> str:
        parts = []
        if self.max_queries is not None:
            parts.append(f"{self.max_queries} queries")
        if self.max_calls is not None:
            parts.append(f"{self.max_calls} calls")
        if self.max_cost is not None:
            parts.append(f"cost {self.max_cost:g}")
        scope = "all phases" if self.phases is None else "+".join(self.phases)
        return f"Budget({', '.join(parts) or 'unlimited'}; {scope})"


@dataclass
class PhaseCounts:
    """What one phase spent. ``reserved`` are queries in flight (not yet answered);
    ``pending_cost`` the cost bounds of calls in flight (not yet priced)."""

    queries: int = 0
    calls: int = 0
    cache_hits: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    reserved: int = 0
    pending_cost: float = 0.0

    def to_dict(self) -> dict[str, float | int]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("reserved", "pending_cost")}
        d["model_queries"] = self.queries - self.cache_hits
        return d

    def add(self, other: "PhaseCounts") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class BudgetExhausted(RuntimeError):
    """Raised *before* a request that would cross a budget is sent.

    Attributes: ``budget`` (the limit hit), ``phase``, ``resource``
    (``"queries"``, ``"calls"`` or ``"cost"``), ``requested`` and ``spent``
    (the ledger's per-phase totals when it was refused).
    """

    def __init__(self, budget: Budget, phase: str, resource: str, requested: float,
                 used: float, limit: float, spent: Mapping[str, Mapping[str, float]]):
        self.budget = budget
        self.phase = phase
        self.resource = resource
        self.requested = requested
        self.used = used
        self.limit = limit
        self.spent = {k: dict(v) for k, v in spent.items()}
        scope = "all phases" if budget.phases is None else "+".join(budget.phases)
        noun = {"queries": "query", "calls": "call", "cost": "cost"}[resource]
        super().__init__(
            f"{noun} budget exhausted: {used:g} of {limit:g} {resource if resource != 'cost' else ''} "
            f"spent in {scope}; this request (phase {phase!r}) needs {requested:g} more, so it was not sent. "
            f"Spent so far: {_short(self.spent)}. Raise the limit in {budget.describe()} "
            f"or give the run fewer steps."
        )


def _short(spent: Mapping[str, Mapping[str, float]]) -> str:
    items = []
    for phase, d in spent.items():
        items.append(f"{phase}: {d.get('queries', 0)} queries / {d.get('calls', 0)} calls")
    return "; ".join(items) or "nothing"


@dataclass
class Reservation:
    """Queries held against the budget while a batch is in flight."""

    id: int
    phase: str
    n: int
    cost_bound: float = 0.0
    open: bool = True


class Ledger:
    """Thread-safe per-phase accounting of queries, calls, cache hits, tokens and cost.

    Oracles talk to it in a fixed order: ``reserve_queries`` for a whole batch
    (refused if the batch would cross a query budget), ``charge_call`` before
    every request (refused if it would cross a call or cost budget), then
    ``commit_queries`` with what was answered, or ``release`` on failure.
    """

    def __init__(self, budget: Budget | Sequence[Budget] | None = None, *, phase: str = DEFAULT_PHASE):
        if budget is None:
            budgets: tuple[Budget, ...] = ()
        elif isinstance(budget, Budget):
            budgets = (budget,)
        elif isinstance(budget, (list, tuple)):
            budgets = tuple(budget)
            for b in budgets:
                if not isinstance(b, Budget):
                    raise TypeError(f"Ledger budgets must be Budget instances, got {b!r} "
                                    f"({type(b).__name__}); e.g. Ledger([Budget(max_queries=1000)])")
        else:
            example = (f"Ledger(Budget(max_queries={budget!r}))" if isinstance(budget, numbers.Integral)
                       and not isinstance(budget, bool) else "Ledger(Budget(max_queries=1000))")
            raise TypeError(f"Ledger takes a Budget, a list of Budgets or None, got {budget!r} "
                            f"({type(budget).__name__}); for a query limit write {example}")
        self.budgets = budgets
        self._lock = threading.RLock()
        self._phases: dict[str, PhaseCounts] = {}
        self._phase = _phase_name(phase)
        self._ids = itertools.count(1)

    # ----------------------------------------------------------------- phases
    @property
    def phase(self) -> str:
        return self._phase

    @phase.setter
    def phase(self, value: str) -> None:
        self._phase = _phase_name(value)

    def _resolve(self, phase: str | None) -> str:
        """The phase a call charges: the given one (checked), or the current one when None."""
        return self._phase if phase is None else _phase_name(phase)

    @contextlib.contextmanager
    def in_phase(self, phase: str) -> Iterator["Ledger"]:
        """Charge everything inside the block to ``phase``."""
        old = self._phase
        self.phase = phase
        try:
            yield self
        finally:
            self._phase = old

    def _counts(self, phase: str) -> PhaseCounts:
        c = self._phases.get(phase)
        if c is None:
            c = self._phases[phase] = PhaseCounts()
        return c

    def _sum(self, budget: Budget) -> PhaseCounts:
        total = PhaseCounts()
        for p, c in self._phases.items():
            if budget.covers(p):
                total.add(c)
        return total

    # ------------------------------------------------------------ the protocol
    def reserve_queries(self, n: int, phase: str | None = None, cost_bound: float = 0.0) -> Reservation:
        """Hold ``n`` queries against every budget covering ``phase``, or raise BudgetExhausted."""
        phase = self._resolve(phase)
        n = _count(n, "the number of queries to reserve")
        with self._lock:
            for b in self.budgets:
                if not b.covers(phase):
                    continue
                tot = self._sum(b)
                if b.max_queries is not None and tot.queries + tot.reserved + n > b.max_queries:
                    raise BudgetExhausted(b, phase, "queries", n, tot.queries + tot.reserved,
                                          b.max_queries, self._snapshot_unlocked())
            self._counts(phase).reserved += n
            return Reservation(next(self._ids), phase, n, cost_bound)

    def charge_call(self, phase: str | None = None, cost_bound: float = 0.0) -> None:
        """Count one request about to be sent; refuse it if it would cross a call or cost budget."""
        phase = self._resolve(phase)
        with self._lock:
            for b in self.budgets:
                if not b.covers(phase):
                    continue
                tot = self._sum(b)
                if b.max_calls is not None and tot.calls + 1 > b.max_calls:
                    raise BudgetExhausted(b, phase, "calls", 1, tot.calls, b.max_calls,
                                          self._snapshot_unlocked())
                # calls still in flight hold their bound, so concurrent calls cannot overspend together
                if b.max_cost is not None and tot.cost + tot.pending_cost + cost_bound > b.max_cost + 1e-12:
                    raise BudgetExhausted(b, phase, "cost", cost_bound, tot.cost + tot.pending_cost, b.max_cost,
                                          self._snapshot_unlocked())
            c = self._counts(phase)
            c.calls += 1
            c.pending_cost += cost_bound

    def record_call_outcome(self, phase: str | None = None, *, failed: bool = False,
                            prompt_tokens: int = 0, completion_tokens: int = 0, cost: float = 0.0,
                            settle: float = 0.0) -> None:
        """Add what a sent call turned out to cost (tokens, money) and whether it failed.

        ``settle`` gives back the cost bound the call held while in flight (see ``charge_call``)."""
        phase = self._resolve(phase)
        with self._lock:
            c = self._counts(phase)
            c.pending_cost = max(0.0, c.pending_cost - settle)
            c.failed_calls += int(failed)
            c.prompt_tokens += int(prompt_tokens)
            c.completion_tokens += int(completion_tokens)
            c.cost += float(cost)

    def commit_queries(self, reservation: Reservation, answered: int, cache_hits: int = 0) -> None:
        """Turn ``answered`` reserved queries into spent ones (``cache_hits`` of them from the journal)."""
        if not reservation.open:
            raise RuntimeError("reservation already closed")
        answered = _count(answered, "answered")
        cache_hits = _count(cache_hits, "cache_hits")
        if answered > reservation.n or cache_hits > answered or answered < 0:
            raise ValueError(f"cannot commit {answered} answers ({cache_hits} cached) "
                             f"against a reservation of {reservation.n}")
        with self._lock:
            c = self._counts(reservation.phase)
            c.queries += answered
            c.cache_hits += cache_hits
            c.reserved -= answered
            reservation.n -= answered

    def release(self, reservation: Reservation) -> None:
        """Give back what a reservation still holds (the unanswered part of a failed batch)."""
        with self._lock:
            if reservation.open:
                self._counts(reservation.phase).reserved -= reservation.n
                reservation.n = 0
                reservation.open = False

    # ---------------------------------------------------------------- reading
    def counts(self, phase: str) -> PhaseCounts:
        with self._lock:
            c = self._phases.get(phase, PhaseCounts())
            return PhaseCounts(**{f.name: getattr(c, f.name) for f in fields(c)})

    def total(self, phases: Sequence[str] | None = None) -> PhaseCounts:
        """The counts of ``phases`` summed (None: all); any phase name may be read."""
        wanted = None if phases is None else ({phases} if isinstance(phases, str) else set(phases))
        with self._lock:
            total = PhaseCounts()
            for p, c in self._phases.items():
                if wanted is None or p in wanted:
                    total.add(c)
            return total

    @property
    def queries(self) -> int:
        return self.total().queries

    @property
    def calls(self) -> int:
        return self.total().calls

    @property
    def cache_hits(self) -> int:
        return self.total().cache_hits

    def remaining_queries(self, phase: str | None = None) -> int | None:
        """Queries ``phase`` may still spend under every budget (None: unlimited)."""
        phase = self._resolve(phase)
        with self._lock:
            rem = None
            for b in self.budgets:
                if b.covers(phase) and b.max_queries is not None:
                    t = self._sum(b)
                    r = b.max_queries - t.queries - t.reserved
                    rem = r if rem is None else min(rem, r)
            return rem

    def _snapshot_unlocked(self) -> dict[str, dict[str, float | int]]:
        return {p: c.to_dict() for p, c in sorted(self._phases.items())}

    def snapshot(self) -> dict[str, dict[str, float | int]]:
        """Per-phase counts plus ``total``: the dictionary results files carry."""
        with self._lock:
            out = self._snapshot_unlocked()
            out["total"] = self._sum(Budget()).to_dict()
            return out

    def __repr__(self) -> str:
        t = self.total()
        return (f"Ledger(queries={t.queries}, calls={t.calls}, cache_hits={t.cache_hits}, "
                f"budgets={[b.describe() for b in self.budgets]})")
