"""The baselines of a text run: the hand-written prompt (θ₀ of the discrete prompt), no search.

A language model has no "no prompt" in the image sense: the text the user wrote around the input *is*
the starting point, so the bars a learned prompt must beat are that prompt read through the run's own
mapping (zero-shot for a verbalizer, calibrated / fitted for the others), the text probe — a linear
readout over the answers to the hand-written prompt (``token-linear`` for a token oracle, ``linear`` on
class scores otherwise) — and, when the run's mapping is not the verbalizer, the zero-shot verbalizer with
the class names as label words (so a run with a learned readout still shows what the prompt alone reads;
skipped, and said so, when a class name is not one token). All read the same θ₀ answers: one query per
training and test text, charged to the ``baseline`` phase.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["text_baselines", "probe_mapping", "run_text_baselines", "label_word_note"]

KIND = "hand-prompt"
#: the zero-shot reading every text run on a token oracle shows
ZERO_SHOT = "verbalizer"


def probe_mapping(oracle: Any) -> str:
    """The text probe's mapping: a readout over next-token distributions, or over class scores."""
    from ..vocab import TokenOracle

    return "token-linear" if isinstance(oracle, TokenOracle) else "linear"


def _make(name: str, oracle: Any, train: Any, params: dict[str, Any], seed: int) -> Any:
    from ..mapping import make_mapping
    from ..mapping.tokens import token_mapping_params

    return make_mapping(name, oracle.num_classes, train.num_classes, seed=seed,
                        **{**token_mapping_params(name, oracle), **params})


def _params(cfg: Any, mapping: str, train: Any) -> dict[str, Any]:
    """A baseline mapping's parameters: the run's own for the run's mapping, the class names as the
    zero-shot verbalizer's label words, the defaults otherwise."""
    if mapping == cfg.mapping.name:
        return dict(cfg.mapping.params)
    if mapping == ZERO_SHOT:
        return {"words": tuple(train.classes)}
    return {}


def text_baselines(cfg: Any, oracle: Any, train: Any) -> list[dict[str, Any]]:
    """The baselines a text run measures (``kind`` ``hand-prompt``) and the image-only ones it skips, said so."""
    from ..exposure import ExposureError
    from ..mapping.tokens import TokenMappingError
    from ..vocab import TokenOracle

    probe = probe_mapping(oracle)
    probe_name = f"text probe (hand-written prompt + {probe})"
    wanted = []
    if cfg.mapping.name != ZERO_SHOT and isinstance(oracle, TokenOracle):
        wanted.append((f"hand-written prompt + verbalizer, zero-shot (label words: {'/'.join(train.classes)})",
                       ZERO_SHOT))
    if cfg.mapping.name != probe:
        wanted.insert(0, (f"hand-written prompt + {cfg.mapping.name} mapping", cfg.mapping.name))
    wanted.append((probe_name, probe))  # the run's own mapping when it is the probe's: same θ₀, same readout
    out = []
    for name, mapping in wanted:
        skipped = None
        try:
            m = _make(mapping, oracle, train, _params(cfg, mapping, train), cfg.task.seed)
        except TokenMappingError as e:
            if mapping == cfg.mapping.name:
                raise
            out.append({"name": name, "kind": KIND, "mapping": mapping, "skipped": f"skipped: {e}"})
            continue
        try:
            m.check(oracle)
        except ExposureError:
            skipped = f"skipped: it needs {m.needs} outputs and the exposure {oracle.exposure.key()} gives {oracle.level}"
        out.append({"name": name, "kind": KIND, "mapping": mapping, "skipped": skipped})
    image_only = "skipped: image-only (a text model has no prompt-free input; the text probe is its counterpart)"
    if cfg.baselines.linear_probe:
        out.append({"name": "no prompt + linear probe", "kind": "no-prompt", "mapping": "linear",
                    "skipped": image_only})
    if cfg.baselines.probe_views:
        out.append({"name": "linear probe on several views", "kind": "multiview-probe", "mapping": "linear",
                    "skipped": "skipped: image-only (views are image sizes on a canvas)"})
    return out


def label_word_note(mapping: Any, resp: Any) -> str | None:
    """For a verbalizer read from top-k answers: how often a label word was among the shown tokens, when not
    always. A row that shows none scores every class alike and goes to class 0, so a zero-shot accuracy
    built mostly of such rows measures the tie rule, not the model's reading; the summary says so."""
    from ..mapping.tokens import Verbalizer

    if not isinstance(mapping, Verbalizer) or resp.indices is None or not len(resp):
        return None
    ids = np.array([i for t in mapping.class_ids for i in t])
    shown = float(np.isin(resp.indices, ids).any(axis=1).mean())
    if shown >= 1.0:
        return None
    return (f"a label word was among the top-{resp.indices.shape[1]} tokens of {100 * shown:.0f}% of the test "
            f"answers; the others are ties, given to the first class")


def run_text_baselines(cfg: Any, oracle: Any, transform: Any, train: Any, test: Any,
                       baselines: list[dict[str, Any]], notes: dict[str, str] | None = None) -> dict[str, float]:
    """Accuracy on ``test`` of every measured hand-prompt baseline, by name (θ₀ answers queried once);
    ``notes`` collects what a reader must know to read one (:func:`label_word_note`)."""
    from ..objective import accuracy_of

    todo = [b for b in baselines if b["kind"] == KIND and not b["skipped"]]
    if not todo:
        return {}
    theta0 = transform.init_theta()
    r_train = oracle(transform.apply(theta0, list(train.x)), phase="baseline")
    r_test = oracle(transform.apply(theta0, list(test.x)), phase="baseline")
    out = {}
    for b in todo:
        m = _make(b["mapping"], oracle, train, _params(cfg, b["mapping"], train), cfg.task.seed).fit(r_train, train.y)
        out[b["name"]] = accuracy_of(m.predict(r_test), test.y)
        note = label_word_note(m, r_test)
        if note is not None and notes is not None:
            notes[b["name"]] = note
        logger.info("%s: test accuracy %.4f", b["name"], out[b["name"]])
    return out
