"""What every remote oracle shares: secrets, the retry policy, and concurrent requests.

* :class:`Secret` holds an API key read from the environment; it never shows
  itself in ``repr``, ``str``, logs or exceptions, and :func:`redact` scrubs
  its value from any message that crosses the library boundary.
* :class:`RetryPolicy` and :func:`send_with_retries`: every attempt is charged
  to the ledger *before* it leaves (``call.attempt()``), every failed one is
  recorded (``call.failed``); 429, 5xx, timeouts and dropped connections are
  retried with capped exponential backoff and full jitter (Brooker, "Exponential
  Backoff and Jitter", AWS Architecture Blog 2015), never sooner than the
  server's ``Retry-After``; malformed answers are retried a bounded number of
  times. Retries are driven by ``tenacity``; the jitter comes from a seeded
  generator so a run's schedule is reproducible.
* :class:`AsyncRemoteOracle`: the base of remote oracles, owning that loop
  thread and the client living in it; a subclass sends one request.
* :class:`EventLoopThread` and :func:`answer_concurrently`: one event loop per
  oracle, in a daemon thread, keeps an async HTTP client and its connection
  pool alive across batches; chunks of a batch are sent with at most
  ``max_in_flight`` in the air, and each answered chunk is handed back to the
  *calling* thread at once (so it is journaled before anything else can fail).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import queue
import threading
import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import numpy as np

from blackbox_rp.exposure import Response
from blackbox_rp.ledger import BudgetExhausted
from blackbox_rp.oracle import Call, Oracle, OracleError

logger = logging.getLogger(__name__)

__all__ = ["Secret", "redact", "RetryPolicy", "Transient", "Malformed", "Refused", "parse_retry_after",
           "send_with_retries", "EventLoopThread", "answer_concurrently", "AsyncRemoteOracle"]

T = TypeVar("T")


class Secret:
    """An API key that never prints itself. Built from an environment variable (or given directly in code)."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "a value given in code"):
        if not value:
            raise ValueError(f"empty API key from {source}")
        self._value = value
        self.source = source

    @classmethod
    def from_env(cls, name: str) -> "Secret":
        value = os.environ.get(name, "")
        if not value:
            raise ValueError(f"environment variable {name} is not set or empty; export the API key there "
                             f"(keys are read only from the environment, never from code or config files)")
        return cls(value, f"${name}")

    def reveal(self) -> str:
        """The key itself: only for building a request header."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled; re-read it from the environment")


def redact(text: str, *secrets: Secret | None) -> str:
    """``text`` with every secret's value replaced by ``***``."""
    for s in secrets:
        if s is not None:
            text = text.replace(s.reveal(), "***")
    return text


class Transient(Exception):
    """A failed attempt worth retrying (429, 5xx, timeout, dropped connection)."""

    def __init__(self, detail: str, retry_after: float | None = None):
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class Malformed(Transient):
    """An answer that arrived but cannot be read; retried at most ``RetryPolicy.max_malformed`` times."""


class Refused(Exception):
    """A failed attempt that retrying cannot fix (401, 403, 400, 413, 422 ...)."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request.

    Args:
        max_attempts: attempts per request in all (each one is a call in the ledger).
        max_malformed: how many malformed answers to retry before giving up.
        backoff: base of the exponential backoff, seconds (attempt k waits U(0, backoff·2^(k-1))).
        backoff_max: cap of one backoff wait, seconds.
        max_retry_after: a ``Retry-After`` longer than this fails the request instead of sleeping.
    """

    max_attempts: int = 6
    max_malformed: int = 2
    backoff: float = 0.1
    backoff_max: float = 10.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be an int >= 1, got {self.max_attempts!r}")
        if not isinstance(self.max_malformed, int) or self.max_malformed < 0:
            raise ValueError(f"RetryPolicy.max_malformed must be an int >= 0, got {self.max_malformed!r}")
        if not (self.backoff >= 0 and self.backoff_max >= 0 and self.max_retry_after >= 0):
            raise ValueError("RetryPolicy waits must be non-negative")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


