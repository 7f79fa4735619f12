"""Concrete oracles: a local torch model, a local language model through llama.cpp or torch (the ``text`` extra),
and (with the ``remote`` extra) HTTP and OpenAI-compatible APIs.

This package imports :mod:`blackbox_rp`; the core never imports it at module level.
The remote oracles and the server are imported on first use, so ``import oracles``
does not pull in httpx, openai or starlette.
"""

from __future__ import annotations

import importlib
from typing import Any

from .models import MODELS, ModelInfo, get_model_info, load_model, register_model
from .torch_oracle import TorchOracle

_LAZY = {
    "HTTPOracle": "http_oracle", "WireSchema": "http_oracle",
    "OpenAIOracle": "openai_oracle", "OpenAIConfig": "openai_oracle", "OpenAITokenOracle": "openai_oracle",
    "LlamaCppOracle": "llama_cpp_oracle", "LlamaVocabulary": "llama_cpp_oracle",
    "TorchLMOracle": "torch_lm_oracle",
    "OracleServer": "server", "ServerConfig": "server", "build_app": "server",
    "FaultConfig": "faults", "RetryPolicy": "remote", "Secret": "remote",
    "TextClassifierOracle": "text_models", "TEXT_MODELS": "text_models",
}

__all__ = ["TorchOracle", "MODELS", "ModelInfo", "get_model_info", "load_model", "register_model", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'oracles' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
