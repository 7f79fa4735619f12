"""A model behind a JSON-over-HTTP API, as an oracle.

``HTTPOracle`` posts each chunk of a batch as one JSON request (``httpx``
async client, a bounded connection pool, at most ``max_in_flight`` requests
in the air) and reads the scores, top-k or labels from the answer where a
:class:`WireSchema` says they are. Retries (429, 5xx, timeouts, dropped
connections, malformed answers) follow :class:`~oracles.remote.RetryPolicy`;
every attempt is a call in the ledger, every answered input a query, and each
answered chunk is journaled as soon as it arrives.

Example (against ``blackbox-rp serve``, which speaks the default schema)::

    oracle = HTTPOracle.from_server("http://127.0.0.1:8000", api_key_env="BBRP_API_KEY")
    r = oracle(x)                    # x: (N, 1, 28, 28) float32 in [0, 1]
"""

from __future__ import annotations

import json
import logging
import socket
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from blackbox_rp.exposure import NEEDS, Exposure, LabelOnly, Probs, Response, TopK
from blackbox_rp.ledger import Ledger
from blackbox_rp.oracle import Call, InputSpec, OracleError

from .remote import (AsyncRemoteOracle, Malformed, Refused, RetryPolicy, Secret, Transient,
                     parse_retry_after, redact, send_with_retries)
from .wire import ENCODINGS, encode_array, encode_binary, response_from_json

logger = logging.getLogger(__name__)

__all__ = ["HTTPOracle", "WireSchema"]

NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass(frozen=True)
class WireSchema:
    """Where things are in the requests and answers of a JSON API.

    Args:
        path: endpoint path appended to the base URL.
        encoding: how a batch of arrays is sent: ``"binary"`` (the body is the float32 bytes),
            ``"base64"`` (float32 bytes in JSON) or ``"lists"`` (nested JSON lists). Text is always JSON.
        inputs_field: body field holding the batch.
        extra: constant body fields, e.g. ``(("model", "my-model"),)``.
        answer_kind: what the API returns: logits, probs, topk or label.
        kind_field: answer field naming the kind (checked when present; None to skip).
        scores_field / labels_field / indices_field: dotted paths into the answer (``"output.probs"``).
        top_k: for topk answers, the k the API returns (sets the default exposure).
    """

    path: str = "/v1/predict"
    encoding: str = "binary"
    inputs_field: str = "inputs"
    extra: tuple[tuple[str, Any], ...] = ()
    answer_kind: str = "probs"
    kind_field: str | None = "kind"
    scores_field: str | None = "scores"
    labels_field: str | None = "labels"
    indices_field: str | None = "indices"
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"WireSchema.encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if self.answer_kind not in NEEDS:
            raise ValueError(f"WireSchema.answer_kind must be one of {NEEDS}, got {self.answer_kind!r}")
        if not self.path.startswith("/"):
            raise ValueError(f"WireSchema.path must start with '/', got {self.path!r}")
        if self.encoding == "binary" and self.extra:
            raise ValueError("WireSchema.extra needs a JSON body; use encoding='base64' or 'lists' with it")
        if self.answer_kind == "topk" and (self.top_k is None or self.top_k < 1):
            raise ValueError("WireSchema(answer_kind='topk') needs top_k, the k the API returns")
        object.__setattr__(self, "extra", tuple((str(k), v) for k, v in self.extra))


