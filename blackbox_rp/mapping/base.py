"""The output-alignment protocol ``O_ω``: source-model answers → target-class probabilities.

A label mapping is fitted only from what the oracle returned and the target
labels — never from the model's internals. Each mapping declares the
information level it ``needs`` (one of :data:`blackbox_rp.exposure.NEEDS`);
:meth:`LabelMapping.check` refuses a poorer exposure when the experiment is
assembled, not half-way through a paid run.

:meth:`LabelMapping.scores` returns rows that sum to 1, so a cross-entropy
loss on mapped outputs is always defined. Scores may contain exact zeros (a
one-to-one mapping under top-k or label-only answers); take
``log(max(s, 1e-12))`` in losses.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from ..exposure import NEEDS, Exposure, ExposureError, Response, parse_exposure, require

logger = logging.getLogger(__name__)

__all__ = ["LabelMapping", "MappingConfig", "DifferentiableMapping", "TrainableMapping", "count_matrix", "as_probs",
           "as_labels", "normalize_rows"]


@dataclass(frozen=True)
class MappingConfig:
    """A mapping without parameters."""


def count_matrix(source_labels: np.ndarray, y: np.ndarray, num_source: int, num_target: int) -> np.ndarray:
    """N[s, t] = #{i : y_i = t and the oracle's top-1 for x_i is s}, shape (num_source, num_target)."""
    n = np.zeros((num_source, num_target), dtype=np.float64)
    np.add.at(n, (np.asarray(source_labels, dtype=np.int64), np.asarray(y, dtype=np.int64)), 1.0)
    return n


def normalize_rows(a: np.ndarray) -> np.ndarray:
    """Rows scaled to sum 1; an all-zero row (no evidence for any target) becomes uniform."""
    a = np.asarray(a, dtype=np.float64)
    s = a.sum(axis=1, keepdims=True)
    out = np.divide(a, s, out=np.full_like(a, 1.0 / a.shape[1]), where=s > 0)
    return out


def renormalised_log(mass: Any) -> Any:
    """log of torch rows ``mass`` renormalised to sum 1 (clamped like the numpy scores' 1e-12 floor)."""
    import torch

    return torch.log(torch.clamp(mass / mass.sum(1, keepdim=True).clamp_min(1e-30), min=1e-12))


