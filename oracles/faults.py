"""Faults a server injects on purpose, so that clients can be tested (and studied) under real failure.

A :class:`FaultConfig` gives, per request, the probability of each fault; a
seeded :class:`FaultInjector` draws them, so a run with one seed and one
request order fails the same way every time. ``schedule`` forces the first
requests' faults exactly (e.g. ``("429", "ok", "drop")``), which is what
tests use to check a ledger to the unit.

Faults: ``"429"`` (Too Many Requests with ``Retry-After``), ``"500"``,
``"delay"`` (answer after ``delay`` seconds: a client timeout shorter than it
sees a timeout), ``"drop"`` (the connection is cut before any response), and
``"malformed"`` (HTTP 200 with a body that is not the promised JSON).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

__all__ = ["FaultConfig", "FaultInjector", "FAULTS"]

FAULTS = ("429", "500", "delay", "drop", "malformed")


@dataclass(frozen=True)
class FaultConfig:
    """Per-request fault probabilities (they must sum to at most 1) and their parameters.

    Args:
        rate_429, rate_500, rate_delay, rate_drop, rate_malformed: probabilities per request.
        retry_after: seconds sent in ``Retry-After`` with an injected 429 (fractions allowed).
        retry_after_http_date: send ``Retry-After`` as an HTTP-date instead of seconds.
        delay: seconds a delayed answer waits.
        schedule: exact faults for the first requests (``"ok"`` for none), before the rates apply.
        seed: seeds the draws.
    """

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_delay: float = 0.0
    rate_drop: float = 0.0
    rate_malformed: float = 0.0
    retry_after: float = 1.0
    retry_after_http_date: bool = False
    delay: float = 1.0
    schedule: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        rates = self.rates()
        if any(not 0.0 <= r <= 1.0 for r in rates.values()) or sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault rates must be in [0, 1] and sum to at most 1, got {rates}")
        if self.retry_after < 0 or self.delay < 0:
            raise ValueError("retry_after and delay must be non-negative")
        object.__setattr__(self, "schedule", tuple(self.schedule))
        bad = [f for f in self.schedule if f not in FAULTS + ("ok",)]
        if bad:
            raise ValueError(f"unknown faults in schedule: {bad}; use {FAULTS + ('ok',)}")

    def rates(self) -> dict[str, float]:
        return {"429": self.rate_429, "500": self.rate_500, "delay": self.rate_delay,
                "drop": self.rate_drop, "malformed": self.rate_malformed}

    @property
    def active(self) -> bool:
        return bool(self.schedule) or any(r > 0 for r in self.rates().values())


class FaultInjector:
    """Draws the fault (or None) of each request, in arrival order; thread-safe."""

    def __init__(self, config: FaultConfig):
        self.config = config
        self._rng = np.random.default_rng(config.seed)
        self._lock = threading.Lock()
        self._n = 0
        self._names = list(config.rates())
        self._cum = np.cumsum(list(config.rates().values()))

    def draw(self) -> str | None:
        with self._lock:
            i = self._n
            self._n += 1
            if i < len(self.config.schedule):
                f = self.config.schedule[i]
                return None if f == "ok" else f
            if not self.config.active:
                return None
            u = float(self._rng.random())
        j = int(np.searchsorted(self._cum, u, side="right"))
        return self._names[j] if j < len(self._names) else None
