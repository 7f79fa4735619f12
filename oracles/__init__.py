"""Concrete oracles: a local torch model, and (with the ``remote`` extra) HTTP and OpenAI-compatible APIs.

This package imports :mod:`blackbox_rp`; the core never imports it at module level.
"""

from .models import MODELS, ModelInfo, get_model_info, load_model, register_model
from .torch_oracle import TorchOracle

__all__ = ["TorchOracle", "MODELS", "ModelInfo", "get_model_info", "load_model", "register_model"]
