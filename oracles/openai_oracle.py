"""Models behind an OpenAI-compatible API as classifiers, through the official ``openai`` client.

Three modes turn a language or embedding model into a class-score oracle:

* ``"completions"`` / ``"chat"`` — the model continues a prompt with one token;
  the ``logprobs`` / ``top_logprobs`` of that first token, read through a
  *verbalizer* (class → label words), give class scores, as in LM-BFF (Gao,
  Fisch & Chen, ACL 2021) and the black-box prompt-tuning line (BBT, Sun et al.,
  ICML 2022). Label words missing from the returned top-k are handled as
  configured: ``"floor"`` (a small probability), ``"renormalize"`` (over the
  labels seen), or ``"logit_bias"`` (push every label token up with
  ``logit_bias`` so that all of them are in the top-k — needs their token ids).
  With ``logprobs=False`` only the generated text is read: a label-only oracle.
* ``"embeddings"`` — class scores from the cosine similarity of the input's
  embedding to the embeddings of label phrases, softmax with a temperature.
* ``"tokens"`` — no verbalizer: :class:`OpenAITokenOracle` answers with the
  **next-token distribution** itself, a top-k response over the model's whole
  vocabulary (the first token's ``top_logprobs`` strings mapped back to token
  ids through a :class:`~blackbox_rp.vocab.Vocabulary`), so the label mapping
  O_ω can be learned from tokens, as for the in-process llama.cpp oracle.

The client's own retries are off (``max_retries=0``); ours (:mod:`oracles.remote`)
count every attempt. Tokens and cost are counted per call; the cost bound
checked before sending assumes at most one token per UTF-8 byte of prompt,
which holds for byte-level BPE tokenizers, so ``Budget(max_cost=...)`` is never
crossed. The API key is read from the environment only (``api_key_env``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from blackbox_rp.exposure import Exposure, Response
from blackbox_rp.ledger import Ledger
from blackbox_rp.oracle import Call, InputError, InputSpec
from blackbox_rp.vocab import TokenOracle, Vocabulary

from .http_oracle import NODELAY
from .remote import (AsyncRemoteOracle, Malformed, Refused, RetryPolicy, Secret, Transient,
                     parse_retry_after, send_with_retries)

logger = logging.getLogger(__name__)

__all__ = ["OpenAIOracle", "OpenAITokenOracle", "OpenAIConfig", "MODES", "MISSING"]

MODES = ("completions", "chat", "embeddings", "tokens")
MISSING = ("floor", "renormalize", "logit_bias")


@dataclass(frozen=True)
class OpenAIConfig:
    """What to ask and how to read the answer.

    Args:
        model: the model name the API knows.
        mode: ``completions``, ``chat``, ``embeddings``, or ``tokens`` (next-token distributions
            from the completions endpoint; used by :class:`OpenAITokenOracle`).
        labels: per class, its label words (completions/chat) or label phrases (embeddings);
            empty in ``tokens`` mode, where the mapping reads the tokens.
        template: the prompt, with ``{text}`` where the input goes.
        logprobs: read class scores from log-probs (False: label-only, from the generated text).
        top_logprobs: how many alternatives the API returns per token (≤ 20).
        missing: label words absent from the top-k: ``floor``, ``renormalize`` or ``logit_bias``.
        floor: the probability a missing label gets under ``floor``.
        label_token_ids: the first token id of each label word, for ``logit_bias`` (per class, per word).
        bias: the bias added to label tokens under ``logit_bias``.
        embed_temperature: softmax temperature of the cosine similarities (embeddings).
        max_prompt_tokens: prompts longer than this many UTF-8 bytes are refused (this bounds the cost).
        price_prompt_per_1k, price_completion_per_1k: price per 1000 tokens.
    """

    model: str
    mode: str
    labels: tuple[tuple[str, ...], ...] = ()
    template: str = "{text}"
    logprobs: bool = True
    top_logprobs: int = 5
    missing: str = "floor"
    floor: float = 1e-4
    label_token_ids: tuple[tuple[int, ...], ...] | None = None
    bias: float = 20.0
    embed_temperature: float = 0.05
    max_prompt_tokens: int = 1024
    price_prompt_per_1k: float = 0.0
    price_completion_per_1k: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        labels = tuple((w,) if isinstance(w, str) else tuple(w) for w in self.labels)
        if self.mode == "tokens":
            if labels:
                raise ValueError("tokens mode answers over the whole vocabulary: leave labels empty and let the "
                                 "label mapping (a verbalizer, BLM over tokens) read the tokens")
            if not self.logprobs or self.top_logprobs < 1 or self.missing == "logit_bias":
                raise ValueError("tokens mode reads the top_logprobs: it needs logprobs=True, top_logprobs >= 1 "
                                 "and no logit_bias")
        elif len(labels) < 2 or not all(labels) or not all(isinstance(w, str) and w.strip() for ws in labels for w in ws):
            raise ValueError("labels needs at least two classes, each with one or more non-empty words/phrases")
        object.__setattr__(self, "labels", labels)
        if "{text}" not in self.template:
            raise ValueError(f"template must contain '{{text}}', got {self.template!r}")
        if self.missing not in MISSING:
            raise ValueError(f"missing must be one of {MISSING}, got {self.missing!r}")
        if not 0 <= self.top_logprobs <= 20:
            raise ValueError(f"top_logprobs must be in [0, 20], got {self.top_logprobs}")
        if not 0 < self.floor < 1:
            raise ValueError(f"floor must be in (0, 1), got {self.floor}")
        if self.missing == "logit_bias" and self.mode != "embeddings":
            ids = self.label_token_ids
            if ids is None or len(ids) != len(labels) or any(len(i) != len(w) for i, w in zip(ids, labels)):
                raise ValueError("missing='logit_bias' needs label_token_ids: one token id per label word "
                                 "(from the model's tokenizer, or GET /v1/models on a blackbox-rp server)")
            object.__setattr__(self, "label_token_ids", tuple(tuple(int(t) for t in i) for i in ids))
        if not self.embed_temperature > 0:
            raise ValueError("embed_temperature must be positive")
        if self.max_prompt_tokens < 1:
            raise ValueError("max_prompt_tokens must be >= 1")
        if self.price_prompt_per_1k < 0 or self.price_completion_per_1k < 0:
            raise ValueError("prices must be non-negative")

    def fingerprint(self) -> str:
        """A hash of everything that changes answers (not prices): part of the oracle identity."""
        key = (self.model, self.mode, self.labels, self.template, self.logprobs, self.top_logprobs, self.missing,
               self.floor, self.label_token_ids, self.bias, self.embed_temperature)
        return hashlib.blake2b(repr(key).encode(), digest_size=6).hexdigest()


def _norm(token: str) -> str:
    return token.strip().lower()


def _chat_overhead() -> int:
    """Tokens a chat template may add around the user message (role markers); generous on purpose."""
    return 16


class OpenAIOracle(AsyncRemoteOracle):
    """A classifier made of an OpenAI-compatible model (see the module docstring).

    Args:
        config: :class:`OpenAIConfig` (model, mode, verbalizer, prices ...).
        base_url: the API (``http://127.0.0.1:8000/v1``); None: the client's default.
        api_key_env: environment variable holding the key; None for a local server that takes none.
        api_key: a :class:`~oracles.remote.Secret` instead (a config reference resolved elsewhere).
        max_in_flight: concurrent requests (and pooled connections).
        timeout: seconds per attempt.
        retry, seed: retry policy and the seed of its jitter.
        max_batch: prompts per request (completions, embeddings; chat sends one per request).
    """

    def __init__(self, config: OpenAIConfig, *, base_url: str | None = None, api_key_env: str | None = "OPENAI_API_KEY",
                 api_key: Secret | None = None, max_in_flight: int = 4, timeout: float = 60.0, retry: RetryPolicy | None = None, seed: int = 0,
                 exposure: Exposure | str | None = None, ledger: Ledger | None = None, journal: Any = None,
                 max_batch: int = 32):
        if config.mode == "tokens" and not isinstance(self, TokenOracle):
            raise ValueError("mode 'tokens' answers over a vocabulary: use OpenAITokenOracle(config, vocabulary, ...)")
        self.config = config
        if api_key is not None:
            self._secret: Secret | None = api_key
        else:
            self._secret = Secret.from_env(api_key_env) if api_key_env is not None else None
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = float(timeout)
        self.retry = retry or RetryPolicy()
        self._rng = np.random.default_rng(seed)
        if config.mode == "tokens":
            self.source_level = "topk"  # type: ignore[misc]
            if exposure is None:
                exposure = f"top{config.top_logprobs}"
        else:
            self.source_level = "probs" if (config.logprobs or config.mode == "embeddings") else "label"  # type: ignore[misc]
        if exposure is None and self.source_level == "label":
            exposure = "label"
        self._identity = f"openai:{config.mode}:{config.model}@{self.base_url or 'default'}#{config.fingerprint()}"
        self._label_emb: np.ndarray | None = None
        self._emb_lock: asyncio.Lock | None = None
        self._words = [[_norm(w) for w in ws] for ws in config.labels]
        num_classes, class_names = self._output_space()
        super().__init__(InputSpec.text(), num_classes, max_in_flight=max_in_flight, exposure=exposure,
                         ledger=ledger, journal=journal,
                         max_batch=1 if config.mode == "chat" else max_batch,
                         class_names=class_names)

    def _output_space(self) -> tuple[int, list[str] | None]:
        """(number of classes, class names): the verbalizer's classes here; a vocabulary in tokens mode."""
        return len(self.config.labels), [ws[0] for ws in self.config.labels]

    @property
    def identity(self) -> str:
        return self._identity

    # ----------------------------------------------------------- pricing
    def cost_bound(self, n_inputs: int) -> float:
        c = self.config
        per = c.max_prompt_tokens + (_chat_overhead() if c.mode == "chat" else 0)
        completion = 0 if c.mode == "embeddings" else 1
        return n_inputs * (per * c.price_prompt_per_1k + completion * c.price_completion_per_1k) / 1000.0

    def price(self, n_inputs: int, prompt_tokens: int, completion_tokens: int) -> float:
        c = self.config
        return (prompt_tokens * c.price_prompt_per_1k + completion_tokens * c.price_completion_per_1k) / 1000.0

    # ------------------------------------------------------------ client
    def _thread_name(self) -> str:
        return f"openai-oracle {self.config.model}"

    def _new_client(self) -> Any:
        import httpx2
        from openai import AsyncOpenAI

        # openai 3.x is built on httpx2 (not httpx) and accepts only an httpx2 client. We pass one
        # ourselves to size its pool to our concurrency bound: max_in_flight connections, kept alive
        # across batches, instead of the client's default pool of 1000.
        limits = httpx2.Limits(max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight)
        # TCP_NODELAY as in HTTPOracle: no Nagle wait between a request's headers and its body
        transport = httpx2.AsyncHTTPTransport(limits=limits, socket_options=[NODELAY])
        http = httpx2.AsyncClient(transport=transport, timeout=httpx2.Timeout(self.timeout))
        key = self._secret.reveal() if self._secret is not None else "no-key"  # the client insists on one
        return AsyncOpenAI(api_key=key, base_url=self.base_url, max_retries=0, timeout=self.timeout,
                           http_client=http)

    async def _close_client(self, client: Any) -> None:
        await client.close()

    def _prompts(self, texts: Sequence[str]) -> list[str]:
        out = [self.config.template.format(text=t) for t in texts]
        for i, p in enumerate(out):
            if len(p.encode("utf-8")) > self.config.max_prompt_tokens:
                raise InputError(f"input {i} makes a prompt of {len(p.encode('utf-8'))} bytes, over "
                                 f"OpenAIConfig.max_prompt_tokens={self.config.max_prompt_tokens} (the bound that "
                                 f"keeps the cost budget exact); shorten it or raise the limit")
        return out

    async def _call_api(self, make: Any) -> Any:
        """One attempt through the openai client, its errors sorted into transient and refused."""
        import openai

        try:
            return await make(self._get_client())
        except openai.APITimeoutError:
            raise Transient(f"timeout after {self.timeout:g} s") from None
        except openai.APIConnectionError as e:
            raise Transient(f"connection failed ({type(e.__cause__ or e).__name__})") from None
        except openai.APIStatusError as e:
            status = e.status_code
            detail = f"HTTP {status}: {_api_message(e)}"
            if status == 429 or status >= 500:
                raise Transient(detail, retry_after=parse_retry_after(e.response.headers.get("retry-after"))) from None
            raise Refused(detail) from None
        except (openai.APIResponseValidationError, ValueError, TypeError) as e:
            raise Malformed(f"malformed answer ({type(e).__name__}: {str(e)[:200]})") from None

    async def _request(self, ci: int, texts: Sequence[str], call: Call) -> Response:
        texts = list(texts)
        prompts = self._prompts(texts)
        mode = self.config.mode

        async def send() -> Response:
            if mode in ("completions", "tokens"):
                resp = await self._call_api(lambda c: c.completions.create(**self._completion_args(prompts)))
            elif mode == "chat":
                resp = await self._call_api(lambda c: c.chat.completions.create(**self._chat_args(prompts[0])))
            else:
                resp = await self._call_api(lambda c: c.embeddings.create(model=self.config.model, input=prompts))
            # tokens are billed once the API answered, whether or not the answer can be read
            usage = getattr(resp, "usage", None)
            call.usage(prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                       completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0))
            if mode == "completions":
                return self._read_completions(resp, len(prompts))
            if mode == "tokens":
                return self._read_tokens(resp, len(prompts))
            if mode == "chat":
                return self._read_chat(resp)
            return Response.from_probs(self._embedding_scores(self._read_embeddings(resp, len(prompts))))

        if mode == "embeddings":
            await self._ensure_label_embeddings()

        def describe(attempts: int, detail: str) -> str:
            return (f"{self.identity}: {mode} request {ci} ({len(texts)} inputs) to {self.base_url or 'the API'} "
                    f"failed after {attempts} attempt(s): {detail}")

        return await send_with_retries(send, call, self.retry, self._rng, describe, (self._secret,))

    # --------------------------------------------------- completions / chat
    def _logit_bias(self) -> dict[str, float] | None:
        if self.config.missing != "logit_bias":
            return None
        return {str(t): self.config.bias for ids in self.config.label_token_ids or () for t in ids}

    def _completion_args(self, prompts: list[str]) -> dict[str, Any]:
        c = self.config
        args: dict[str, Any] = {"model": c.model, "prompt": prompts, "max_tokens": 1, "temperature": 0}
        if c.logprobs:
            args["logprobs"] = max(1, c.top_logprobs)
        if (lb := self._logit_bias()) is not None:
            args["logit_bias"] = lb
        return args

    def _chat_args(self, prompt: str) -> dict[str, Any]:
        c = self.config
        args: dict[str, Any] = {"model": c.model, "messages": [{"role": "user", "content": prompt}],
                                "max_tokens": 1, "temperature": 0}
        if c.logprobs:
            args.update(logprobs=True, top_logprobs=max(1, c.top_logprobs))
        if (lb := self._logit_bias()) is not None:
            args["logit_bias"] = lb
        return args

    def _class_of(self, token: str) -> int | None:
        t = _norm(token)
        if not t:
            return None
        for k, words in enumerate(self._words):
            if t in words:
                return k
        # a label word split into several tokens: its first token is a prefix of the word, if of one class only
        owners = {k for k, words in enumerate(self._words) if any(w.startswith(t) for w in words)}
        return owners.pop() if len(owners) == 1 else None

    def _scores(self, top: list[tuple[str, float]], text: str) -> np.ndarray:
        """Class probabilities from the first token's (token, logprob) alternatives."""
        c = self.num_classes
        mass = np.zeros(c, dtype=np.float64)
        seen = np.zeros(c, dtype=bool)
        for tok, lp in top:
            k = self._class_of(tok)
            if k is not None and lp is not None and math.isfinite(lp):
                mass[k] += math.exp(lp)
                seen[k] = True
        if not seen.any():
            k = self._class_of(text)
            if k is None:
                raise Malformed(f"none of the top tokens {[t for t, _ in top][:5]} nor the answer {text!r} is a "
                                f"label word; use missing='logit_bias' with label_token_ids, or another template")
            mass[k], seen[k] = 1.0, True
        if self.config.missing == "floor":
            mass[~seen] = self.config.floor
        return (mass / mass.sum()).astype(np.float32)

    def _label_of(self, text: str) -> int:
        k = self._class_of(text)
        if k is None:
            raise Malformed(f"the model answered {text!r}, which is none of the label words; use "
                            f"missing='logit_bias' with label_token_ids, or another template")
        return k

    def _read_completions(self, resp: Any, n: int) -> Response:
        choices = sorted(resp.choices, key=lambda ch: ch.index)
        if len(choices) != n or [ch.index for ch in choices] != list(range(n)):
            raise Malformed(f"{len(choices)} choices for {n} prompts")
        if not self.config.logprobs:
            labels = np.array([self._label_of(ch.text) for ch in choices], dtype=np.int64)
            return Response("label", self.num_classes, labels)
        rows = []
        for ch in choices:
            lp = ch.logprobs
            if lp is None or not lp.top_logprobs:
                raise Malformed("the answer carries no logprobs; set OpenAIConfig(logprobs=False) for label-only APIs")
            rows.append(self._scores(list(lp.top_logprobs[0].items()), ch.text))
        return Response.from_probs(np.stack(rows))

    def _read_tokens(self, resp: Any, n: int) -> Response:
        raise Malformed("tokens mode needs a vocabulary: use OpenAITokenOracle")

    def _read_chat(self, resp: Any) -> Response:
        if len(resp.choices) != 1:
            raise Malformed(f"{len(resp.choices)} choices for one message")
        ch = resp.choices[0]
        text = ch.message.content or ""
        if not self.config.logprobs:
            return Response("label", self.num_classes, np.array([self._label_of(text)], dtype=np.int64))
        if ch.logprobs is None or not ch.logprobs.content:
            raise Malformed("the answer carries no logprobs; set OpenAIConfig(logprobs=False) for label-only APIs")
        first = ch.logprobs.content[0]
        top = [(t.token, t.logprob) for t in first.top_logprobs] or [(first.token, first.logprob)]
        return Response.from_probs(self._scores(top, text)[None])

    # -------------------------------------------------------- embeddings
    @staticmethod
    def _read_embeddings(resp: Any, n: int) -> np.ndarray:
        data = sorted(resp.data, key=lambda d: d.index)
        if len(data) != n:
            raise Malformed(f"{len(data)} embeddings for {n} inputs")
        e = np.asarray([d.embedding for d in data], dtype=np.float64)
        if e.ndim != 2 or not np.isfinite(e).all():
            raise Malformed("embeddings are ragged or hold NaN/inf")
        norms = np.linalg.norm(e, axis=1, keepdims=True)
        if (norms == 0).any():
            raise Malformed("a zero embedding")
        return e / norms

    async def _ensure_label_embeddings(self) -> None:
        """Embed the label phrases once (a call of its own, charged to phase ``setup``, no queries)."""
        if self._emb_lock is None:  # created in the loop thread, which runs every request
            self._emb_lock = asyncio.Lock()
        async with self._emb_lock:
            if self._label_emb is None:
                self._label_emb = await self._embed_labels()

    async def _embed_labels(self) -> np.ndarray:
        phrases = [p for ws in self.config.labels for p in ws]
        call = Call(self, "setup", len(phrases))

        async def send() -> np.ndarray:
            resp = await self._call_api(lambda c: c.embeddings.create(model=self.config.model, input=phrases))
            call.usage(prompt_tokens=int(getattr(resp.usage, "prompt_tokens", 0) or 0))
            return self._read_embeddings(resp, len(phrases))

        e = await send_with_retries(send, call, self.retry, self._rng,
                                    lambda a, d: f"{self.identity}: embedding the label phrases failed after {a} "
                                                 f"attempt(s): {d}", (self._secret,))
        per_class, i = [], 0
        for ws in self.config.labels:
            m = e[i:i + len(ws)].mean(axis=0)
            per_class.append(m / np.linalg.norm(m))
            i += len(ws)
        return np.stack(per_class)

    def _embedding_scores(self, e: np.ndarray) -> np.ndarray:
        z = e @ self._label_emb.T / self.config.embed_temperature
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    # ------------------------------------------------------------ oracle
    def describe(self) -> dict[str, Any]:
        d = super().describe()
        c = self.config
        d.update(model=c.model, mode=c.mode, base_url=self.base_url, template=c.template,
                 labels=[list(ws) for ws in c.labels], missing=c.missing, top_logprobs=c.top_logprobs,
                 api_key=None if self._secret is None else self._secret.source)
        return d


