"""The one place a model spec becomes an oracle: every command (``query``, ``reprogram``, ``run``, ``serve``,
``demo``, ``apply``) resolves its ``--model`` here, so each kind of model works everywhere.

A spec is one of:

* a bundled model name (``blackbox-rp models``) or a TorchScript file → :class:`~oracles.TorchOracle`;
* an in-process text model name (``chatterbot-topics``) → :class:`~oracles.TextClassifierOracle`;
* ``package.module:factory`` → the factory's ``nn.Module`` (wrapped in a TorchOracle) or its ``Oracle``;
* ``http(s)://HOST:PORT`` → :class:`~oracles.HTTPOracle`: discovered from ``/v1/info`` (a ``blackbox-rp serve``
  server) unless a wire schema is given (``wire=...``: any JSON API);
* ``http(s)://…`` with ``openai={model, mode, labels, ...}`` → :class:`~oracles.OpenAIOracle`
  (an OpenAI-compatible endpoint; the URL is its base, e.g. ``http://127.0.0.1:8000/v1``).

API keys are read only from the environment variable named by ``api_key_env``; a spec never carries one.
A remote oracle is checked before it is returned (reachable, key accepted where the API lets us ask
without a query), so a wrong URL or key fails with one line before any budget is spent.

Example::

    >>> from oracles.resolve import resolve_oracle
    >>> o = resolve_oracle("fmnist-cnn", exposure="top3")
    >>> o.identity.startswith("torch:fmnist-cnn@"), o.exposure.key()
    (True, 'top3')
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any, Mapping

from blackbox_rp.oracle import InputSpec, Oracle, OracleError

logger = logging.getLogger(__name__)

__all__ = ["resolve_oracle", "import_factory", "is_url", "is_factory_spec"]


def is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def is_factory_spec(spec: str) -> bool:
    """``package.module:factory`` (and not a URL, a path or a Windows drive)."""
    mod, sep, attr = spec.partition(":")
    return bool(sep and mod and attr and not is_url(spec) and not spec.startswith(("/", ".", "~"))
                and "/" not in mod and len(mod) > 1 and attr.isidentifier())


def import_factory(spec: str) -> Any:
    """Import ``package.module:factory`` and call it with no argument: the only parser of that form."""
    mod_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot import {spec!r} ({e}); expected 'package.module:factory' with the package "
                         f"on PYTHONPATH") from e
    if not callable(factory):
        raise ValueError(f"{spec!r} is a {type(factory).__name__}, not a factory; name a function that returns "
                         f"a torch.nn.Module or an Oracle")
    return factory()


def _attach(oracle: Oracle, exposure: Any, ledger: Any, journal: Any) -> Oracle:
    """An oracle a factory built, given the caller's exposure, ledger and journal (its model is unchanged)."""
    from blackbox_rp.cache import Journal

    if exposure is not None:
        oracle = oracle.with_exposure(exposure)
    if ledger is not None:
        oracle.ledger = ledger
    if journal is not None:
        oracle.journal = journal if isinstance(journal, Journal) else Journal(journal)
    return oracle


