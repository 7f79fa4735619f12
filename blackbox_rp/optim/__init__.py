"""Zeroth-order and evolutionary optimizers behind one ask/tell interface.

``make(name, dim, seed=..., x0=..., **params)`` builds any registered optimizer
(``available()`` lists them: spsa, spsa-gc, zo-sgd, zo-adam, zo-chain, cma,
cma-subspace, random, bdpl, greedy, and ``ng:<nevergrad name>``); ``minimize(objective,
optimizer, budget=...)`` drives one against an objective. See
:mod:`blackbox_rp.optim.base` for the protocol and how to register a new one.
"""

from . import bdpl, chain, cmaes, greedy, ng, random_search, spsa, zo  # noqa: F401  (registration)
from .base import REGISTRY, ConfigError, Optimizer, OptimizerConfig, available, make, register
from .minimize import BatchObjective, Callback, EarlyStopping, JsonLinesLogger, OptimizeResult, ProgressBar, minimize

__all__ = ["make", "minimize", "register", "available", "Optimizer", "OptimizerConfig", "OptimizeResult",
           "ConfigError", "REGISTRY", "Callback", "BatchObjective", "ProgressBar", "JsonLinesLogger", "EarlyStopping"]
