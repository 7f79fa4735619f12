"""Baselines without any prompt: what output alignment alone gets from the model's answers.

An input transformation is only worth its queries if it beats these:

* **zero-shot mapping** — the target images placed on the canvas with no
  prompt (the ``none`` transform), the chosen mapping family (FLM, BLM, …)
  fitted on the training split's answers;
* **output-only linear probe** — the same answers, a logistic regression on
  the returned log-probabilities (the ``linear`` mapping). On the bundled
  ImageNet model it reaches ~91% on MNIST with no prompt at all
  (RESOURCES.md), which makes it the real bar.

* **multi-view linear probe** — still no learned prompt: each image shown
  K ways (e.g. 48 px and 64 px on the canvas), the K answers side by side
  under one logistic regression, for K queries per image. The simplest input
  transformation that adds information rather than moving one view.

All spend queries through the oracle's ledger under one phase (``"baseline"``
by default) so that a results file keeps them apart from the reprogrammer's
train / validation / test counts. Given the same canvas, their inputs are
exactly those of an additive prompt at θ = 0, so with a journal the
reprogrammer's first queries are replayed from theirs.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .objective import Objective

logger = logging.getLogger(__name__)

__all__ = ["output_only", "multiview_probe", "canvas_options"]


def canvas_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Of a transform's options, those that place the image on the canvas (``image_size``,
    ``background``); the prompt's own (``low_res``, ``mask``, ...) are dropped."""
    from .transforms.base import CanvasConfig

    return {k: v for k, v in (options or {}).items() if k in CanvasConfig.__dataclass_fields__}


def _no_prompt_accuracy(oracle: Any, transform: Any, mapping: Any, train: Any, test: Any, phase: str,
                        batch: int) -> float:
    """Fit ``mapping`` on the answers for ``train`` shown by the prompt-less ``transform``; accuracy on ``test``."""
    obj = Objective(transform, oracle, mapping, eval_batch=batch, phases=(phase,))
    theta = transform.init_theta()
    mapping.fit(obj.respond(theta, train.x, phase), train.y)
    return obj.accuracy(theta, test.x, test.y, phase)[0]


def output_only(oracle: Any, mapping: str, train: Any, test: Any, *, out_size: int,
                canvas: dict[str, Any] | None = None, phase: str = "baseline", seed: int = 0,
                batch: int = 512, **mapping_params: Any) -> dict[str, Any]:
    """Fit ``mapping`` on the no-prompt answers for ``train``; accuracy on ``test``.

    ``canvas``: the compared transform's options; those of the canvas itself
    (``image_size``, ``background``) place the images, the rest (the prompt's
    own) are ignored. Returns ``{"mapping", "accuracy", "train_queries",
    "test_queries"}``; every query is charged to ``phase``.
    """
    from .mapping import make_mapping
    from .transforms.none import NoPrompt

    t = NoPrompt.for_task(train, oracle.input_spec, seed=seed, out_size=out_size, **canvas_options(canvas))
    m = make_mapping(mapping, oracle.num_classes, train.num_classes, seed=seed, **mapping_params)
    m.check(oracle)
    acc = _no_prompt_accuracy(oracle, t, m, train, test, phase, batch)
    logger.info("no prompt, %s mapping: test accuracy %.4f", mapping, acc)
    return {"mapping": mapping, "accuracy": acc, "train_queries": len(train), "test_queries": len(test)}


def multiview_probe(oracle: Any, train: Any, test: Any, *, out_size: int, views: list[dict[str, Any]],
                    phase: str = "baseline", seed: int = 0, batch: int = 512, **mapping_params: Any) -> dict[str, Any]:
    """The output-only linear probe on ``len(views)`` views of every image, K queries per image.

    ``views``: one canvas each (``image_size``, ``background``; other keys are refused —
    :func:`canvas_options` picks them out of a transform's options). The ``views``
    transform (:class:`~blackbox_rp.transforms.views.MultiView`) shows each image K
    ways; a ``linear`` mapping built with the same views reads the K answers side
    by side (each turned into the probabilities the readout sees and divided by K,
    so a row still sums to 1) and is fitted on ``train``. With one view it is
    exactly :func:`output_only`'s linear probe. Returns ``{"mapping", "views",
    "accuracy", "train_queries", "test_queries"}``; every query is charged to
    ``phase``.
    """
    from .mapping import make_mapping
    from .transforms.views import MultiView

    t = MultiView.for_task(train, oracle.input_spec, seed=seed, out_size=out_size, views=views)
    m = make_mapping("linear", oracle.num_classes, train.num_classes, seed=seed, views=t.views, **mapping_params)
    m.check(oracle)
    acc = _no_prompt_accuracy(oracle, t, m, train, test, phase, batch)
    logger.info("no prompt, linear probe on %d views: test accuracy %.4f", len(views), acc)
    return {"mapping": "linear", "views": [dict(v) for v in views], "accuracy": acc,
            "train_queries": len(train) * len(views), "test_queries": len(test) * len(views)}