def _public_url(url: str) -> str:
    """The URL without credentials, query or fragment: safe to name in errors and identities."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


class HTTPOracle(AsyncRemoteOracle):
    """A classifier behind an HTTP API.

    Args:
        url: base URL (``http://host:port``); the schema's path is appended.
        num_classes, input_spec: what the API answers and accepts (``from_server`` reads both).
        schema: request/answer layout (:class:`WireSchema`).
        api_key_env: environment variable holding the key; sent as ``Authorization: Bearer``.
        api_key: a :class:`~oracles.remote.Secret` instead (a config reference resolved elsewhere).
        max_in_flight: concurrent requests (and pooled connections).
        timeout: seconds per attempt.
        retry: :class:`~oracles.remote.RetryPolicy`.
        seed: seeds the backoff jitter.
        price_per_call, price_per_query: what the API charges (declared as the cost bound of each call).
        name: identity override (defaults to the URL without credentials or query).
    """

    def __init__(self, url: str, *, num_classes: int, input_spec: InputSpec, schema: WireSchema | None = None,
                 api_key_env: str | None = None, api_key: Secret | None = None, max_in_flight: int = 4,
                 timeout: float = 30.0, retry: RetryPolicy | None = None, seed: int = 0,
                 price_per_call: float = 0.0, price_per_query: float = 0.0, name: str | None = None,
                 exposure: Exposure | str | None = None, ledger: Ledger | None = None, journal: Any = None,
                 max_batch: int = 64, class_names: Sequence[str] | None = None):
        if api_key_env is not None and api_key is not None:
            raise ValueError("give api_key_env or api_key, not both")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if price_per_call < 0 or price_per_query < 0:
            raise ValueError("prices must be non-negative")
        self.schema = schema or WireSchema()
        self._secret = Secret.from_env(api_key_env) if api_key_env is not None else api_key
        self.base_url = url.rstrip("/")
        self.endpoint = _public_url(self.base_url) + self.schema.path
        self._url = self.base_url + self.schema.path
        self.timeout = float(timeout)
        self.retry = retry or RetryPolicy()
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.price_per_call = float(price_per_call)
        self.price_per_query = float(price_per_query)
        self.source_level = self.schema.answer_kind  # type: ignore[misc]  # per instance: the API decides
        if exposure is None:
            exposure = {"topk": TopK(self.schema.top_k or 1), "label": LabelOnly()}.get(self.source_level, Probs())
        self._identity = f"http:{name or self.endpoint}"
        super().__init__(input_spec, num_classes, max_in_flight=max_in_flight, exposure=exposure, ledger=ledger,
                         journal=journal, max_batch=max_batch, class_names=class_names)

    # ------------------------------------------------------------ discovery
    @classmethod
    def from_server(cls, url: str, *, api_key_env: str | None = None, api_key: Secret | None = None,
                    timeout: float = 30.0, **kwargs: Any) -> "HTTPOracle":
        """An oracle for a ``blackbox-rp serve`` server, configured from its ``/v1/info`` (not a query)."""
        import httpx

        secret = Secret.from_env(api_key_env) if api_key_env is not None else api_key
        headers = {"Authorization": f"Bearer {secret.reveal()}"} if secret is not None else {}
        try:
            r = httpx.get(url.rstrip("/") + "/v1/info", headers=headers, timeout=timeout)
        except httpx.HTTPError as e:
            raise OracleError(redact(f"cannot reach {_public_url(url)}/v1/info: {type(e).__name__}: {e}",
                                     secret)) from None
        if r.status_code != 200:
            raise OracleError(redact(f"{_public_url(url)}/v1/info answered HTTP {r.status_code}: "
                                     f"{r.text[:300]}", secret))
        info = r.json()
        inp = dict(info["input"])
        inp["low"] = -np.inf if inp.get("low") is None else inp["low"]  # JSON has no infinity
        inp["high"] = np.inf if inp.get("high") is None else inp["high"]
        spec = InputSpec(**inp)
        schema = WireSchema(answer_kind=info["answer_kind"], top_k=info.get("top_k"),
                            encoding=kwargs.pop("encoding", "binary"))
        kwargs.setdefault("max_batch", min(int(info.get("max_batch", 64)), 256))
        kwargs.setdefault("class_names", info.get("class_names"))
        # the model and the server's exposure name the answers, not the address: a journal
        # survives the server moving to another port or host
        kwargs.setdefault("name", f"{info['identity']}|{info['exposure']}")
        return cls(url, num_classes=int(info["num_classes"]), input_spec=spec, schema=schema,
                   api_key=secret, timeout=timeout, **kwargs)

    # ------------------------------------------------------------ the oracle
    @property
    def identity(self) -> str:
        return self._identity

    def cost_bound(self, n_inputs: int) -> float:
        return self.price_per_call + self.price_per_query * n_inputs

    def price(self, n_inputs: int, prompt_tokens: int, completion_tokens: int) -> float:
        return self.price_per_call + self.price_per_query * n_inputs

    def _thread_name(self) -> str:
        return f"http-oracle {self.endpoint}"

    def _new_client(self) -> Any:
        import httpx

        limits = httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight)
        # TCP_NODELAY: a request goes out as headers then body; with Nagle's algorithm on, the body
        # waits for the server's delayed ACK of the headers (~40 ms per request on Linux)
        transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=[NODELAY])
        return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(self.timeout))

    async def _close_client(self, client: Any) -> None:
        await client.aclose()

    def _body(self, chunk: Any) -> tuple[bytes, dict[str, str]]:
        """The request body and its headers (the key is added at send time)."""
        if isinstance(chunk, np.ndarray) and self.schema.encoding == "binary":
            return encode_binary(chunk)
        batch = encode_array(chunk, self.schema.encoding) if isinstance(chunk, np.ndarray) else list(chunk)
        body = dict(self.schema.extra)
        body[self.schema.inputs_field] = batch
        return json.dumps(body).encode(), {"Content-Type": "application/json"}

    def _headers(self, headers: dict[str, str]) -> dict[str, str]:
        if self._secret is not None:
            return {**headers, "Authorization": f"Bearer {self._secret.reveal()}"}
        return headers

    async def _request(self, ci: int, chunk: Any, call: Call) -> Response:
        import httpx

        body, headers = self._body(chunk)
        n = len(chunk)

        async def send() -> Response:
            client = self._get_client()
            try:
                resp = await client.post(self._url, content=body, headers=self._headers(headers))
            except httpx.TimeoutException as e:
                raise Transient(f"timeout after {self.timeout:g} s ({type(e).__name__})") from None
            except httpx.TransportError as e:
                raise Transient(f"connection failed ({type(e).__name__}: {e})") from None
            status = resp.status_code
            if status == 429 or status >= 500:
                raise Transient(f"HTTP {status}: {_message(resp.content)}",
                                retry_after=parse_retry_after(resp.headers.get("retry-after")))
            if status >= 400:
                raise Refused(f"HTTP {status}: {_message(resp.content)}")
            try:
                answer = self._read(resp.content, n)
            except (ValueError, KeyError, TypeError, IndexError) as e:
                raise Malformed(f"malformed answer ({e})") from None
            call.usage()
            return answer

        def describe(attempts: int, detail: str) -> str:
            return (f"{self.identity}: request {ci} ({n} inputs) to POST {self.endpoint} failed after "
                    f"{attempts} attempt(s): {detail}")

        return await send_with_retries(send, call, self.retry, self._rng, describe, (self._secret,))

    def _read(self, content: bytes, n: int) -> Response:
        body = json.loads(content)
        if not isinstance(body, dict):
            raise ValueError(f"expected a JSON object, got {type(body).__name__}")
        kind = self.schema.answer_kind
        if self.schema.kind_field is not None and self.schema.kind_field in body:
            if body[self.schema.kind_field] != kind:
                raise ValueError(f"the API answered kind {body[self.schema.kind_field]!r} but the schema declares "
                                 f"{kind!r}; set WireSchema(answer_kind=...) to match")
        return response_from_json(body, kind=kind, num_classes=self.num_classes, n=n,
                                  scores_field=self.schema.scores_field, labels_field=self.schema.labels_field,
                                  indices_field=self.schema.indices_field)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(endpoint=self.endpoint, schema={"encoding": self.schema.encoding,
                                                 "answer_kind": self.schema.answer_kind},
                 max_in_flight=self.max_in_flight,
                 api_key=None if self._secret is None else self._secret.source)
        return d


def _message(content: bytes) -> str:
    """The server's error message (OpenAI-style ``{"error": {"message": ...}}`` or text), shortened."""
    try:
        body = json.loads(content)
        msg = body["error"]["message"] if isinstance(body.get("error"), dict) else body.get("error", body)
        return str(msg)[:300]
    except (ValueError, AttributeError, KeyError, TypeError):
        return content[:300].decode("utf-8", "replace")
