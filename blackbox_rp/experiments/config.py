"""An experiment as a frozen dataclass tree, read from TOML (stdlib ``tomllib``) and checked in one place.

Why one checker: a run that dies on a typo after the baselines paid thousands of queries wastes
money. :func:`from_dict` walks the tree, refuses an unknown key or a value of the wrong type with
a message naming the key, the value and what is accepted, and every section validates its
values in ``__post_init__``; all of it happens before an oracle is even built.

A config file::

    [task]
    data = "digits"
    split = [0.6, 0.2, 0.2]
    seed = 0

    [oracle]
    model = "fmnist-cnn"          # or http://HOST:PORT (a blackbox-rp server), module:factory, ...
    exposure = "probs"

    [transform]
    name = "lowdim"               # every key but name/size/image_size is a transform parameter

    [mapping]
    name = "blm+"

    [optimizer]
    name = "spsa-gc"
    q = 2                         # parameters of the optimizer, by name

    [budget]
    queries = 3000                # train + validation queries

Example::

    >>> cfg = loads('[task]\\ndata = "digits"\\n[oracle]\\nmodel = "fmnist-cnn"\\n[budget]\\nqueries = 3000')
    >>> cfg.optimizer.name, cfg.budget.queries
    ('zo-adam', 3000)
    >>> loads('[task]\\ndata = "digits"\\nsed = 1')
    Traceback (most recent call last):
    ...
    blackbox_rp.experiments.config.ConfigError: unknown key task.sed (= 1); accepted keys of [task]: data, split, seed
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

__all__ = ["ConfigError", "TaskConfig", "OracleConfig", "TransformConfig", "MappingConfig", "OptimizerConfig",
           "LossConfig", "BudgetConfig", "FitConfig", "BaselinesConfig", "RunConfig", "from_dict", "loads", "load",
           "apply_overrides", "to_dict", "dumps_toml", "SCHEMA_VERSION"]

#: version of the config layout written into run directories (bump on an incompatible change)
SCHEMA_VERSION = 1


class ConfigError(ValueError):
    """A config key or value the user wrote is not accepted; the message names it and what would be."""


def _fail(path: str, value: Any, accepted: str) -> None:
    raise ConfigError(f"{path} = {value!r} is not accepted; expected {accepted}")


def _check_name(path: str, value: str, names: Any, extra: str = "") -> None:
    names = sorted(names)
    if value not in names and not (extra and value.startswith(extra)):
        _fail(path, value, "one of " + ", ".join(names) + (f", or {extra}<name>" if extra else ""))


@dataclass(frozen=True)
class TaskConfig:
    """The target task: a dataset and its deterministic split."""

    data: str = "digits"
    split: tuple[float, ...] = (0.6, 0.2, 0.2)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.data:
            _fail("task.data", self.data, "a bundled dataset (digits, mnist5k, fashion-mnist) or a path")
        if len(self.split) != 3 or any(not v > 0 for v in self.split):
            _fail("task.split", list(self.split), "three positive numbers TRAIN, VAL, TEST (fractions or counts)")
        if self.seed < 0:
            _fail("task.seed", self.seed, "a non-negative integer")


@dataclass(frozen=True)
class OracleConfig:
    """The model behind the oracle: any spec :func:`oracles.resolve.resolve_oracle` knows.

    ``api_key_env`` is the *name* of an environment variable; a key itself never goes in a config.
    """

    model: str = "efficientnet-lite0"
    exposure: str = "probs"
    api_key_env: str | None = None
    max_batch: int = 256
    timeout: float = 30.0
    max_in_flight: int | None = None
    wire: dict[str, Any] | None = None
    openai: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        from ..exposure import parse_exposure

        if not self.model:
            _fail("oracle.model", self.model, "a bundled model, a TorchScript file, module:factory or a URL")
        try:
            parse_exposure(self.exposure)
        except ValueError as e:
            raise ConfigError(f"oracle.exposure = {self.exposure!r} is not accepted: {e}") from None
        if self.api_key_env is not None and (not self.api_key_env or not self.api_key_env.replace("_", "").isalnum()):
            _fail("oracle.api_key_env", self.api_key_env, "the NAME of an environment variable (never the key)")
        if self.max_batch < 1:
            _fail("oracle.max_batch", self.max_batch, "a positive integer")
        if not self.timeout > 0:
            _fail("oracle.timeout", self.timeout, "a positive number of seconds")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            _fail("oracle.max_in_flight", self.max_in_flight, "a positive integer")
        if (self.wire is not None or self.openai is not None or self.api_key_env) and \
                not self.model.startswith(("http://", "https://")):
            _fail("oracle.model", self.model, "an http(s):// URL when wire, openai or api_key_env is set")


@dataclass(frozen=True)
class TransformConfig:
    """I_θ: the transform's name, the canvas (None: follow the model) and its own parameters."""

    name: str = "lowdim"
    size: int | None = None
    image_size: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..transforms import TRANSFORMS

        _check_name("transform.name", self.name, [n for n in TRANSFORMS if n != "none"])
        for k in ("size", "image_size"):
            v = getattr(self, k)
            if v is not None and v < 1:
                _fail(f"transform.{k}", v, "a positive number of pixels")
        if self.size is not None and self.image_size is not None and self.image_size > self.size:
            _fail("transform.image_size", self.image_size, f"at most the canvas (transform.size = {self.size})")