async def send_with_retries(send: Callable[[], Awaitable[T]], call: Call, policy: RetryPolicy,
                            rng: np.random.Generator, describe: Callable[[int, str], str],
                            secrets: Sequence[Secret | None] = ()) -> T:
    """Run ``send`` until it answers, charging a call per attempt; raise :class:`OracleError` for good.

    ``describe(attempts, detail)`` builds the final error message (it names the
    request: URL, chunk, inputs). :class:`BudgetExhausted` from ``call.attempt()``
    passes through untouched: the budget, not the network, ended the request.
    """
    from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

    malformed = 0

    def stop(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome is not None else None
        ra = getattr(exc, "retry_after", None)
        return (state.attempt_number >= policy.max_attempts or malformed > policy.max_malformed
                or (ra is not None and ra > policy.max_retry_after))

    def wait(state: RetryCallState) -> float:
        cap = min(policy.backoff_max, policy.backoff * 2.0 ** (state.attempt_number - 1))
        jitter = float(rng.uniform(0.0, cap)) if cap > 0 else 0.0
        exc = state.outcome.exception() if state.outcome is not None else None
        ra = getattr(exc, "retry_after", None)
        return max(jitter, ra or 0.0)

    retrying = AsyncRetrying(stop=stop, wait=wait, retry=retry_if_exception_type(Transient), reraise=True)
    try:
        async for attempt in retrying:
            with attempt:
                call.attempt()
                try:
                    result = await send()
                except (Transient, Refused) as e:
                    detail = redact(e.detail, *secrets)
                    call.failed(detail)
                    logger.info("attempt %d failed: %s", call.attempts, detail)
                    if isinstance(e, Malformed):
                        malformed += 1
                    raise
        return result
    except BudgetExhausted:
        raise
    except (Transient, Refused) as e:
        detail = redact(e.detail, *secrets)
        ra = getattr(e, "retry_after", None)
        if ra is not None and ra > policy.max_retry_after:
            detail += (f" (the server asked to wait {ra:.0f} s, more than RetryPolicy.max_retry_after="
                       f"{policy.max_retry_after:g} s)")
        raise OracleError(redact(describe(call.attempts, detail), *secrets)) from None


class EventLoopThread:
    """An asyncio event loop running in a daemon thread, for one oracle's async clients."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Awaitable[T]) -> "asyncio.Future[T]":
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def run(self, coro: Awaitable[T]) -> T:
        return self.submit(coro).result()

    def close(self, cleanup: Callable[[], Awaitable[None]] | None = None, timeout: float = 5.0) -> None:
        """Run ``cleanup`` (e.g. closing a client) in the loop, then stop the loop and join its thread."""
        if self.loop.is_closed():
            return
        if cleanup is not None and self._thread.is_alive():
            try:
                self.submit(cleanup()).result(timeout)
            except Exception as e:  # closing must not hide the error that led here
                logger.debug("cleanup failed: %s", e)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


def answer_concurrently(runner: EventLoopThread, chunks: list[Any],
                        answer_one: Callable[[int, Any], Awaitable[Response]], max_in_flight: int,
                        deliver: Callable[[int, Response], None]) -> None:
    """Answer ``chunks`` with at most ``max_in_flight`` requests in the air; ``deliver`` each in this thread.

    On the first failure no new request is started; requests already in flight
    are awaited and their answers delivered (they were paid for), then the
    first error is raised.
    """
    done: "queue.Queue[tuple[int, Response | None, BaseException | None]]" = queue.Queue()
    stop = threading.Event()

    async def one(i: int, sem: asyncio.Semaphore) -> None:
        async with sem:
            if stop.is_set():
                done.put((i, None, None))
                return
            try:
                r = await answer_one(i, chunks[i])
            except BaseException as e:  # handed to the calling thread, which re-raises it
                stop.set()
                done.put((i, None, e))
                return
            done.put((i, r, None))

    async def run_all() -> None:
        sem = asyncio.Semaphore(max_in_flight)
        await asyncio.gather(*(one(i, sem) for i in range(len(chunks))))

    fut = runner.submit(run_all())
    first: BaseException | None = None
    try:
        for _ in range(len(chunks)):
            i, r, e = done.get()
            if e is not None:
                first = first or e
            elif r is not None:
                try:
                    deliver(i, r)
                except Exception as de:  # a bad answer: stop sending, keep what is good
                    stop.set()
                    first = first or de
    except BaseException:  # e.g. Ctrl-C while waiting: send nothing more
        stop.set()
        raise
    fut.result()
    if first is not None:
        raise first


class AsyncRemoteOracle(Oracle):
    """Base of oracles that reach an API through an async client on their own event-loop thread.

    It owns what every remote oracle shares: the loop thread and the client that
    lives in it (both made on first use and shared by every thread querying the
    oracle), answering one request or many with at most ``max_in_flight`` in the
    air, and closing. A subclass implements ``_request(ci, chunk, call)`` (one
    request, with its retries), ``_new_client()`` (called in the loop thread)
    and ``_close_client(client)``, and names its loop thread with ``_thread_name()``.
    """

    def __init__(self, *args: Any, max_in_flight: int, **kwargs: Any):
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.max_in_flight = int(max_in_flight)
        self._runner: EventLoopThread | None = None
        self._runner_lock = threading.Lock()  # several threads may query one oracle
        self._client: Any = None
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------ subclasses
    def _thread_name(self) -> str:
        return f"{type(self).__name__} {self.identity}"

    @abstractmethod
    def _new_client(self) -> Any:
        """The async client (called in the loop thread, once)."""

    @abstractmethod
    async def _close_client(self, client: Any) -> None:
        """Close what ``_new_client`` made."""

    @abstractmethod
    async def _request(self, ci: int, chunk: Any, call: Call) -> Response:
        """Send chunk ``ci`` as one request (with its retries, each charged through ``call``)."""

    # ----------------------------------------------------------------- shared
    def _ensure_runner(self) -> EventLoopThread:
        with self._runner_lock:
            if self._runner is None:
                self._runner = EventLoopThread(self._thread_name())
            return self._runner

    def _get_client(self) -> Any:
        """The pooled async client; created inside the loop thread on first use."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _answer(self, inputs: Any, call: Call) -> Response:
        return self._ensure_runner().run(self._request(0, inputs, call))

    def _answer_chunks(self, chunks: list[Any], phase: str, deliver: Callable[[int, Response], None]) -> None:
        answer_concurrently(self._ensure_runner(), chunks,
                            lambda i, c: self._request(i, c, Call(self, phase, len(c))),
                            self.max_in_flight, deliver)

    def close(self) -> None:
        """Close the client and the loop thread. Copies made by ``with_exposure`` share them."""
        if self._runner is not None:
            client, self._client = self._client, None

            async def aclose() -> None:
                if client is not None:
                    await self._close_client(client)

            self._runner.close(aclose)
            self._runner = None

    def __enter__(self) -> "AsyncRemoteOracle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