def _check_reachable(url: str, timeout: float) -> None:
    """A TCP connection to the URL's host and port, so an unreachable API fails before any query."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=min(timeout, 10.0)):
            pass
    except OSError as e:
        raise OracleError(f"cannot reach {parts.scheme}://{parts.hostname}:{port} ({e.strerror or e}); check the "
                          f"URL and that the server is running") from None


def _openai(url: str, openai: Mapping[str, Any], *, api_key_env: str | None, timeout: float,
            **kw: Any) -> Oracle:
    import httpx

    from .openai_oracle import OpenAIConfig, OpenAIOracle
    from .remote import Secret, redact

    cfg = openai if isinstance(openai, OpenAIConfig) else OpenAIConfig(**dict(openai))
    secret = Secret.from_env(api_key_env) if api_key_env else None
    headers = {"Authorization": f"Bearer {secret.reveal()}"} if secret is not None else {}
    # GET /models costs no query on an OpenAI-compatible API: it proves the address and the key
    try:
        r = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=min(timeout, 10.0))
    except httpx.HTTPError as e:
        raise OracleError(redact(f"cannot reach {url.rstrip('/')}/models: {type(e).__name__}: {e}", secret)) from None
    if r.status_code in (401, 403):
        raise OracleError(f"{url} refused the API key from ${api_key_env} (HTTP {r.status_code}); check the key"
                          if api_key_env else f"{url} needs an API key (HTTP {r.status_code}): give --api-key-env NAME")
    return OpenAIOracle(cfg, base_url=url, api_key=secret, api_key_env=None, timeout=timeout, **kw)


def _http(url: str, wire: Mapping[str, Any] | None, *, api_key_env: str | None, timeout: float, **kw: Any) -> Oracle:
    from .http_oracle import HTTPOracle, WireSchema

    if wire is None:  # a blackbox-rp serve server describes itself: /v1/info checks the address and the key
        try:
            return HTTPOracle.from_server(url, api_key_env=api_key_env, timeout=timeout, **kw)
        except OracleError as e:
            msg = str(e)
            if "HTTP 401" in msg or "HTTP 403" in msg:
                raise OracleError(f"{url} refused the API key"
                                  + (f" from ${api_key_env}; check the key" if api_key_env
                                     else "; give --api-key-env NAME (the variable holding the key)")) from None
            raise
    w = dict(wire)
    try:
        num_classes = int(w.pop("num_classes"))
    except KeyError:
        raise ValueError("a wire schema needs num_classes (how many classes the API answers)") from None
    spec = InputSpec(**dict(w.pop("input", {})))
    if "extra" in w and isinstance(w["extra"], Mapping):
        w["extra"] = tuple(w["extra"].items())
    schema = WireSchema(**w)
    _check_reachable(url, timeout)  # an arbitrary API has no free endpoint to test a key on
    return HTTPOracle(url, num_classes=num_classes, input_spec=spec, schema=schema, api_key_env=api_key_env,
                      timeout=timeout, **kw)


def resolve_oracle(model: str | os.PathLike | Oracle, *, exposure: Any = None, ledger: Any = None,
                   journal: Any = None, max_batch: int | None = None, api_key_env: str | None = None,
                   wire: Mapping[str, Any] | None = None, openai: Mapping[str, Any] | None = None,
                   timeout: float = 30.0, seed: int = 0, max_in_flight: int | None = None,
                   **text_model_options: Any) -> Oracle:
    """The oracle a model spec names (see the module docstring), checked before any query.

    Args:
        model: the spec, or an Oracle (returned with ``exposure``/``ledger``/``journal`` attached).
        exposure, ledger, journal, max_batch: as for every :class:`~blackbox_rp.oracle.Oracle`.
        api_key_env: the *name* of the environment variable holding the key (remote oracles only).
        wire: an HTTP API's layout — :class:`~oracles.WireSchema` fields plus ``num_classes`` and
            ``input`` (:class:`~blackbox_rp.oracle.InputSpec` fields); without it a URL is discovered.
        openai: :class:`~oracles.OpenAIConfig` fields; the URL is then an OpenAI-compatible base URL.
        timeout, seed, max_in_flight: remote oracles: seconds per attempt, backoff jitter seed, concurrency.
        **text_model_options: options of an in-process text model's constructor (e.g. ``n_threads`` of
            ``gemma3-270m``); refused for any other kind of model.
    """
    common: dict[str, Any] = {"exposure": exposure, "ledger": ledger, "journal": journal}
    if max_batch is not None:
        common["max_batch"] = max_batch
    if isinstance(model, Oracle):
        return _attach(model, exposure, ledger, journal)
    spec = str(model)
    remote = is_url(spec)
    if not remote and (api_key_env or wire is not None or openai is not None):
        what = "api_key_env" if api_key_env else ("wire" if wire is not None else "openai")
        raise ValueError(f"{what} is for a remote model (an http(s):// URL); model {spec!r} runs in process")
    if remote:
        kw = dict(common, seed=seed)
        if max_in_flight is not None:
            kw["max_in_flight"] = max_in_flight
        if openai is not None:
            if wire is not None:
                raise ValueError("give either a wire schema (a JSON API) or openai settings, not both")
            return _openai(spec, openai, api_key_env=api_key_env, timeout=timeout, **kw)
        return _http(spec, wire, api_key_env=api_key_env, timeout=timeout, **kw)
    from .text_models import TEXT_MODELS

    if spec in TEXT_MODELS:
        # what is not given keeps the text model's own default (gemma3-270m answers top20, not probs)
        given = {k: v for k, v in common.items() if v is not None}
        return TEXT_MODELS[spec](**given, **text_model_options)
    if text_model_options:
        raise ValueError(f"options {sorted(text_model_options)} are for an in-process text model "
                         f"({', '.join(sorted(TEXT_MODELS))}); model {spec!r} is not one")
    from .models import MODELS
    from .torch_oracle import TorchOracle

    if spec in MODELS or Path(spec).exists():
        return TorchOracle(spec, **common)
    if is_factory_spec(spec):
        made = import_factory(spec)
        if isinstance(made, Oracle):
            return _attach(made, exposure, ledger, journal)
        import torch

        if not isinstance(made, torch.nn.Module):
            raise ValueError(f"{spec} returned {type(made).__name__}; a model factory returns a torch.nn.Module "
                             f"or an Oracle")
        return TorchOracle(made, name=spec, **common)
    raise ValueError(f"model {spec!r} is neither a bundled model ({', '.join(sorted(MODELS))}), a text model "
                     f"({', '.join(sorted(TEXT_MODELS))}), an existing TorchScript file, 'package.module:factory', "
                     f"nor an http(s):// URL")
