"""The input-transformation protocol ``I_θ`` that image prompts and text prompts both implement.

A transform owns θ's :class:`~blackbox_rp.space.SearchSpace` and its start θ₀,
and maps (θ, a batch of target inputs) to model inputs — a float array of
images, or a list of prompt strings — that an oracle takes. A transform may
emit ``views`` model inputs per target input (K ways of showing it, e.g. the
multi-view probe's sizes); they come target-major: rows ``i·K … i·K + K − 1``
belong to target ``i``, and a mapping built with the same ``views`` reads them
together.

The objective never looks inside: it calls :meth:`InputTransform.apply` and
joins the model inputs of several candidates with :func:`concat_inputs`, so one
loop serves every modality.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import numpy as np

from ..space import SearchSpace

__all__ = ["InputTransform", "BuiltFromOracle", "DifferentiableTransform", "concat_inputs"]


class InputTransform(ABC):
    """θ's space, θ₀, ``apply(θ, inputs) → model inputs`` and ``describe()``.

    ``views`` model inputs come out per target input. :meth:`for_task` builds the transform from the
    training split and what the oracle accepts (its :class:`~blackbox_rp.oracle.InputSpec`), so no
    caller computes image geometry or text templates itself.
    """

    name: ClassVar[str] = ""
    #: the kind of target inputs it takes: "image" or "text"
    modality: ClassVar[str] = "image"
    views: int = 1

    @property
    @abstractmethod
    def space(self) -> SearchSpace:
        """The search space of θ (``space.dim`` is θ's length)."""

    @abstractmethod
    def init_theta(self) -> np.ndarray:
        """θ₀: the start, where the transform adds nothing (or the user's hand-written prompt)."""

    @abstractmethod
    def apply(self, theta: np.ndarray, inputs: Any) -> Any:
        """Model inputs for a batch of target inputs under θ (``views`` per input, target-major)."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What results files record; for a discrete prompt, the readable prompt of θ₀."""

    @classmethod
    @abstractmethod
    def for_task(cls, train: Any, input_spec: Any, *, seed: int = 0, **params: Any) -> "InputTransform":
        """The transform for target inputs like ``train``'s, feeding an oracle that accepts ``input_spec``."""

    def __call__(self, theta: np.ndarray, inputs: Any) -> Any:
        return self.apply(theta, inputs)

    def start_theta(self, theta0: Any = None) -> np.ndarray:
        """Where a fit starts: θ₀, or ``theta0`` (e.g. a warm start) as float64, refused unless it has θ's shape."""
        if theta0 is None:
            return np.asarray(self.init_theta(), dtype=np.float64)
        start = np.asarray(theta0, dtype=np.float64)
        if start.shape != (self.space.dim,):
            raise ValueError(f"theta0 has shape {start.shape}; transform {self.name!r} takes θ of shape "
                             f"({self.space.dim},)")
        return start

    def readable(self, theta: np.ndarray) -> Any:
        """θ as a person reads it (a prompt string for text; the vector's norm for image prompts)."""
        return {"l2": float(np.linalg.norm(np.asarray(theta, dtype=np.float64)))}


class BuiltFromOracle(ABC):
    """Mixin of transforms built from the oracle itself, not only from what inputs it accepts.

    A soft prompt reads the model's input-embedding table (its width, the rows of hand-written words,
    its spread); :meth:`Reprogrammer.build <blackbox_rp.reprogram.Reprogrammer.build>` calls
    :meth:`for_oracle` for such transforms, :meth:`InputTransform.for_task` for the others.
    """

    @classmethod
    @abstractmethod
    def for_oracle(cls, train: Any, oracle: Any, *, seed: int = 0, **params: Any) -> "InputTransform":
        """The transform for target inputs like ``train``'s, feeding ``oracle`` (refused if it cannot)."""


class DifferentiableTransform(ABC):
    """Ability: the transform has a torch form, differentiable in θ.

    Declared (not probed) because two things need it: the white-box ceiling backpropagates through the
    transform and the model, and the ``zo-chain`` estimator backpropagates through the transform only —
    the transform is ours, local, even when the model is a black box. Text prompts (discrete tokens) do
    not have it.
    """

    @abstractmethod
    def torch_forward(self, theta: Any, x: Any) -> Any:
        """The model inputs (a float32 torch tensor, ``views`` rows per target, target-major) for targets
        ``x`` (a torch tensor) under θ (a float32 torch tensor of shape (dim,)), differentiable in θ."""


def concat_inputs(parts: Sequence[Any]) -> Any:
    """Join batches of model inputs: arrays along the batch axis, lists of strings end to end."""
    if not parts:
        raise ValueError("nothing to join")
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    out: list[Any] = []
    for p in parts:
        out.extend(p)
    return out