class OpenAITokenOracle(OpenAIOracle, TokenOracle):
    """Next-token distributions from an OpenAI-compatible **completions** endpoint.

    Each prompt is sent with ``max_tokens=1`` and ``logprobs=k``; the first token's
    ``top_logprobs`` (token string → log-probability) are mapped to token ids with
    ``vocabulary.token_id`` and returned as a top-k :class:`Response` over the whole
    vocabulary (``num_classes = vocabulary.size``), best first — the same shape the
    in-process :class:`~oracles.llama_cpp_oracle.LlamaCppOracle` gives under ``top<k>``.

    The vocabulary must be the served model's (for llama.cpp:
    ``LlamaVocabulary.from_file(path)``, which loads the tokenizer without the weights).
    Strings that name no single token (byte pieces that decode to nothing, two tokens
    that read alike) are dropped; a row left with fewer than k distinct tokens is padded
    with probability-0 entries (the lowest ids not in the row), so every row has k.

    Args:
        model: the model name the API knows.
        vocabulary: the served model's :class:`~blackbox_rp.vocab.Vocabulary`.
        template: the prompt, with ``{text}`` where the input goes.
        top_logprobs: k, the alternatives asked for (1–20; OpenAI's limit is 20).
        max_prompt_tokens, price_prompt_per_1k, price_completion_per_1k: as in :class:`OpenAIConfig`.
        **kwargs: what :class:`OpenAIOracle` takes (``base_url``, ``api_key_env``, ``exposure``, ...).
    """

    def __init__(self, model: str, vocabulary: Vocabulary, *, template: str = "{text}", top_logprobs: int = 20,
                 max_prompt_tokens: int = 1024, price_prompt_per_1k: float = 0.0,
                 price_completion_per_1k: float = 0.0, **kwargs: Any):
        if not isinstance(vocabulary, Vocabulary):
            raise TypeError(f"vocabulary must be a blackbox_rp.vocab.Vocabulary, got {type(vocabulary).__name__}")
        self._vocabulary = vocabulary
        config = OpenAIConfig(model=model, mode="tokens", template=template, top_logprobs=top_logprobs,
                              max_prompt_tokens=max_prompt_tokens, price_prompt_per_1k=price_prompt_per_1k,
                              price_completion_per_1k=price_completion_per_1k)
        super().__init__(config, **kwargs)

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocabulary

    def _output_space(self) -> tuple[int, list[str] | None]:
        return self._vocabulary.size, None

    def _read_tokens(self, resp: Any, n: int) -> Response:
        choices = sorted(resp.choices, key=lambda ch: ch.index)
        if len(choices) != n or [ch.index for ch in choices] != list(range(n)):
            raise Malformed(f"{len(choices)} choices for {n} prompts")
        k = self.config.top_logprobs
        idx = np.zeros((n, k), dtype=np.int64)
        p = np.zeros((n, k), dtype=np.float32)
        for r, ch in enumerate(choices):
            lp = ch.logprobs
            if lp is None or not lp.top_logprobs or not lp.top_logprobs[0]:
                raise Malformed("the answer carries no top_logprobs; tokens mode needs an API that returns them")
            best: dict[int, float] = {}
            dropped = []
            for tok, value in lp.top_logprobs[0].items():
                i = self._vocabulary.token_id(tok)
                if i is None or value is None or not math.isfinite(value):
                    dropped.append(tok)
                    continue
                best[i] = max(best.get(i, -math.inf), float(value))
            if not best:
                raise Malformed(f"none of the returned tokens {list(lp.top_logprobs[0])[:5]} is one token of the "
                                f"vocabulary; is it the served model's vocabulary?")
            if dropped:
                logger.debug("%s: %d returned token string(s) name no single token: %r", self.identity,
                             len(dropped), dropped[:5])
            ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
            ids = [i for i, _ in ranked]
            fill = (j for j in range(self._vocabulary.size) if j not in best)
            ids += [next(fill) for _ in range(k - len(ids))]
            idx[r] = ids
            p[r, :len(ranked)] = [math.exp(v) for _, v in ranked]
        return Response("topk", self.num_classes, idx[:, 0].copy(), p, idx)


def _api_message(e: Any) -> str:
    """The error message of an API error (the openai client keeps the body's ``error`` object)."""
    body = getattr(e, "body", None)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:300]
    return str(getattr(e, "message", e))[:300]
