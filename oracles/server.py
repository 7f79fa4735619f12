"""Put any oracle behind a real HTTP API: keys, exposure, rate limits, quotas, size limits, faults.

The point is honesty: a black-box experiment run against a model served here
meets what a real API does — refused keys, 429s with ``Retry-After``, a quota
that runs out, oversized requests refused, and (on purpose) 500s, timeouts,
dropped connections and malformed bodies.

Endpoints (JSON; errors are OpenAI-style ``{"error": {"message", "type", "code"}}``):

* ``GET /healthz`` — readiness, no key needed.
* ``GET /v1/info`` — what the model takes and answers (used by ``HTTPOracle.from_server``).
* ``POST /v1/predict`` — ``{"inputs": batch}``; a batch is base64 float32 or nested lists
  (see :mod:`oracles.wire`), or a list of strings for text models; or the raw float32
  bytes as ``application/octet-stream`` with the shape in ``X-Array-Shape``. The answer
  (JSON) is shaped by the server's exposure policy.
* For text models with label words (:class:`~oracles.text_models.TextClassifierOracle`),
  OpenAI-compatible ``POST /v1/completions`` and ``POST /v1/chat/completions``: the model
  answers with one token, the label word of its top class, and ``logprobs`` /
  ``top_logprobs`` carry the class probabilities as that first token's log-probabilities.
  Token ids are class indices (``GET /v1/models`` lists them), so ``logit_bias`` works.
  ``usage`` counts whitespace-separated words as prompt tokens.

Keys arrive as ``Authorization: Bearer KEY`` (or ``X-API-Key``), are compared in
constant time, and are never logged: per-key state is keyed by a short hash.

Programmatic use (tests, benchmarks)::

    with OracleServer(TorchOracle("fmnist-cnn"), ServerConfig(exposure="top5"), api_keys=["k"]) as srv:
        oracle = HTTPOracle.from_server(srv.url, api_key=Secret("k"))
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import json
import logging
import math
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from blackbox_rp.exposure import Response, parse_exposure
from blackbox_rp.oracle import InputError, Oracle

from .faults import FaultConfig, FaultInjector
from .wire import BINARY, DTYPE_HEADER, SHAPE_HEADER, decode_array, decode_binary, response_to_json

logger = logging.getLogger(__name__)

__all__ = ["ServerConfig", "OracleServer", "build_app", "resolve_oracle"]


@dataclass(frozen=True)
class ServerConfig:
    """How the server guards and shapes its model.

    Args:
        exposure: what answers show (probs, logits, top<k>, label, rounded<n>).
        rate_limit: requests per second per key (token bucket; None: unlimited).
        burst: bucket size (requests allowed at once).
        quota: queries (inputs) per key for the server's lifetime (None: unlimited).
        quota_status: HTTP status once the quota is spent: 429 or 403.
        max_body_bytes: larger request bodies are refused with 413.
        max_batch: more inputs in one request are refused with 413.
        threads: model evaluations running at once (each in a worker thread).
        require_key: refuse to start without API keys (set False only for a local, private server).
        faults: faults injected on purpose (:class:`~oracles.faults.FaultConfig`).
        model_name: the id the OpenAI-compatible endpoints answer to (defaults to the oracle identity).
    """

    exposure: str = "probs"
    rate_limit: float | None = None
    burst: int = 10
    quota: int | None = None
    quota_status: int = 429
    max_body_bytes: int = 16 * 2**20
    max_batch: int = 1024
    threads: int = 2
    require_key: bool = True
    faults: FaultConfig = field(default_factory=FaultConfig)
    model_name: str | None = None

    def __post_init__(self) -> None:
        parse_exposure(self.exposure)  # a clear error now rather than at the first request
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ValueError(f"rate_limit must be positive or None, got {self.rate_limit}")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")
        if self.quota is not None and self.quota < 0:
            raise ValueError(f"quota must be >= 0 or None, got {self.quota}")
        if self.quota_status not in (429, 403):
            raise ValueError(f"quota_status must be 429 or 403, got {self.quota_status}")
        if self.max_body_bytes < 1 or self.max_batch < 1 or self.threads < 1:
            raise ValueError("max_body_bytes, max_batch and threads must be positive")


class HTTPError(Exception):
    """An error answer: status, message, and optional headers."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.headers = headers or {}