@dataclass(frozen=True)
class MappingConfig:
    """O_ω: a label mapping by name and its parameters."""

    name: str = "linear"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..mapping import MAPPINGS

        _check_name("mapping.name", self.name, MAPPINGS)


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer by name; ``params`` None means the measured recommendation for the mapping.

    ``directions_per_step`` sets the candidates one step evaluates whatever the optimizer calls them (``q`` of
    SPSA/SPSA-GC/ZO-Adam, ``popsize`` of CMA-ES, ``num_workers`` of nevergrad): one grid key compares
    fewer, better-informed steps with more, noisier ones at the same budget across optimizers."""

    name: str = "zo-adam"
    params: dict[str, Any] | None = None
    directions_per_step: int | None = None

    def __post_init__(self) -> None:
        from ..optim import available
        from ..optim.base import ConfigError as OptimConfigError, directions_param

        _check_name("optimizer.name", self.name, available(), extra="ng:")
        if self.directions_per_step is not None:
            if self.directions_per_step < 1:
                _fail("optimizer.directions_per_step", self.directions_per_step,
                      "a positive integer (candidates per step)")
            try:
                key = directions_param(self.name)
            except OptimConfigError as e:
                raise ConfigError(f"optimizer.directions_per_step = {self.directions_per_step}: {e}") from None
            if key in (self.params or {}):
                raise ConfigError(f"optimizer.directions_per_step = {self.directions_per_step} and optimizer.{key} "
                                  f"= {self.params[key]!r} set the same thing for {self.name}; keep one")

    def resolved_params(self, mapping: str) -> dict[str, Any]:
        """The optimizer's parameters: the recommendation for ``mapping``, overridden by ``params``, then by
        ``directions_per_step``."""
        from ..optim.base import directions_param
        from ..reprogram import recommended_optimizer_params

        out = {**recommended_optimizer_params(self.name, mapping), **(self.params or {})}
        if self.directions_per_step is not None:
            out[directions_param(self.name)] = self.directions_per_step
        return out


@dataclass(frozen=True)
class LossConfig:
    name: str = "ce"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..losses import LOSSES, make_loss

        _check_name("loss.name", self.name, LOSSES)
        try:
            make_loss(self.name, **self.params)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"loss parameters {self.params} are not accepted: {e}") from None


@dataclass(frozen=True)
class BudgetConfig:
    """Queries per phase. ``queries`` bounds train + validation together (what selection may spend);
    ``baseline`` and ``test`` bound those phases apart (None: unbounded); ``max_steps`` bounds steps."""

    queries: int | None = None
    max_steps: int | None = None
    baseline: int | None = None
    test: int | None = None

    def __post_init__(self) -> None:
        for k in ("queries", "max_steps", "baseline", "test"):
            v = getattr(self, k)
            if v is not None and v < 1:
                _fail(f"budget.{k}", v, "a positive integer (or leave it out: unbounded)")
        if self.queries is None and self.max_steps is None:
            raise ConfigError("budget needs queries (train + validation queries) or max_steps, or both")


@dataclass(frozen=True)
class FitConfig:
    """How the fit spends its queries (see :class:`blackbox_rp.reprogram.ReprogramConfig`)."""

    batch_size: int = 64
    eval_every: int = 25
    val_size: int | None = None
    refit: str = "auto"
    readout_lr: float = 1e-3
    candidate_folds: int = 4

    def __post_init__(self) -> None:
        from ..reprogram import REFITS

        for k in ("batch_size", "eval_every"):
            if getattr(self, k) < 1:
                _fail(f"fit.{k}", getattr(self, k), "a positive integer")
        if self.val_size is not None and self.val_size < 1:
            _fail("fit.val_size", self.val_size, "a positive integer")
        _check_name("fit.refit", self.refit, REFITS)
        if self.refit == "candidate" and not 2 <= self.candidate_folds <= self.batch_size:
            _fail("fit.candidate_folds", self.candidate_folds,
                  f"an integer from 2 to fit.batch_size ({self.batch_size}): each candidate's minibatch is cut "
                  f"into that many folds")
        if not (self.readout_lr > 0 and math.isfinite(self.readout_lr)):
            _fail("fit.readout_lr", self.readout_lr, "a positive number")


@dataclass(frozen=True)
class BaselinesConfig:
    """The no-prompt baselines measured beside the run (each skipped, and said so, if the exposure
    cannot support it) and the optional white-box ceiling: ``whitebox_steps`` Adam steps of backprop
    through the same transform and mapping (NOT black-box; local torch models only), its prompt
    learning rate ``whitebox_lr`` (None: 0.001 with the linear readout, 0.05 otherwise) and its
    linear readout refitted as the prompt moves or trained with it (``whitebox_readout``)."""

    no_prompt_mapping: str | None = None
    linear_probe: bool = True
    probe_views: tuple[int, ...] = ()
    whitebox_steps: int = 0
    whitebox_lr: float | None = None
    whitebox_readout: str = "refit"

    def __post_init__(self) -> None:
        from ..mapping import MAPPINGS

        if self.whitebox_lr is not None and not self.whitebox_lr > 0:
            _fail("baselines.whitebox_lr", self.whitebox_lr, "a positive number (or leave it out: 0.001 with "
                  "the linear readout, 0.05 otherwise)")
        _check_name("baselines.whitebox_readout", self.whitebox_readout, ("refit", "joint"))

        if self.no_prompt_mapping is not None:
            _check_name("baselines.no_prompt_mapping", self.no_prompt_mapping, MAPPINGS)
        if any(v < 1 for v in self.probe_views):
            _fail("baselines.probe_views", list(self.probe_views), "image sizes in pixels")
        if self.whitebox_steps < 0:
            _fail("baselines.whitebox_steps", self.whitebox_steps, "a non-negative integer")


@dataclass(frozen=True)
class RunConfig:
    """One run: every section has defaults but ``task.data``/``oracle.model`` are what a run is about."""

    task: TaskConfig = field(default_factory=TaskConfig)
    oracle: OracleConfig = field(default_factory=OracleConfig)
    transform: TransformConfig = field(default_factory=TransformConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    budget: BudgetConfig = field(default_factory=lambda: BudgetConfig(max_steps=100))
    fit: FitConfig = field(default_factory=FitConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)


#: sections whose keys other than their fields are parameters of the named component
_PARAM_SECTIONS = {"transform", "mapping", "optimizer", "loss"}


def _type_ok(tp: Any, value: Any) -> tuple[bool, Any]:
    """Is ``value`` (from TOML/JSON) of annotated type ``tp``? Returns (ok, converted value)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return True, None
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            ok, v = _type_ok(arg, value)
            if ok:
                return True, v
        return False, value
    if tp is Any:
        return True, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        (item, *_) = typing.get_args(tp)
        out = []
        for v in value:
            ok, c = _type_ok(item, v)
            if not ok:
                return False, value
            out.append(c)
        return True, tuple(out)
    if origin is dict or tp is dict:
        return isinstance(value, Mapping), dict(value) if isinstance(value, Mapping) else value
    raise TypeError(f"config type {tp!r} is not supported")  # a programming error, not a user's


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, "") or \
        str(tp).replace("typing.", "").replace("NoneType", "none")


