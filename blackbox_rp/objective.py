"""The objective: transform → oracle → mapping → loss, the one place that calls the model.

Like TextAttack's goal functions, one object owns the model call, the batching
and what the budget still affords; every search method only sees scored
candidates. It knows no modality: the transform makes the model inputs
(images or prompt strings, ``views`` per target), :func:`concat_inputs` joins
the inputs of a step's candidates into one oracle batch, and the mapping turns
the answers into target-class scores. So image prompts and text prompts are
scored, budgeted and journaled by the same code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .exposure import Response
from .transforms.protocol import concat_inputs

logger = logging.getLogger(__name__)

__all__ = ["Objective", "Scored", "accuracy_of"]


def accuracy_of(pred: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(pred) == np.asarray(y)).mean()) if len(y) else 0.0


@dataclass
class Scored:
    """One step's candidates scored on one minibatch: a loss each, the answers (candidate-major) and
    their labels (the minibatch's, once per candidate)."""

    losses: list[float]
    answers: Response
    labels: np.ndarray


class Objective:
    """Scores θ candidates of ``transform`` through ``oracle`` with ``mapping`` and ``loss_fn``.

    ``eval_batch`` target inputs go in one oracle batch when a whole split is answered
    (:meth:`respond`); a step's candidates travel together (:meth:`score`).
    ``phases`` are the ledger phases the budget bounds (train and validation).
    """

    def __init__(self, transform: Any, oracle: Any, mapping: Any,
                 loss_fn: Callable[[np.ndarray, np.ndarray], float] | None = None, eval_batch: int = 512, phases: tuple[str, ...] = ("train", "validation")):
        self.transform, self.oracle, self.mapping, self.loss_fn = transform, oracle, mapping, loss_fn
        self.eval_batch = eval_batch
        self.phases = phases

    # ------------------------------------------------------------ answering
    def respond(self, theta: np.ndarray, x: Any, phase: str) -> Response:
        """The oracle's answers for the targets ``x`` under θ, ``eval_batch`` targets per request."""
        parts = []
        for s in range(0, len(x), self.eval_batch):
            parts.append(self.oracle(self.transform(theta, x[s:s + self.eval_batch]), phase=phase))
        return Response.concat(parts)

    def score(self, cands: list[np.ndarray], xb: Any, yb: np.ndarray, phase: str = "train",
              folds: int | None = None) -> Scored:
        """Every candidate on the same minibatch, in one oracle batch; one loss per candidate.

        ``folds`` None reads every candidate with the mapping as it is; a number k scores each candidate
        with the mapping fitted to that candidate's own answers (:meth:`cross_fitted_scores`).
        """
        if self.loss_fn is None:
            raise ValueError("this objective has no loss: build it with loss_fn to score candidates")
        resp = self.oracle(concat_inputs([self.transform(c, xb) for c in cands]), phase=phase)
        rows = len(xb) * self.transform.views
        blocks = [resp.take(slice(j * rows, (j + 1) * rows)) for j in range(len(cands))]
        read = self.mapping.scores if folds is None else (lambda r: self.cross_fitted_scores(r, yb, folds))
        losses = [self.loss_fn(read(b), yb) for b in blocks]
        return Scored(losses, resp, np.tile(yb, len(cands)))

    def cross_fitted_scores(self, resp: Response, y: np.ndarray, folds: int) -> np.ndarray:
        """Out-of-fold class scores of one candidate's answers: the targets are cut into ``folds`` contiguous
        folds (a minibatch is already shuffled) and each fold is read by the mapping fitted on the others.
        The mapping is left as it was."""
        y = np.asarray(y)
        views = self.transform.views

        def rows(targets: np.ndarray) -> np.ndarray:  # the answer rows of these targets (views are target-major)
            return (targets[:, None] * views + np.arange(views)).ravel()

        saved = self.mapping.state_dict()
        out = np.zeros((len(y), self.mapping.num_target))
        try:
            for held in np.array_split(np.arange(len(y)), folds):
                rest = np.setdiff1d(np.arange(len(y)), held)
                self.mapping.fit(resp.take(rows(rest)), y[rest])
                out[held] = self.mapping.scores(resp.take(rows(held)))
        finally:
            self.mapping.load_state_dict(saved)
        return out

    def example_losses(self, inputs: Any, yb: np.ndarray, blocks: int, phase: str = "train") -> tuple[np.ndarray, Response]:
        """Each example's loss at ``blocks`` sets of model inputs, sent in one oracle batch.

        ``inputs`` are model inputs already made (not θ): ``blocks`` consecutive blocks of
        ``len(yb) · views`` rows, each a version of the minibatch ``yb`` (e.g. its transformed images, then
        those images perturbed). Returns (losses of shape (blocks, len(yb)), the answers). This is what an
        estimator that perturbs the model's inputs per example (``zo-chain``) needs; the queries go
        through the oracle, its ledger and journal like every other.
        """
        from .losses import Loss

        if not isinstance(self.loss_fn, Loss):
            raise ValueError("per-example losses need a loss built by blackbox_rp.losses.make_loss (a Loss with "
                             f"per_example); this objective's loss is {self.loss_fn!r}")
        rows = len(yb) * self.transform.views
        if len(inputs) != blocks * rows:
            raise ValueError(f"{blocks} blocks of {rows} model inputs expected, got {len(inputs)}")
        resp = self.oracle(inputs, phase=phase)
        losses = np.stack([self.loss_fn.per_example(self.mapping.scores(resp.take(slice(j * rows, (j + 1) * rows))), yb)
                           for j in range(blocks)])
        return losses, resp

    def accuracy(self, theta: np.ndarray, x: Any, y: np.ndarray, phase: str) -> tuple[float, Response]:
        resp = self.respond(theta, x, phase)
        return accuracy_of(self.mapping.predict(resp), y), resp

    # --------------------------------------------------------------- budget
    def spent(self) -> int:
        """Queries spent in the budgeted phases."""
        led = self.oracle.ledger
        return sum(led.counts(p).queries for p in self.phases)

    def remaining(self) -> int | None:
        """What the budget still affords in the budgeted phases (None: no bound)."""
        led = self.oracle.ledger
        rem = [r for r in (led.remaining_queries(p) for p in self.phases) if r is not None]
        return min(rem) if rem else None

    def affordable(self, n: int, reserve: int = 0) -> bool:
        """Can ``n`` more queries be spent in the budgeted phases and still leave ``reserve``?"""
        rem = self.remaining()
        return rem is None or rem >= n + reserve