class _Bucket:
    """Token bucket (rate r per second, capacity b): the usual API rate limiter."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.t = float(burst), time.monotonic()

    def take(self) -> float:
        """0 if a request may go now, else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def resolve_oracle(spec: str | Oracle, **kwargs: Any) -> Oracle:
    """The model a server holds: any spec :func:`oracles.resolve.resolve_oracle` knows (the one resolver)."""
    from .resolve import resolve_oracle as resolve

    return resolve(spec, **kwargs)


def _key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:10]


class _App:
    """The ASGI application (built on starlette) around one oracle."""

    def __init__(self, oracle: Oracle, config: ServerConfig, api_keys: Sequence[str]):
        from starlette.applications import Starlette
        from starlette.routing import Route

        keys = [k for k in api_keys if k]
        if config.require_key and not keys:
            raise ValueError("the server needs at least one API key (e.g. blackbox-rp serve --api-key-env NAME); "
                             "use ServerConfig(require_key=False) / --no-auth only for a private local server")
        self._keys = [(k.encode(), _key_id(k)) for k in keys]
        # the model answers at its richest; the server's exposure policy decides what leaves
        self.oracle = oracle.with_exposure(oracle.source_level) if oracle.source_level in ("logits", "probs") \
            else oracle
        self.config = config
        self.exposure = parse_exposure(config.exposure)
        self.exposure.check_source(self.oracle.exposure.level)
        self.model_name = config.model_name or oracle.identity
        self.label_words: list[str] | None = getattr(oracle, "label_words", None)
        self.faults = FaultInjector(config.faults)
        self._buckets: dict[str, _Bucket] = {}
        self._quota_used: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stats: Counter[str] = Counter()
        self._limiter: Any = None
        routes = [Route("/healthz", self.healthz, methods=["GET"]),
                  Route("/v1/info", self.info, methods=["GET"]),
                  Route("/v1/models", self.models, methods=["GET"]),
                  Route("/v1/predict", self.predict, methods=["POST"])]
        if self.label_words is not None:
            routes += [Route("/v1/completions", self.completions, methods=["POST"]),
                       Route("/v1/chat/completions", self.chat, methods=["POST"])]
        self.app = Starlette(routes=routes)

    # -------------------------------------------------------------- helpers
    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._stats[name] += n

    def _auth(self, request: Any) -> str:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
        if not self._keys:
            return "anonymous"
        if not key:
            raise HTTPError(401, "missing API key: send 'Authorization: Bearer <key>'", "authentication_error")
        given = key.encode()
        for k, kid in self._keys:
            if hmac.compare_digest(given, k):
                return kid
        raise HTTPError(401, "invalid API key", "authentication_error")

    def _rate(self, kid: str) -> None:
        if self.config.rate_limit is None:
            return
        b = self._buckets.get(kid)
        if b is None:
            b = self._buckets[kid] = _Bucket(self.config.rate_limit, self.config.burst)
        wait = b.take()
        if wait > 0:
            raise HTTPError(429, f"rate limit of {self.config.rate_limit:g} requests/s per key exceeded; "
                                 f"retry after {wait:.2f} s", "rate_limit_error",
                            {"Retry-After": str(max(1, math.ceil(wait)))})

    def _reserve_quota(self, kid: str, n: int) -> None:
        q = self.config.quota
        if q is None:
            return
        with self._lock:
            used = self._quota_used[kid]
            if used + n > q:
                raise HTTPError(self.config.quota_status,
                                f"query quota exhausted for this key: {used} of {q} queries used, this request "
                                f"needs {n}; ask the operator for a larger quota", "insufficient_quota")
            self._quota_used[kid] = used + n

    def _release_quota(self, kid: str, n: int) -> None:
        if self.config.quota is not None:
            with self._lock:
                self._quota_used[kid] -= n

    async def _body(self, request: Any) -> bytes:
        limit = self.config.max_body_bytes
        cl = request.headers.get("content-length")
        if cl is not None and cl.isdigit() and int(cl) > limit:
            raise HTTPError(413, f"request body of {int(cl)} bytes exceeds the limit of {limit} bytes; "
                                 f"send fewer inputs per request")
        parts, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, f"request body exceeds the limit of {limit} bytes; send fewer inputs per request")
            parts.append(chunk)
        return b"".join(parts)

    @staticmethod
    def _json(raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise HTTPError(400, f"body is not valid JSON ({e})") from None
        if not isinstance(body, dict):
            raise HTTPError(400, f"body must be a JSON object, got {type(body).__name__}")
        return body

    async def _evaluate(self, x: Any) -> Response:
        import anyio

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.config.threads)
        return await anyio.to_thread.run_sync(self.oracle.query, x, limiter=self._limiter)

    async def _guard(self, request: Any) -> tuple[str, bytes, Any]:
        """Auth, rate limit, body, faults. Returns (key id, raw body, fault response or None)."""
        kid = self._auth(request)
        self._rate(kid)
        raw = await self._body(request)
        fault = self.faults.draw()
        if fault is not None:
            self._count(f"fault_{fault}")
            logger.debug("injecting fault %s", fault)
            if fault == "delay":
                await asyncio.sleep(self.config.faults.delay)
            else:
                return kid, raw, self._fault_response(fault)
        return kid, raw, None

    def _fault_response(self, fault: str) -> Any:
        from starlette.responses import Response as StarletteResponse

        f = self.config.faults
        if fault == "429":
            ra = (email.utils.formatdate(time.time() + f.retry_after, usegmt=True) if f.retry_after_http_date
                  else f"{f.retry_after:g}")
            return _error(HTTPError(429, "too many requests (injected fault)", "rate_limit_error", {"Retry-After": ra}))
        if fault == "500":
            return _error(HTTPError(500, "internal error (injected fault)", "server_error"))
        if fault == "malformed":
            return StarletteResponse(b'{"kind": "probs", "scores": [[0.1, 0.', media_type="application/json")
        return _Drop()

    async def _handle(self, request: Any, endpoint: str, handler: Any) -> Any:
        self._count(f"requests_{endpoint}")
        try:
            kid, raw, fault = await self._guard(request)
            if fault is not None:
                return fault
            return await handler(kid, raw, request.headers)
        except HTTPError as e:
            self._count(f"refused_{e.status}")
            return _error(e)

    # ------------------------------------------------------------ endpoints
    async def healthz(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({"ok": True})

    async def info(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        try:
            self._auth(request)
        except HTTPError as e:
            return _error(e)
        spec = self.oracle.input_spec
        top_k = getattr(self.exposure, "k", None) if self.exposure.level == "topk" else None
        return JSONResponse({
            "identity": self.oracle.identity, "num_classes": self.oracle.num_classes,
            "input": {**spec.__dict__, **_finite_range(spec)},
            "answer_kind": self.exposure.level, "exposure": self.exposure.key(), "top_k": top_k,
            "class_names": self.oracle.class_names, "max_batch": self.config.max_batch,
        })

    async def models(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        try:
            self._auth(request)
        except HTTPError as e:
            return _error(e)
        entry: dict[str, Any] = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "blackbox-rp"}
        if self.label_words is not None:
            entry["label_tokens"] = {w: i for i, w in enumerate(self.label_words)}
        return JSONResponse({"object": "list", "data": [entry]})

    async def predict(self, request: Any) -> Any:
        return await self._handle(request, "predict", self._predict)

    async def _predict(self, kid: str, raw: bytes, headers: Any) -> Any:
        from starlette.responses import JSONResponse

        spec = self.oracle.input_spec
        if headers.get("content-type", "").startswith(BINARY):
            if spec.kind == "text":
                raise HTTPError(415, "this model takes text: send JSON {'inputs': [strings]}")
            batch, encoding = ("binary", raw, headers.get(SHAPE_HEADER), headers.get(DTYPE_HEADER)), "base64"
        else:
            body = self._json(raw)
            if "inputs" not in body:
                raise HTTPError(422, "body needs an 'inputs' field holding the batch")
            batch = body["inputs"]
            encoding = "base64" if isinstance(batch, dict) else "lists"
        try:
            if isinstance(batch, tuple):
                x = decode_binary(batch[1], batch[2], batch[3], np.float32)
            else:
                x = batch if spec.kind == "text" else decode_array(batch, np.float32)
            x = spec.validate(x)
        except (ValueError, TypeError) as e:  # InputError is a ValueError
            raise HTTPError(422, f"bad inputs: {e}") from None
        n = len(x)
        if n == 0:
            raise HTTPError(422, "empty batch: send at least one input")
        if n > self.config.max_batch:
            raise HTTPError(413, f"{n} inputs in one request; this server takes at most {self.config.max_batch}")
        r = await self._answer(kid, x)
        return JSONResponse(response_to_json(self.exposure.apply(r), encoding))

    async def _answer(self, kid: str, x: Any) -> Response:
        n = len(x)
        self._reserve_quota(kid, n)
        try:
            r = await self._evaluate(x)
        except InputError as e:
            self._release_quota(kid, n)
            raise HTTPError(422, f"bad inputs: {e}") from None
        except Exception as e:  # the model failed: a 500 that says so, and the quota given back
            self._release_quota(kid, n)
            logger.exception("model evaluation failed")
            raise HTTPError(500, f"the model failed on this request ({type(e).__name__})", "server_error") from None
        self._count("answered_requests")
        self._count("answered_inputs", n)
        return r

    # ------------------------------------------------ OpenAI-compatible text
    def _check_model(self, body: dict[str, Any]) -> None:
        m = body.get("model")
        if m is not None and m != self.model_name:
            raise HTTPError(404, f"model {m!r} is not served here; GET /v1/models lists {[self.model_name]}",
                            "model_not_found")

    def _bias(self, body: dict[str, Any]) -> np.ndarray:
        bias = np.zeros(len(self.label_words or ()), dtype=np.float64)
        lb = body.get("logit_bias") or {}
        if not isinstance(lb, dict):
            raise HTTPError(422, "logit_bias must be an object {token_id: bias}")
        for tok, b in lb.items():
            try:
                if isinstance(b, bool):
                    raise TypeError("a bias is a number")
                t, v = int(tok), float(b)
            except (TypeError, ValueError, OverflowError):
                raise HTTPError(422, f"logit_bias entry {tok!r}: {b!r} is not token_id: number") from None
            if not -100.0 <= v <= 100.0:
                raise HTTPError(422, f"logit_bias values must be in [-100, 100], got {v}")
            if 0 <= t < len(bias):
                bias[t] = v
        return bias

    def _token_probs(self, r: Response, bias: np.ndarray) -> list[list[tuple[int, float]]]:
        """Per input: (token id, probability) pairs the exposure lets us show, best first."""
        if r.kind in ("logits", "probs"):
            p = r.probs().astype(np.float64) * np.exp(bias - bias.max())
            p /= p.sum(axis=1, keepdims=True)
            shown = self.exposure.apply(Response.from_probs(p.astype(np.float32)))
        else:
            shown = self.exposure.apply(r)
        out = []
        for i in range(len(shown)):
            if shown.kind in ("logits", "probs"):
                pi = shown.probs()[i]
                order = np.argsort(-pi, kind="stable")
                out.append([(int(c), float(pi[c])) for c in order if pi[c] > 0])
            elif shown.kind == "topk":
                out.append([(int(c), float(s)) for c, s in zip(shown.indices[i], shown.scores[i]) if s > 0])
            else:
                out.append([(int(shown.labels[i]), float("nan"))])
        return out

    def _want_logprobs(self, k: int) -> None:
        if k > 0 and self.exposure.level == "label":
            raise HTTPError(400, "this server's exposure policy is label-only: logprobs are not available; "
                                 "ask without logprobs for the label word alone", "invalid_request_error")

    async def completions(self, request: Any) -> Any:
        return await self._handle(request, "completions", self._completions)

    async def _completions(self, kid: str, raw: bytes, headers: Any) -> Any:
        from starlette.responses import JSONResponse

        body = self._json(raw)
        self._check_model(body)
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise HTTPError(422, "prompt must be a string or a non-empty list of strings (token arrays are not supported)")
        if len(prompts) > self.config.max_batch:
            raise HTTPError(413, f"{len(prompts)} prompts in one request; this server takes at most {self.config.max_batch}")
        if body.get("echo") or _int_field(body, "n", 1, 1, 2**31) != 1:
            raise HTTPError(422, "echo and n > 1 are not supported by this server")
        k = _int_field(body, "logprobs", 0, 0, 20)
        self._want_logprobs(k)
        bias = self._bias(body)
        r = await self._answer(kid, prompts)
        choices = []
        for i, toks in enumerate(self._token_probs(r, bias)):
            word = self.label_words[toks[0][0]]
            choice: dict[str, Any] = {"index": i, "text": word, "finish_reason": "length", "logprobs": None}
            if k > 0:
                choice["logprobs"] = {"tokens": [word], "token_logprobs": [math.log(toks[0][1])],
                                      "top_logprobs": [{self.label_words[c]: math.log(p) for c, p in toks[:k]}],
                                      "text_offset": [0]}
            choices.append(choice)
        return JSONResponse({"id": f"cmpl-{uuid.uuid4().hex[:16]}", "object": "text_completion",
                             "created": int(time.time()), "model": self.model_name, "choices": choices,
                             "usage": _usage(prompts)})

    async def chat(self, request: Any) -> Any:
        return await self._handle(request, "chat", self._chat)

    async def _chat(self, kid: str, raw: bytes, headers: Any) -> Any:
        from starlette.responses import JSONResponse

        body = self._json(raw)
        self._check_model(body)
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise HTTPError(422, "messages must be a non-empty list of {role, content}")
        users = [m for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
        if not users:
            raise HTTPError(422, "messages hold no user message to classify")
        content = users[-1].get("content")
        if isinstance(content, list):  # content parts
            texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            if not all(isinstance(t, str) for t in texts):
                raise HTTPError(422, "a text content part needs a string 'text'")
            content = " ".join(texts)
        if not isinstance(content, str):
            raise HTTPError(422, "the last user message's content must be text")
        if _int_field(body, "n", 1, 1, 2**31) != 1:
            raise HTTPError(422, "n > 1 is not supported by this server")
        k = _int_field(body, "top_logprobs", 0, 0, 20)
        want = body.get("logprobs")
        if want is not None and not isinstance(want, bool):
            raise HTTPError(422, f"logprobs must be true or false, got {json.dumps(want)[:40]}")
        want = bool(want)
        if k and not want:
            raise HTTPError(422, "top_logprobs needs logprobs: true")
        self._want_logprobs(int(want))
        bias = self._bias(body)
        r = await self._answer(kid, [content])
        toks = self._token_probs(r, bias)[0]
        word = self.label_words[toks[0][0]]
        logprobs = None
        if want:
            entry = lambda c, p: {"token": self.label_words[c], "logprob": math.log(p),
                                  "bytes": list(self.label_words[c].encode())}
            logprobs = {"content": [entry(*toks[0]) | {"top_logprobs": [entry(c, p) for c, p in toks[:k]]}]}
        return JSONResponse({
            "id": f"chatcmpl-{uuid.uuid4().hex[:16]}", "object": "chat.completion", "created": int(time.time()),
            "model": self.model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": word},
                         "finish_reason": "length", "logprobs": logprobs}],
            "usage": _usage([content])})


def _int_field(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    """An integer field of a request body in [low, high] (absent or null: ``default``), else a 422 naming it."""
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise HTTPError(422, f"{name} must be an integer in [{low}, {high}], got {json.dumps(v)[:40]}")
    return v


def _usage(prompts: list[str]) -> dict[str, int]:
    pt = sum(max(1, len(p.split())) for p in prompts)
    return {"prompt_tokens": pt, "completion_tokens": len(prompts), "total_tokens": pt + len(prompts)}


def _finite_range(spec: Any) -> dict[str, float | None]:
    return {k: (float(v) if math.isfinite(v) else None) for k, v in (("low", spec.low), ("high", spec.high))}


def _error(e: HTTPError) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"message": e.message, "type": e.kind, "code": e.status}},
                        status_code=e.status, headers=e.headers)