def from_dict(data: Mapping[str, Any], cls: type = RunConfig, path: str = "") -> Any:
    """Build ``cls`` from nested dicts, refusing unknown keys and wrong types with the key's full name."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"[{path}] must be a table of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    section = path.split(".")[-1] if path else ""
    kwargs: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{path}.{key}" if path else key
        if key not in fields or key == "params":
            if section in _PARAM_SECTIONS and "params" in fields:
                params[key] = tuple(value) if isinstance(value, list) else value
                continue
            accepted = ", ".join(f.name for f in dataclasses.fields(cls))
            raise ConfigError(f"unknown key {full} (= {value!r}); accepted keys of [{path or 'the config'}]: "
                              f"{accepted}" if path else f"unknown section [{key}]; accepted sections: {accepted}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(value, tp, full)
            continue
        ok, conv = _type_ok(tp, value)
        if not ok:
            raise ConfigError(f"{full} = {value!r} is not accepted; expected {_type_name(tp)}")
        kwargs[key] = conv
    if params:
        kwargs["params"] = params
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[{path}]: {e}") from None


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {dotted}=...: name a key as SECTION.KEY, e.g. optimizer.lr")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {p} is a value, not a section")
    node[parts[-1]] = value


def apply_overrides(tree: Mapping[str, Any], overrides: list[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["optimizer.lr=0.01", ...]`` (values read as JSON where they parse) or a dict, set into a copy."""
    out = json.loads(json.dumps(tree))
    items = overrides.items() if isinstance(overrides, Mapping) else []
    if not isinstance(overrides, Mapping):
        parsed = []
        for raw in overrides or []:
            key, sep, val = raw.partition("=")
            if not sep or not key:
                raise ConfigError(f"--set takes SECTION.KEY=VALUE, got {raw!r}")
            try:
                v = json.loads(val)
            except json.JSONDecodeError:
                v = val
            parsed.append((key, v))
        items = parsed
    for key, v in items:
        _set(out, key, v)
    return out


def loads(text: str, overrides: list[str] | None = None) -> RunConfig:
    import tomllib

    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}") from None
    return from_dict(apply_overrides(tree, overrides))


def load(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist" if not p.exists() else f"{p} is not a file")
    try:
        return loads(p.read_text(encoding="utf-8"), overrides)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as nested dicts with parameters inlined into their sections (what :func:`from_dict` reads)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out[f.name] = to_dict(v)
        elif f.name == "params" and v is not None:
            out.update({k: list(x) if isinstance(x, tuple) else x for k, x in v.items()})
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        elif v is not None:
            out[f.name] = v
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} as TOML")


def dumps_toml(cfg: RunConfig) -> str:
    """The resolved config as TOML (what a run directory keeps; ``load`` reads it back to the same config)."""
    lines = [f"# blackbox-rp run config, schema {SCHEMA_VERSION}"]
    for section, body in to_dict(cfg).items():
        lines.append(f"\n[{section}]")
        lines += [f"{json.dumps(k) if not k.replace('_', '').isalnum() else k} = {_toml_value(v)}"
                  for k, v in body.items()]
    return "\n".join(lines) + "\n"