def _check_dense(p: np.ndarray, num_source: int) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != num_source:
        raise ValueError(f"expected source probabilities of shape (n, {num_source}), got {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("source probabilities must be finite and non-negative")
    return p


def as_probs(resp: Response | np.ndarray, num_source: int, floor: float = 0.0) -> np.ndarray:
    """Dense (n, num_source) float64 probabilities from a Response (top-k gaps get ``floor``,
    label-only answers become one-hot) or from an array of probabilities."""
    if isinstance(resp, Response):
        if resp.num_classes != num_source:
            raise ValueError(f"the oracle answered over {resp.num_classes} classes; this mapping was "
                             f"built for {num_source} source classes")
        return resp.probs(floor=floor).astype(np.float64)
    return _check_dense(resp, num_source)


def as_labels(resp: Response | np.ndarray, num_source: int) -> np.ndarray:
    """The oracle's top-1 source class per input."""
    if isinstance(resp, Response):
        if resp.num_classes != num_source:
            raise ValueError(f"the oracle answered over {resp.num_classes} classes; this mapping was "
                             f"built for {num_source} source classes")
        return np.asarray(resp.labels, dtype=np.int64)
    return _check_dense(resp, num_source).argmax(axis=1).astype(np.int64)


def _level_of(target: Any) -> tuple[str, Any]:
    """(information level, what to name in the message) of an oracle, an Exposure, a level or an exposure spec."""
    if isinstance(target, str):
        if target in NEEDS:
            return target, target
        target = parse_exposure(target)  # an exposure spec such as "top5" or "rounded2"
    if isinstance(target, Exposure):
        return target.level, target
    exposure = getattr(target, "exposure", None)
    if isinstance(exposure, Exposure):
        return exposure.level, exposure
    raise TypeError(f"expected an oracle, an Exposure or one of {NEEDS}, got {type(target).__name__}")


class LabelMapping(ABC):
    """Base of label mappings. Subclasses set ``name``, ``needs``, ``Config`` and implement
    :meth:`fit` and :meth:`_scores`; array state listed in ``_state`` is saved by :meth:`state_dict`.

    Args:
        num_source: classes of the source model.
        num_target: classes of the target task.
        seed: for mappings with a random part (RLM).
        exposure: optionally an oracle, Exposure or level; checked at once (see :meth:`check`).
        views: answers per target input (a transform that shows each input K ways). With K > 1 the
            mapping reads the K answers of a target side by side: its ``num_source`` becomes K × the
            model's classes, and each answer row becomes :meth:`view_probs` / K in its block.
        **params: the mapping's config fields.

    Abilities beyond fitting are declared by the interfaces :class:`DifferentiableMapping` (a torch form
    the white-box reference backpropagates through) and :class:`TrainableMapping` (parameters trained
    with the prompt); callers test ``isinstance``, never attribute names.
    """

    name: ClassVar[str] = ""
    needs: ClassVar[str] = "label"
    Config: ClassVar[type] = MappingConfig
    #: None, or "epoch": the Reprogrammer refits the mapping each epoch with the current prompt
    refit_every: ClassVar[str | None] = None
    #: attribute names of the fitted numpy state
    _state: ClassVar[tuple[str, ...]] = ()

    def __init__(self, num_source: int, num_target: int, seed: int = 0, exposure: Any = None, views: int = 1,
                 **params: Any):
        if not isinstance(num_source, (int, np.integer)) or num_source < 1:
            raise ValueError(f"num_source must be a positive int, got {num_source!r}")
        if isinstance(views, bool) or not isinstance(views, (int, np.integer)) or views < 1:
            raise ValueError(f"views must be a positive int, got {views!r}")
        if not isinstance(num_target, (int, np.integer)) or num_target < 2:
            raise ValueError(f"num_target must be an int >= 2 (a task has at least two classes), got {num_target!r}")
        fields = list(self.Config.__dataclass_fields__)
        unknown = sorted(set(params) - set(fields))
        if unknown:
            raise ValueError(f"mapping {self.name!r}: unknown parameter(s) {unknown}; accepted: {fields}")
        self.config = self.Config(**params)
        self.views = int(views)
        self.num_source = int(num_source) * self.views
        self.num_target = int(num_target)
        self.seed = int(seed)
        self.fitted = False
        if exposure is not None:
            self.check(exposure)

    # --------------------------------------------------------------- exposure
    def check(self, oracle_or_level: Any) -> None:
        """Raise :class:`~blackbox_rp.exposure.ExposureError` if the exposure gives less than ``needs``."""
        level, shown = _level_of(oracle_or_level)
        require(self.needs, shown if isinstance(shown, Exposure) else level, f"label mapping {self.name!r}")

    def _check_response(self, resp: Response | np.ndarray) -> None:
        if isinstance(resp, Response) and NEEDS.index(resp.kind) > NEEDS.index(self.needs):
            raise ExposureError(f"label mapping {self.name!r} needs {self.needs!r} outputs, got a "
                                f"{resp.kind!r} response; query with a richer exposure")

    def view_probs(self, resp: Response) -> np.ndarray:
        """One view's answers as the (n, classes) probabilities this mapping reads (for ``views`` > 1)."""
        return as_probs(resp, resp.num_classes)

    def fold(self, resp: Response | np.ndarray) -> Response | np.ndarray:
        """With ``views`` = K > 1: the n·K answer rows (target-major) as n rows of K blocks, each
        :meth:`view_probs` / K (a row still sums to 1); with one view, ``resp`` unchanged."""
        if self.views == 1 or not isinstance(resp, Response):
            return resp
        k = self.views
        if len(resp) % k or resp.num_classes * k != self.num_source:
            raise ValueError(f"label mapping {self.name!r} reads {k} views of {self.num_source // k} classes "
                             f"per target; got {len(resp)} answers over {resp.num_classes} classes")
        p = self.view_probs(resp) / k
        return p.reshape(len(resp) // k, k * resp.num_classes)

    def _check_y(self, y: Any, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"expected {n} target labels (one per response row), got shape {y.shape}")
        if n and not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.mod(y, 1) == 0):
                raise ValueError(f"target labels must be integers, got dtype {y.dtype}")
        y = y.astype(np.int64)
        if n and (y.min() < 0 or y.max() >= self.num_target):
            raise ValueError(f"target labels must lie in [0, {self.num_target}), got [{y.min()}, {y.max()}]")
        return y

    # ----------------------------------------------------------------- public
    def fit(self, resp: Response | np.ndarray, y: np.ndarray) -> "LabelMapping":
        """Fit from the oracle's answers on target inputs and their labels; returns self."""
        self._check_response(resp)
        resp = self.fold(resp)
        y = self._check_y(y, len(resp))
        if len(y) == 0:
            raise ValueError(f"label mapping {self.name!r}: cannot fit from zero examples")
        self._fit(resp, y)
        self.fitted = True
        return self

    def scores(self, resp: Response | np.ndarray) -> np.ndarray:
        """(n, num_target) float64 target-class probabilities; every row sums to 1."""
        self._check_response(resp)
        if not self.fitted:
            raise RuntimeError(f"label mapping {self.name!r} is not fitted: call fit(resp, y) first")
        return self._scores(self.fold(resp))

    def predict(self, resp: Response | np.ndarray) -> np.ndarray:
        """(n,) int64 predicted target classes (ties go to the lowest index)."""
        return self.scores(resp).argmax(axis=1).astype(np.int64)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted mapping (numpy arrays and plain values)."""
        return {"name": self.name, "num_source": self.num_source, "num_target": self.num_target,
                "seed": self.seed, "config": asdict(self.config), "fitted": self.fitted,
                "arrays": {k: np.array(getattr(self, k), copy=True) for k in self._state}}

    def _check_state_owner(self, state: dict[str, Any]) -> None:
        """Refuse a state saved by another mapping or for other class counts."""
        want = (self.name, self.num_source, self.num_target)
        got = (state.get("name"), state.get("num_source"), state.get("num_target"))
        if got != want:
            raise ValueError(f"state is for mapping {got} (name, source, target classes), this one is {want}")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; refuses one from another mapping or other class counts."""
        self._check_state_owner(state)
        for k in self._state:
            cur, new = getattr(self, k), np.asarray(state["arrays"][k])
            if np.shape(cur) != new.shape:
                raise ValueError(f"state array {k!r} has shape {new.shape}, expected {np.shape(cur)}")
            setattr(self, k, new.copy())
        self.fitted = bool(state["fitted"])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "needs": self.needs, "refit_every": self.refit_every,
                "num_source": self.num_source, "num_target": self.num_target, "views": self.views,
                "differentiable": isinstance(self, DifferentiableMapping),
                "trainable": isinstance(self, TrainableMapping), "config": asdict(self.config)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_source}→{self.num_target}, needs={self.needs!r})"

    # ------------------------------------------------------------ subclasses
    @abstractmethod
    def _fit(self, resp: Response | np.ndarray, y: np.ndarray) -> None:
        """Fit from validated inputs."""

    @abstractmethod
    def _scores(self, resp: Response | np.ndarray) -> np.ndarray:
        """Row-normalised (n, num_target) target probabilities."""