class _Drop:
    """An ASGI 'response' that cuts the connection without answering (an injected dropped connection)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        transport = getattr(getattr(receive, "__self__", None), "transport", None)
        if transport is not None:
            transport.abort()
            for _ in range(3):  # let the server notice the disconnect before the app returns
                await asyncio.sleep(0)
            return
        # other servers: promise a body, send part of it, and stop (the server closes the connection)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b'{"kind":', "more_body": True})


def build_app(oracle: Oracle, config: ServerConfig | None = None, api_keys: Sequence[str] = ()) -> Any:
    """The starlette ASGI app serving ``oracle`` (for any ASGI server)."""
    return _App(oracle, config or ServerConfig(), api_keys).app


def _bind_advice(host: str, port: int, e: OSError) -> str:
    """Why ``host:port`` cannot be listened on, in the words of the ``serve`` options."""
    import errno

    where = f"cannot listen on {host}:{port}"
    if e.errno == errno.EADDRINUSE:
        return f"{where}: the port is already in use; choose another --port, or --port 0 for any free port"
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"{where}: permission denied (ports below 1024 need privileges); choose a --port of 1024 or more"
    if isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL:
        return (f"{where}: {host!r} is not an address of this machine ({e.strerror or e}); use --host 127.0.0.1 "
                f"(this machine only) or 0.0.0.0 (every interface)")
    return f"{where}: {e.strerror or e}"


class OracleServer:
    """Serve an oracle with uvicorn on a real socket; a context manager for tests and benchmarks.

    ``port=0`` takes a free port; ``url`` tells which. ``stats`` counts requests,
    answers, refusals (by status) and injected faults.
    """

    def __init__(self, oracle: Oracle | str, config: ServerConfig | None = None, *, api_keys: Sequence[str] = (),
                 host: str = "127.0.0.1", port: int = 0, log_level: str = "warning", access_log: bool = False):
        self.config = config or ServerConfig()
        self.oracle = resolve_oracle(oracle)
        self._app = _App(self.oracle, self.config, api_keys)
        self.host, self.port = host, port
        self.log_level, self.access_log = log_level, access_log
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def stats(self) -> dict[str, int]:
        return self._app.stats()

    def _make_server(self) -> tuple[Any, socket.socket]:
        import uvicorn

        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only when the socket
        # says it is TCP; without it Nagle's algorithm and delayed ACKs add ~40 ms to every answer
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM,
                             socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            raise OSError(e.errno, _bind_advice(self.host, self.port, e)) from e
        sock.listen(256)  # connections queue from now on, before uvicorn takes the socket over
        self.port = sock.getsockname()[1]
        cfg = uvicorn.Config(self._app.app, log_level=self.log_level, access_log=self.access_log, lifespan="off",
                             timeout_graceful_shutdown=2, backlog=256)
        return uvicorn.Server(cfg), sock

    def start(self, timeout: float = 30.0) -> "OracleServer":
        """Start serving in a daemon thread; return once the socket accepts requests."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._server, sock = self._make_server()
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"oracle-server:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the server on {self.url} stopped while starting; see the log above")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the server on {self.url} did not start within {timeout:g} s")
            time.sleep(0.01)
        logger.info("serving %s on %s (exposure %s)", self.oracle.identity, self.url, self._app.exposure.key())
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving; bounded in time (a graceful stop, then a forced one)."""
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(5.0)
        self._thread = None

    def serve_forever(self, ready: Callable[[str], None] | None = None) -> None:
        """Serve in this thread until interrupted (Ctrl-C / SIGTERM): what ``blackbox-rp serve`` does.

        ``ready(url)`` is called once the socket is bound (with ``port=0`` it names the port taken).
        """
        server, sock = self._make_server()
        if ready is not None:
            ready(self.url)
        server.run(sockets=[sock])

    def __enter__(self) -> "OracleServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
