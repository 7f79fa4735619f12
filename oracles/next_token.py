"""What every in-process next-token oracle shares: prompts as token ids, and log-probability rows as answers.

:class:`NextTokenOracle` is the common base of
:class:`~oracles.llama_cpp_oracle.LlamaCppOracle` (llama.cpp) and
:class:`~oracles.torch_lm_oracle.TorchLMOracle` (the same GGUF weights in
torch). A subclass turns a request's inputs into what its model evaluates
(:meth:`NextTokenOracle._prepare`, which refuses bad inputs *before* the call
is charged) and evaluates them into log-softmax rows over the vocabulary
(:meth:`NextTokenOracle._rows`); the base checks prompt lengths against the
context and shapes the rows into the exposure's answer — the top-k selected
here (``argpartition``) rather than 262,144 floats per row handed on to sort.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from blackbox_rp.exposure import LabelOnly, Response, TopK
from blackbox_rp.oracle import Call, InputError, Oracle
from blackbox_rp.vocab import TokenOracle, Vocabulary

__all__ = ["NextTokenOracle", "log_softmax", "rows_response"]


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64 (logits of any float dtype, 1-D or 2-D)."""
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def rows_response(rows: np.ndarray, exposure: Any, num_classes: int) -> Response:
    """The answer to ``rows`` (n, vocab) of log-probabilities at the richest level ``exposure`` keeps."""
    labels = rows.argmax(axis=1).astype(np.int64)
    if isinstance(exposure, (TopK, LabelOnly)):
        # the exposure keeps k values per row: select them here (argpartition) rather than
        # hand the base class n x 262,144 floats to sort
        k = min(exposure.k if isinstance(exposure, TopK) else 1, num_classes)
        part = np.argpartition(-rows, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(rows, part, axis=1), axis=1, kind="stable")
        idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
        p = np.exp(np.take_along_axis(rows, idx, axis=1)).astype(np.float32)
        return Response("topk", num_classes, idx[:, 0].copy(), p, idx)
    return Response("logits", num_classes, labels, rows.astype(np.float32))


class NextTokenOracle(Oracle, TokenOracle):
    """Base of oracles answering the next-token distribution of a prompt (see the module docstring).

    Subclasses set ``n_ctx``, ``_identity`` and ``_vocabulary`` (whose ``encode_prompt`` gives the ids the
    model evaluates: BOS + text) and implement ``_prepare`` and ``_rows``.
    """

    source_level = "logits"
    n_ctx: int
    _identity: str
    _vocabulary: Vocabulary

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocabulary

    def _encode_prompt(self, i: int, text: str, extra: int = 0) -> list[int]:
        """Input ``i``'s token ids (BOS + text); ``extra`` positions (soft prompt rows) count in the context."""
        ids = self.vocabulary.encode_prompt(text)  # type: ignore[attr-defined]
        if not ids:
            raise InputError(f"input {i} tokenizes to nothing and the model adds no BOS; give it some text")
        if len(ids) + extra >= self.n_ctx:
            raise InputError(f"input {i} is {len(ids) + extra} tokens, over the context of {self.n_ctx} "
                             f"(n_ctx - 1 fit); shorten it or build the oracle with a larger n_ctx")
        return ids

    def _tokens(self, texts: list[str]) -> list[list[int]]:
        return [self._encode_prompt(i, t) for i, t in enumerate(texts)]

    @abstractmethod
    def _prepare(self, inputs: list[Any]) -> Any:
        """What the model evaluates for a request's inputs; raises InputError (nothing is charged yet)."""

    @abstractmethod
    def _rows(self, prepared: Any) -> np.ndarray:
        """(n, vocab) float64 log-softmax of the next token after each prepared input."""

    def _answer(self, inputs: list[Any], call: Call) -> Response:
        prepared = self._prepare(list(inputs))  # refuse bad inputs before the call is charged
        call.attempt()
        return rows_response(self._rows(prepared), self.exposure, self.num_classes)