class DifferentiableMapping(ABC):
    """A mapping with a torch form: the white-box reference backpropagates through it."""

    @abstractmethod
    def torch_log_probs(self, logits: Any, params: Any = None) -> Any:
        """log target-class probabilities (n, num_target) from the model's logits (n, num_source) in torch —
        the same function as :meth:`LabelMapping.scores` — differentiable in ``logits`` and in ``params``
        (a trainable mapping's flat parameters; None: the current ones)."""


class FixedMapping(ABC):
    """Ability: the mapping is fixed when it is built (e.g. REFINE's derangement) — fitting changes nothing,
    so a fit need not spend passes over the training data to refit it."""


class TrainableMapping(ABC):
    """A mapping with parameters of its own that can be trained together with the prompt
    (``refit="joint"``); an epoch refit is its default way to follow θ (a window overfits)."""

    @property
    @abstractmethod
    def num_params(self) -> int:
        """Length of :attr:`params`."""

    @property
    @abstractmethod
    def params(self) -> np.ndarray:
        """A flat copy of the parameters."""

    @abstractmethod
    def set_params(self, params: np.ndarray) -> None:
        """Adopt a flat parameter vector (marks the mapping fitted)."""

    @abstractmethod
    def train_step(self, resp: Response | np.ndarray, y: np.ndarray, lr: float) -> float:
        """One exact-gradient step on these answered rows; returns the loss before the step."""
