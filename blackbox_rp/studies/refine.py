"""REFINE through queries alone: an input transformation and a fixed label derangement, no true labels.

REFINE (Chen et al., "REFINE: Inversion-Free Backdoor Defense via Model
Reprogramming", ICLR 2025) neutralises a backdoor without finding the trigger:
a learned input transformation ``I_θ`` sits before the suspect model ``f`` and a
fixed random permutation ``π`` of the labels after it, and θ is trained so that
``π(f(I_θ(x)))`` reproduces ``f(x)`` — the suspect model's *own* prediction —
on unlabeled benign inputs. A derangement forces ``I_θ`` to move every input
far enough to change its class, and the trigger's shortcut does not survive
that move. The paper trains a U-Net by backpropagation, with an extra
supervised-contrastive term on features.

Here it runs with the toolkit's parts and accounting:

1. **Pseudo-labels.** The benign images are sent through the oracle once
   (phase ``train``; counted in the ledger and in the budget); their answers'
   top-1 labels are the targets. Ground-truth labels are never read: the
   functions take images only (a :class:`~blackbox_rp.data.Dataset` is accepted,
   and only its ``x`` is touched — a test trips if ``y`` is read).
2. **Black-box fit.** ``Reprogrammer.build(transform, oracle, "derangement",
   optimizer, ...).fit(...)`` on a dataset whose labels are those pseudo-labels,
   split into train / validation by the seed: the loss is the cross-entropy
   between the deranged output on the transformed input and the original
   prediction (REFINE's first term); selection is agreement with the suspect
   model's predictions on held-out benign inputs. Zeroth-order optimizers,
   through the oracle, under the ledger's budget.
3. **White-box ceiling.** The same transform and derangement trained by
   backprop through the local model (:func:`blackbox_rp.whitebox.whitebox_fit`),
   marked ``black_box: False``.

The supervised-contrastive term is left out: an oracle does not return the model's
features.

**The transform.** The default is ``unet`` (REFINE's input-dependent transformation,
:mod:`blackbox_rp.transforms.unet`). An additive prompt (``full``) adds one pattern to every
image, so it cannot send each class c to its own deranged class: its white-box ceiling on the
bundled backdoored Fashion-MNIST CNNs is 56–61% clean accuracy; the U-Net's is 74–82% (the
measured tables are in the README). What still bounds the U-Net: to route class c to π⁻¹(c) it
must itself recognise c, so it is a small classifier distilled from the suspect model's answers on
the benign images, and its agreement with the model grows with their number (about 85% held-out
agreement from 1,600 images, with a 6k- or a 24k-weight net; 86% and 81.5% clean from 8,000, 1 point
short of the goal of 5 below the backdoored model's). Through queries
alone neither transform gets far: zeroth-order search of thousands of weights (or of a random
subspace, whose own white-box ceiling is lower) within 10⁵ queries stays near chance agreement;
``optimizer="zo-chain"`` (zeroth order per image at the model's input, exact backprop through the U-Net)
does best — 39% clean from 2,000 images at 3·10⁵ queries with its decaying step — still far from the goal.

Example (seconds on a CPU)::

    >>> from blackbox_rp.data import load_dataset
    >>> from blackbox_rp.studies.refine import RefineConfig, refine_blackbox
    >>> from oracles import TorchOracle
    >>> from blackbox_rp.ledger import Budget, Ledger
    >>> oracle = TorchOracle("fmnist-cnn", ledger=Ledger(Budget(max_queries=3000, phases=("train", "validation"))))
    >>> import numpy as np
    >>> benign = np.pad(load_dataset("digits").x[:200], ((0, 0), (0, 0), (10, 10), (10, 10)))  # any unlabeled images
    >>> d = refine_blackbox(oracle, benign, RefineConfig(max_steps=5))  # the unet transform
    >>> d.black_box, d.queries <= 3000
    (True, True)
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..data import Dataset
from ..ledger import Ledger

logger = logging.getLogger(__name__)

__all__ = ["RefineConfig", "DefendedModel", "RefinePlan", "plan_refine", "pseudo_labels", "refine_blackbox",
           "refine_whitebox"]


@dataclass(frozen=True)
class RefineConfig:
    """How REFINE is trained.

    Args:
        transform: a registered transform (``unet``: REFINE's small U-Net, input-dependent — the default;
            ``full``: one free value per pixel, added everywhere — give it ``mask=ones``, REFINE may change
            the whole image; ``lowdim``: a small pattern upsampled; ...).
        transform_params: the transform's options.
        optimizer: a registered zeroth-order optimizer; ``optimizer_params`` None takes the toolkit's
            recommendation for it.
        val_fraction: share of the benign images kept to select θ (agreement with the suspect model).
        max_steps, batch_size, eval_every: passed to the Reprogrammer.
        whitebox_steps, whitebox_lr: the white-box ceiling's Adam steps and step size (defaults measured
            for ``unet``: its held-out agreement levels off by ~800 steps at 0.01; ``full`` used 0.05).
        seed: the derangement, the split, minibatches and the optimizer.
    """

    transform: str = "unet"
    transform_params: tuple[tuple[str, Any], ...] = ()
    optimizer: str = "zo-adam"
    optimizer_params: tuple[tuple[str, Any], ...] | None = None
    val_fraction: float = 0.2
    max_steps: int | None = None
    batch_size: int = 64
    eval_every: int = 10
    whitebox_steps: int = 800
    whitebox_lr: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("transform_params", "optimizer_params"):
            v = getattr(self, name)
            if isinstance(v, dict):
                object.__setattr__(self, name, tuple(sorted(v.items())))
        for name in ("batch_size", "eval_every", "whitebox_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"RefineConfig.{name} must be a positive int, got {v!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ValueError(f"RefineConfig.max_steps must be a positive int or None, got {self.max_steps!r}")
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise ValueError(f"RefineConfig.val_fraction must lie in (0, 1), got {self.val_fraction!r}")
        if not self.whitebox_lr > 0:
            raise ValueError(f"RefineConfig.whitebox_lr must be positive, got {self.whitebox_lr!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["transform_params"] = dict(self.transform_params)
        d["optimizer_params"] = None if self.optimizer_params is None else dict(self.optimizer_params)
        return d


@dataclass
class DefendedModel:
    """The defended pipeline ``π ∘ f ∘ I_θ``: predicts through the oracle (queries charged to ``phase``)."""

    transform: Any
    theta: np.ndarray
    mapping: Any
    oracle: Any
    black_box: bool
    queries: int
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, x: np.ndarray, phase: str = "test", batch: int = 512) -> np.ndarray:
        out = [self.mapping.predict(self.oracle(self.transform(self.theta, x[s:s + batch]), phase=phase))
               for s in range(0, len(x), batch)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def describe(self) -> dict[str, Any]:
        return {"black_box": self.black_box, "queries": self.queries, "transform": self.transform.describe(),
                "mapping": self.mapping.describe(), "source_of": self.mapping.source_of.tolist(),
                "theta_dim": int(self.theta.size), **self.info}

    def save(self, path: Any) -> None:
        """θ and the derangement as an ``.npz`` (the transform's config is in :meth:`describe`)."""
        np.savez(path, theta=self.theta, source_of=self.mapping.source_of)


def _images(benign: np.ndarray | Dataset) -> np.ndarray:
    """The images of ``benign``; a Dataset's labels are deliberately not touched."""
    x = benign.x if isinstance(benign, Dataset) else np.asarray(benign)
    if x.ndim != 4 or x.dtype != np.float32:
        raise ValueError(f"benign inputs must be float32 images (N, C, H, W) in [0, 1], got {x.dtype} {x.shape}")
    if len(x) < 10:
        raise ValueError(f"REFINE needs some benign images to learn from; got {len(x)}")
    return x


def pseudo_labels(oracle: Any, x: np.ndarray, phase: str = "train", batch: int = 512) -> np.ndarray:
    """The suspect model's top-1 answers on ``x`` (queries charged to ``phase``): REFINE's targets."""
    return np.concatenate([oracle(x[s:s + batch], phase=phase).labels for s in range(0, len(x), batch)])


def _split(n: int, cfg: RefineConfig) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices of the benign images, drawn by the seed (labels are not needed for it)."""
    order = np.random.default_rng(cfg.seed).permutation(n)
    n_val = max(1, int(round(cfg.val_fraction * n)))
    return order[n_val:], order[:n_val]


def _pseudo_splits(oracle: Any, x: np.ndarray, cfg: RefineConfig) -> tuple[Dataset, Dataset]:
    y = pseudo_labels(oracle, x)
    classes = tuple(oracle.class_names or [str(i) for i in range(oracle.num_classes)])
    tr, va = _split(len(x), cfg)
    return (Dataset(x[tr], y[tr], classes, "benign-pseudo-train"), Dataset(x[va], y[va], classes, "benign-pseudo-val"))


def _transform(cfg: RefineConfig, oracle: Any, x: np.ndarray) -> Any:
    from ..transforms import make_transform

    return make_transform(cfg.transform, in_shape=tuple(x.shape[1:]), out_size=_size(oracle, x),
                          channels=oracle.input_spec.channels or x.shape[1], seed=cfg.seed, **_canvas(cfg, oracle, x))


def _reprogrammer(oracle: Any, x: np.ndarray, cfg: RefineConfig) -> Any:
    """The black-box fit's Reprogrammer, built before any query (it needs shapes, not labels)."""
    from ..mapping import make_mapping
    from ..optim import make
    from ..reprogram import Reprogrammer, recommended_optimizer_params

    t = _transform(cfg, oracle, x)
    m = make_mapping("derangement", oracle.num_classes, oracle.num_classes, seed=cfg.seed)
    params = recommended_optimizer_params(cfg.optimizer, "derangement") if cfg.optimizer_params is None \
        else dict(cfg.optimizer_params)
    opt = make(cfg.optimizer, t.space, seed=cfg.seed, x0=t.init_theta(), **params)
    return Reprogrammer(t, oracle, m, opt, seed=cfg.seed, refit="none", final_refit=False, max_steps=cfg.max_steps,
                        batch_size=cfg.batch_size, eval_every=cfg.eval_every)


@dataclass(frozen=True)
class RefinePlan:
    """What black-box REFINE will spend, in train + validation queries, known before the first one: the
    pseudo-labels (every benign image once) and the fit's :class:`~blackbox_rp.reprogram.BudgetPlan`."""

    pseudo_labels: int
    fit: Any

    @property
    def minimum(self) -> int:
        """The least budget that pays for the pseudo-labels and one judged step."""
        return self.pseudo_labels + self.fit.minimum

    def check(self, budget: int | None) -> None:
        """Refuse, before any query, a budget that cannot pay for the pseudo-labels and one judged step."""
        from ..reprogram import BudgetTooSmall

        if budget is not None and budget < self.minimum:
            raise BudgetTooSmall(
                f"a budget of {budget} train+validation queries cannot pay for black-box REFINE: the pseudo-labels "
                f"cost {self.pseudo_labels} (every benign image once), then the fit needs at least {self.fit.minimum} "
                f"(the training images at θ₀ {self.fit.first_fit}, two validations of {self.fit.validation}, one step "
                f"of {self.fit.per_step}) — at least {self.minimum} in all. Raise the budget, or use fewer benign "
                f"images, a smaller batch or fewer directions per step")

    def describe(self, budget: int | None) -> str:
        rest = None if budget is None else budget - self.pseudo_labels
        return f"pseudo-labels {self.pseudo_labels}; fit: {self.fit.describe(rest)}"


def plan_refine(oracle: Any, benign: np.ndarray | Dataset, config: RefineConfig | None = None) -> RefinePlan:
    """The whole black-box REFINE budget (pseudo-labels + fit), planned without a query."""
    cfg = config or RefineConfig()
    x = _images(benign)
    tr, va = _split(len(x), cfg)
    return RefinePlan(len(x), _reprogrammer(oracle, x, cfg).budget_plan(len(tr), len(va)))


def refine_blackbox(oracle: Any, benign: np.ndarray | Dataset, config: RefineConfig | None = None) -> DefendedModel:
    """Black-box REFINE on unlabeled ``benign`` images through ``oracle``.

    The budget is the oracle's ledger's (train + validation queries: pseudo-labels, steps, selection);
    without one, ``config.max_steps`` bounds the run. The whole budget is planned before the first query
    (:func:`plan_refine`): one too small for the pseudo-labels and one judged step is refused then, with
    :class:`~blackbox_rp.reprogram.BudgetTooSmall`. Returns the defended pipeline; ``queries``
    counts every train + validation query it spent.

    Note the Reprogrammer's first pass over the training images at θ₀ (it fits the mapping there; the
    derangement ignores it) re-sends the pseudo-labelled images: counted as queries, answered from the
    journal without a call when the oracle has one.
    """
    cfg = config or RefineConfig()
    x = _images(benign)
    spent0 = _spent(oracle.ledger)
    led = oracle.ledger
    if cfg.max_steps is None and led.remaining_queries("train") is None:
        raise ValueError("black-box REFINE needs a bound: give the oracle a ledger with a query budget, e.g. "
                         "Ledger(Budget(max_queries=20000, phases=('train', 'validation'))), or set max_steps")
    rp = _reprogrammer(oracle, x, cfg)
    tr, va = _split(len(x), cfg)
    plan = RefinePlan(len(x), rp.budget_plan(len(tr), len(va)))
    remaining = rp.objective.remaining()
    plan.check(remaining)  # before any query: pseudo-labels and one judged step
    logger.info("black-box REFINE budget plan: %s", plan.describe(remaining))
    train, val = _pseudo_splits(oracle, x, cfg)
    fit = rp.fit(train, val)
    queries = _spent(oracle.ledger) - spent0
    logger.info("black-box REFINE: agreement %.4f on held-out benign inputs after %d queries (%s)",
                fit.val_accuracy, queries, fit.stop_reason)
    return DefendedModel(rp.transform, rp.theta.copy(), rp.mapping, oracle, True, queries,
                         {"val_agreement": fit.val_accuracy, "steps": fit.steps, "stop_reason": fit.stop_reason,
                          "optimizer": rp.optimizer.name, "n_benign": len(x), "config": cfg.to_dict()})


def refine_whitebox(oracle: Any, benign: np.ndarray | Dataset, config: RefineConfig | None = None) -> DefendedModel:
    """The white-box ceiling: the same transform and derangement trained by backprop through ``oracle.module``.

    Not black-box (``black_box`` False): it reads gradients. Its pseudo-labels are still bought through
    the oracle (counted); training itself spends no queries.
    """
    from ..mapping import make_mapping
    from ..whitebox import WhiteboxConfig, whitebox_fit

    cfg = config or RefineConfig()
    x = _images(benign)
    spent0 = _spent(oracle.ledger)
    train, val = _pseudo_splits(oracle, x, cfg)
    t = _transform(cfg, oracle, x)
    m = make_mapping("derangement", oracle.num_classes, oracle.num_classes, seed=cfg.seed)
    out = whitebox_fit(t, oracle, m, train, val, config=WhiteboxConfig(
        steps=cfg.whitebox_steps, batch_size=cfg.batch_size, lr=cfg.whitebox_lr,
        eval_every=max(1, cfg.whitebox_steps // 10), seed=cfg.seed))
    queries = _spent(oracle.ledger) - spent0
    return DefendedModel(t, np.asarray(out["theta"], dtype=np.float64), m, oracle, False, queries,
                         {"val_agreement": out["val_accuracy"], "steps": out["steps"], "n_benign": len(x),
                          "ceiling": "white-box (backprop through the local model): not a black-box result",
                          "config": cfg.to_dict()})


def _size(oracle: Any, x: np.ndarray) -> int:
    return int(oracle.input_spec.height or x.shape[-1])


def _canvas(cfg: RefineConfig, oracle: Any, x: np.ndarray) -> dict[str, Any]:
    """The transform's options; the image fills the model's input unless told otherwise (REFINE transforms the
    suspect model's own inputs: shrinking them onto a canvas would cost clean accuracy for nothing)."""
    return {"image_size": min(_size(oracle, x), int(x.shape[-1])), **dict(cfg.transform_params)}


def _spent(ledger: Ledger) -> int:
    return sum(ledger.counts(p).queries for p in ("train", "validation"))
