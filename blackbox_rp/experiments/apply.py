"""Use what a run learned (θ and ω) on new inputs, through any oracle, counting the queries.

Modality-neutral: the run directory gives the config, ``theta.npy`` and ``mapping.npz``; the transform is
rebuilt by :func:`~blackbox_rp.experiments.run.run_transform` — the function the run built it with — from
the run's own training split (a text prompt's candidate words are ranked from it; an image prompt's canvas
follows it), so the θ learned indexes the same prompt words or pixels. The oracle is the run's model unless
another spec is given (the same model behind a server). Queries are charged to phase ``"apply"``.

Everything that can be wrong is refused in one line before the first query: inputs of the other modality,
labels that are not the run's classes, an oracle of another kind or with another vocabulary than the one
a token mapping's ids index, a θ or prompt that no longer matches the rebuilt transform.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["apply_run", "load_inputs", "ApplyError"]

#: text specs that are never images, and image specs that are never texts (for the one-line refusal)
_TEXT_SUFFIXES = (".tsv", ".jsonl")
_IMAGE_SUFFIXES = (".npz", ".gz")


class ApplyError(ValueError):
    """A run that cannot be applied as asked; the message says what to give instead."""


def _names_modality(spec: str) -> str | None:
    """The modality a data spec names for sure ("image", "text"), or None when only loading tells."""
    from ..data import DATASETS
    from ..textdata import TEXT_DATASETS

    if spec in DATASETS:
        return "image"
    if spec in TEXT_DATASETS or spec.startswith("chatterbot-topics:"):
        return "text"
    path = Path(spec)
    if path.is_dir() or path.suffix.lower() in _IMAGE_SUFFIXES:
        return "image"
    if path.suffix.lower() in _TEXT_SUFFIXES:
        return "text"
    return None


def _model(modality: str) -> str:
    return "an image model" if modality == "image" else "a text model"


def _want(modality: str) -> str:
    return ("texts: mr, chatterbot-topics[:TOPIC,...] or a .csv / .tsv / .jsonl file with text and label columns"
            if modality == "text" else "images: a bundled dataset, an .npz, a pixel CSV or an image folder")


def load_inputs(spec: Any, modality: str) -> Any:
    """``spec`` loaded as the run's modality: a text spec through :mod:`~blackbox_rp.textdata`, an image one
    through :mod:`~blackbox_rp.data`; an already-loaded dataset is checked to be of that modality."""
    from ..textdata import TextDataset, load_text_target

    if not isinstance(spec, (str, Path)):
        is_text = isinstance(spec, TextDataset)
        if is_text != (modality == "text"):
            raise ApplyError(f"the run reprograms {_model(modality)} but the data holds "
                             f"{'texts' if is_text else 'images'}; give {_want(modality)}")
        return spec
    s = str(spec)
    named = _names_modality(s)
    if named is not None and named != modality:
        raise ApplyError(f"the run reprograms {_model(modality)} but --data {s} is {named} data; "
                         f"give {_want(modality)}")
    if modality == "text":
        return load_text_target(s)
    from ..data import load_target

    return load_target(s)


def _labels_as_run_classes(data: Any, classes: list[str]) -> np.ndarray:
    """The data's labels as indices of the run's classes: matched by name when the data names its classes
    (a text file's labels are sorted names, not the run's order), by position when it only numbers them."""
    mine = list(data.classes)
    if set(mine) <= set(classes):
        where = {c: i for i, c in enumerate(classes)}
        return np.array([where[mine[int(v)]] for v in data.y], dtype=np.int64)
    if len(mine) == len(classes) and all(c.isdigit() for c in mine):
        return np.asarray(data.y, dtype=np.int64)
    raise ApplyError(f"the data has {len(mine)} classes {mine[:10]} but the run learned {len(classes)} "
                     f"{classes[:10]}; give data labelled with the run's classes (by name, or numbered "
                     f"0..{len(classes) - 1})")


def _check_oracle_reads_mapping(cfg: Any, oracle: Any, state: dict[str, Any], model: str) -> dict[str, Any]:
    """The mapping's extra parameters for ``oracle``, refusing an oracle whose outputs are not the ones the
    fitted ω indexes (another class count, another kind, another vocabulary)."""
    from ..mapping.tokens import TokenMappingError, token_mapping_params
    from ..vocab import fingerprint

    try:
        extra = token_mapping_params(cfg.mapping.name, oracle)
    except TokenMappingError as e:
        raise ApplyError(f"the run's {cfg.mapping.name} mapping reads token ids of a vocabulary, but oracle "
                         f"{model} declares none (its answers are class scores, or token scores without a "
                         f"tokenizer); apply through the run's language model ({cfg.oracle.model})") from e
    if state["num_source"] != oracle.num_classes:
        raise ApplyError(f"the run's {cfg.mapping.name} mapping reads {state['num_source']} model outputs but "
                         f"oracle {model} answers over {oracle.num_classes}; apply through the run's model "
                         f"({cfg.oracle.model}) or a server holding it")
    saved = state.get("vocabulary")
    if "vocabulary" in extra and saved is not None:
        now = fingerprint(extra["vocabulary"])
        if now != saved:
            raise ApplyError(f"the run's {cfg.mapping.name} mapping indexes token ids of another vocabulary than "
                             f"oracle {model}'s (same size {now['size']}, other tokens): its ids would read other "
                             f"tokens; apply through the run's model ({cfg.oracle.model}) or one with its tokenizer")
    return extra


def apply_run(run_dir: str | Path, data: Any, *, model: str | None = None, api_key_env: str | None = None,
              batch: int = 512, limit: int | None = None) -> dict[str, Any]:
    """Predictions for ``data`` (a data spec, or a loaded image / text dataset) and what they cost.

    Returns ``pred`` (indices of the run's ``classes``), ``labels`` (the data's labels as those indices),
    ``inputs`` (the texts, for a text run; None for images), ``queries`` / ``calls`` charged to ``"apply"``,
    ``accuracy`` against the labels, the oracle's identity and, for a text run, the readable ``prompt``."""
    from oracles.resolve import resolve_oracle

    from ..data import DataError, DatasetUnavailable, split_dataset
    from ..ledger import Ledger
    from ..mapping import make_mapping
    from ..textdata import load_text_target
    from .config import load
    from .run import _close, load_mapping_state, read_results, run_modality, run_transform

    run_dir = Path(run_dir)
    results = read_results(run_dir)  # only a finished run has a θ and ω worth applying
    cfg = load(run_dir / "config.toml")
    modality = run_modality(cfg)
    data = load_inputs(data, modality)
    if limit is not None:
        if limit < 1:
            raise ApplyError(f"limit {limit}: give a positive number of inputs")
        data = data.subset(np.arange(min(limit, len(data))))
    classes = list(results["classes"])
    labels = _labels_as_run_classes(data, classes)
    theta = np.load(run_dir / "theta.npy")
    state = load_mapping_state(run_dir / "mapping.npz")
    if state["num_target"] != len(classes):
        raise ApplyError(f"{run_dir}: mapping.npz maps to {state['num_target']} classes but results.json names "
                         f"{len(classes)}; the run directory is damaged")
    o = cfg.oracle
    spec = model or o.model
    oracle = resolve_oracle(spec, exposure=o.exposure, ledger=Ledger(), max_batch=o.max_batch,
                            api_key_env=api_key_env if model else o.api_key_env, wire=None if model else o.wire,
                            openai=None if model else o.openai, timeout=o.timeout)
    try:
        if oracle.input_spec.kind != modality:
            raise ApplyError(f"the run's transform {cfg.transform.name} makes {modality} inputs but oracle {spec} "
                             f"takes {oracle.input_spec.describe()}; apply through the run's model "
                             f"({cfg.oracle.model}) or a server holding it")
        extra = _check_oracle_reads_mapping(cfg, oracle, state, spec)
        try:
            whole = load_text_target(cfg.task.data) if modality == "text" else _load_image_target(cfg.task.data)
        except (DataError, DatasetUnavailable) as e:
            raise ApplyError(f"apply rebuilds the run's transform from its training split, but the run's data "
                             f"({cfg.task.data}) cannot be loaded: {e}") from None
        train = split_dataset(whole, cfg.task.split, cfg.task.seed)[0]
        t = run_transform(cfg, oracle, train).transform
        recorded = results.get("reprogrammer", {}).get("transform")
        if recorded is not None and json.loads(json.dumps(t.describe(), default=float)) != recorded:
            raise ApplyError(f"{run_dir}: the run's transform {cfg.transform.name}, rebuilt from its data "
                             f"({cfg.task.data}) for oracle {spec}, is not the one results.json records: the data "
                             f"changed since, or the oracle takes other inputs than the run's model"
                             + (f"; the learned prompt {results['prompt']!r} can still be used directly"
                                if "prompt" in results else ""))
        if theta.size != t.space.dim:
            raise ApplyError(f"{run_dir}: θ has {theta.size} values but the run's transform {cfg.transform.name}, "
                             f"rebuilt, takes {t.space.dim}; the run's data ({cfg.task.data}) changed since")
        if "prompt" in results and t.readable(theta) != results["prompt"]:
            raise ApplyError(f"{run_dir}: the rebuilt prompt reads {t.readable(theta)!r}, not the learned "
                             f"{results['prompt']!r}: the run's data ({cfg.task.data}) changed since; use the "
                             f"learned prompt string directly")
        if len(data):
            try:  # no query: the inputs must fit the transform (image shape, non-empty texts)
                t(theta, data.x[:1])
            except ValueError as e:
                raise ApplyError(f"the inputs do not fit the run's transform ({e}); give inputs like the run's "
                                 f"data ({cfg.task.data})") from None
        m = make_mapping(cfg.mapping.name, oracle.num_classes, state["num_target"], seed=cfg.task.seed,
                         views=t.views, **{**extra, **dict(cfg.mapping.params)})
        m.load_state_dict(state)
        m.check(oracle)
        preds = []
        for s in range(0, len(data), batch):
            preds.append(m.predict(oracle(t(theta, data.x[s:s + batch]), phase="apply")))
    finally:
        _close(oracle)
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    counts = oracle.ledger.counts("apply")
    out = {"pred": pred, "labels": labels, "classes": classes, "queries": counts.queries, "calls": counts.calls,
           "accuracy": float((pred == labels).mean()) if len(data) else None, "oracle": oracle.identity,
           "inputs": list(data.x) if modality == "text" else None}
    if "prompt" in results:
        out["prompt"] = results["prompt"]
    return out


def _load_image_target(spec: str) -> Any:
    from ..data import load_target

    return load_target(spec)
