"""The Reprogrammer: transform + oracle + label mapping + zeroth-order optimizer, with honest bookkeeping.

    y_target = O_ω ∘ f ∘ I_θ (x_target)

:meth:`Reprogrammer.fit` learns θ (and refits ω) by spending queries; every
step sends *all* candidates of one ``ask()`` on the *same* minibatch in one
oracle batch, so a finite difference measures the step and not the minibatch.

Why it is built the way it is (measured in ``benchmarks/visual.py`` and the
probes of RESOURCES.md):

* **ω follows θ.** Each step's ± queries sit next to θ, so their answers
  are free data for a statistical mapping: every ``refit_every`` steps FLM,
  BLM and BLM+ are refitted on the last ``refit_window`` answered rows. ILM
  is refitted on the whole training split with the current θ once per epoch,
  as Chen et al. (2023) define it, and so is the ``linear`` readout: its
  ~10⁴ weights overfit the few distinct images a window holds. With
  ``refit="joint"`` the readout is instead trained *together* with θ: one
  exact-gradient Adam step on every step's answers, no extra query.
* **Or ω is refitted for every candidate** (``refit="candidate"``). A
  discrete prompt that changes its last words changes *which* tokens the
  model answers, so a readout fitted to the current prompt cannot read a
  candidate's answers and every search stays near where it started. Each
  candidate is then scored by a copy of ω fitted to its own answers on the
  step's minibatch, cross-fitted in ``candidate_folds`` folds (the loss is
  out-of-fold), and each validated θ gets ω refitted on the training split
  first (its cost is planned; no final refit is needed).
* **Selection uses validation only.** θ and ω are evaluated on the validation
  split every ``eval_every`` steps (phase ``"validation"``); the best pair is
  kept. At the end ω is refitted once more on the full training split at the
  best θ, and that refit is kept only if it is at least as good on validation
  (its validation answers are reused, not bought again). Test rows are never
  touched by :meth:`fit`.
* **The budget is never crossed.** A step is taken only if it fits in what the
  ledger still allows after the final refit's reserve; ``BudgetExhausted``
  from anywhere ends ``fit`` cleanly with the best θ so far.
* **Resumable by replay.** Every random choice comes from ``seed``; with a
  journal on the oracle, a killed ``fit`` run again sends the same queries,
  which the journal answers without a call, and reaches the same result.

Example (the fast bundled model; seconds on a CPU)::

    >>> import numpy as np
    >>> from blackbox_rp.data import load_dataset
    >>> from blackbox_rp.reprogram import Reprogrammer
    >>> from oracles import TorchOracle
    >>> d = load_dataset("digits")
    >>> idx = np.random.default_rng(0).permutation(len(d))
    >>> train, val, test = d.subset(idx[:300]), d.subset(idx[300:400]), d.subset(idx[400:500])
    >>> oracle = TorchOracle("fmnist-cnn")
    >>> rp = Reprogrammer.build("lowdim", oracle, "blm+", "spsa-gc", train, out_size=28, max_steps=5)
    >>> result = rp.fit(train, val)
    >>> 0.0 <= rp.evaluate(test)["accuracy"] <= 1.0
    True
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from .data import TaskData
from .exposure import Response
from .loop import Loop, StopLoop
from .losses import LOSSES, make_loss
from .mapping.base import FixedMapping, TrainableMapping
from .objective import Objective, accuracy_of
from .optim.chain import InputGradientOptimizer, InputPrior, chain_gradient
from .transforms.protocol import DifferentiableTransform

if TYPE_CHECKING:
    from .transforms.protocol import InputTransform

logger = logging.getLogger(__name__)

__all__ = ["Reprogrammer", "ReprogramConfig", "BudgetPlan", "BudgetTooSmall", "FitResult", "StepInfo", "accuracy_of", "recommended_optimizer_params",
           "RECOMMENDED_OPTIMIZER_PARAMS"]


#: optimizer settings :meth:`Reprogrammer.build` uses unless given others, by (optimizer, mapping kind).
#: A statistical mapping (FLM/ILM/BLM/BLM+) needs the prompt to move far from θ₀ (RESOURCES.md's
#: recipe: Adam, lr 0.05, ±0.05 differences); a linear readout is fitted to θ₀'s features, and a large
#: move of the frame breaks it, so its prompt takes small steps (lr 0.001; measured on MNIST-5k
#: validation: lr 0.01-0.05 lost 10-20 points within 25 steps, white-box as well as black-box).
RECOMMENDED_OPTIMIZER_PARAMS: dict[tuple[str, str], dict[str, Any]] = {
    ("zo-adam", "statistical"): {"q": 2, "mu": 0.05, "lr": 0.05},
    ("zo-adam", "linear"): {"q": 4, "mu": 0.01, "lr": 0.001},
    ("spsa-gc", "statistical"): {"q": 2, "c": 0.05},
    ("spsa-gc", "linear"): {"q": 2, "c": 0.01, "first_step": 0.005},
    ("cma", "statistical"): {"sigma0": 0.5},
    ("cma", "linear"): {"sigma0": 0.05},
}


def recommended_optimizer_params(optimizer: str, mapping: str) -> dict[str, Any]:
    """The measured settings for ``optimizer`` with ``mapping`` (empty: the optimizer's own defaults)."""
    from .mapping import MAPPINGS

    trainable = mapping in MAPPINGS and issubclass(MAPPINGS[mapping], TrainableMapping)
    kind = "linear" if trainable else "statistical"
    return dict(RECOMMENDED_OPTIMIZER_PARAMS.get((optimizer, kind), {}))


#: how the mapping follows the prompt during fit (see :class:`ReprogramConfig`)
REFITS = ("auto", "window", "epoch", "joint", "candidate", "none")


@dataclass(frozen=True)
class ReprogramConfig:
    """How :meth:`Reprogrammer.fit` spends its queries.

    Args:
        batch_size: target images per step; every candidate of a step is evaluated on them.
        max_steps: optimizer steps (None: until the budget or the optimizer stops).
        refit: how ω follows θ during the run. ``"window"``: every ``refit_every`` steps from the
            last ``refit_window`` answered rows (free: those queries are paid already); ``"epoch"``: on
            the whole training split at the current θ once per epoch (costs ``len(train)`` queries);
            ``"none"``: only the initial and final fits; ``"auto"`` (default): ``"epoch"`` for ILM and
            for parametric readouts (``linear``: its ~10⁴ weights overfit the few hundred distinct
            images a window holds), ``"window"`` for FLM/BLM/BLM+; ``"joint"``: a parametric readout
            (``linear``) takes one exact-gradient Adam step (``readout_lr``) on every step's answers,
            trained together with θ at no query cost (initial and final fits as usual); ``"candidate"``:
            each candidate is scored by ω fitted to its own answers on the step's minibatch (cross-fitted in
            ``candidate_folds`` folds, out-of-fold loss), and ω is refitted on the training split at each
            validated θ (``len(train)`` queries per validation after θ₀'s; no final refit) — for prompts
            whose candidates change the answers' tokens, where no one ω reads them all. The readout's
            objective is always cross-entropy + its l2, whatever ``loss`` θ follows.
        candidate_folds: folds of the minibatch when ``refit="candidate"`` (each fold scored by ω fitted on
            the others).
        readout_lr: Adam step size of the joint readout (``refit="joint"`` only).
        refit_every: steps between window refits.
        refit_window: most recent answered rows a window refit uses (the prompt drifts: old rows mislead).
        eval_every: steps between validation evaluations (selection points of the learning curve).
        val_size: validation rows used for selection (None: all); fewer is cheaper and noisier.
        final_refit: refit ω on the full training split at the best θ, kept if validation agrees.
        loss: ``ce``, ``focal``, ``hinge`` or ``neg-acc`` (see :mod:`blackbox_rp.losses`).
        loss_params: :class:`~blackbox_rp.losses.LossConfig` fields (``gamma``, ``margin``).
        eval_batch: inputs per oracle batch when evaluating a whole split.
        seed: minibatch order (the optimizer and the mapping have their own seeds).
    """

    batch_size: int = 64
    max_steps: int | None = None
    refit: str = "auto"
    refit_every: int = 10
    refit_window: int = 4096
    candidate_folds: int = 4
    eval_every: int = 25
    readout_lr: float = 1e-3
    val_size: int | None = None
    final_refit: bool = True
    loss: str = "ce"
    loss_params: tuple[tuple[str, float], ...] = ()
    eval_batch: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "refit_every", "refit_window", "candidate_folds", "eval_every", "eval_batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ReprogramConfig.{name} must be a positive int, got {v!r}")
        for name in ("max_steps", "val_size"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"ReprogramConfig.{name} must be a positive int or None, got {v!r}")
        if self.refit not in REFITS:
            raise ValueError(f"ReprogramConfig.refit must be one of {list(REFITS)}, got {self.refit!r}")
        if self.refit == "candidate" and (self.candidate_folds < 2 or self.candidate_folds > self.batch_size):
            raise ValueError(f"refit='candidate' cross-fits each candidate's minibatch: candidate_folds must lie in "
                             f"[2, batch_size={self.batch_size}], got {self.candidate_folds}")
        if isinstance(self.readout_lr, bool) or not (isinstance(self.readout_lr, (int, float)) and self.readout_lr > 0):
            raise ValueError(f"ReprogramConfig.readout_lr must be a positive number, got {self.readout_lr!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; available: {list(LOSSES)}")
        if isinstance(self.loss_params, dict):
            object.__setattr__(self, "loss_params", tuple(sorted(self.loss_params.items())))
        make_loss(self.loss, **dict(self.loss_params))  # refuses unknown loss parameters now

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loss_params"] = dict(self.loss_params)
        return d


class BudgetTooSmall(ValueError):
    """A budget that cannot pay for one optimizer step and the validation that would judge it; raised
    before any query, with what each part costs."""


@dataclass(frozen=True)
class BudgetPlan:
    """What :meth:`Reprogrammer.fit` will spend, in train + validation queries, known before the first one.

    ``first_fit`` fits ω at θ₀ on the whole training split; ``validation`` is one validation pass (at θ₀,
    every ``eval_every`` steps, and after the last step); ``per_step`` one optimizer step (every candidate
    on one minibatch, views included); ``epoch_refit`` each epoch's refit of ω (0 unless the mapping
    follows θ per epoch), every ``steps_per_epoch`` steps; ``final_refit`` is kept for the refit of ω at
    the best θ; ``validation_refit`` is ω's refit on the training split before each validation after θ₀'s
    (``refit="candidate"``: ω is fitted to each validated θ). A step is taken only when the budget left also
    pays for the validation after it (with its refit) and the final refit, so no step is ever paid for and
    left unjudged.
    """

    first_fit: int
    validation: int
    per_step: int
    final_refit: int
    epoch_refit: int
    steps_per_epoch: int
    eval_every: int
    validation_refit: int = 0

    @property
    def judge(self) -> int:
        """One validation after θ₀'s, with the refit of ω it needs (if any)."""
        return self.validation + self.validation_refit

    @property
    def minimum(self) -> int:
        """The least budget that pays for one step and its validation: θ₀'s fit and validation, the step,
        its validation and the final refit's reserve."""
        return self.first_fit + self.validation + self.judge + self.per_step + self.final_refit

    def step_cost(self, steps_done: int) -> int:
        """Queries of the next step, with the epoch refit it starts (if any)."""
        refit = self.epoch_refit if steps_done and steps_done % self.steps_per_epoch == 0 else 0
        return self.per_step + refit

    def steps(self, budget: int | None, max_steps: int | None = None) -> int | None:
        """Steps a budget affords, each validated on schedule and the last one validated (None: unbounded)."""
        if budget is None:
            return max_steps
        spent = self.first_fit + self.validation
        n = 0
        while max_steps is None or n < max_steps:
            cost = self.step_cost(n)
            if spent + cost + self.judge + self.final_refit > budget:
                break
            spent += cost
            n += 1
            if n % self.eval_every == 0:
                spent += self.judge
        return n

    def spend(self, steps: int) -> int:
        """Train + validation queries of a fit that takes ``steps`` steps: θ₀'s fit and validation, the steps
        with their epoch refits, a validation every ``eval_every`` steps and after the last, the final refit."""
        total = self.first_fit + self.validation + sum(self.step_cost(n) for n in range(steps))
        total += self.judge * (steps // self.eval_every + (1 if steps % self.eval_every else 0))
        return total + (self.final_refit if steps else 0)

    def check(self, budget: int | None) -> None:
        """Refuse, before any query, a budget that cannot pay for one step and its validation."""
        if budget is not None and budget < self.minimum:
            raise BudgetTooSmall(
                f"a budget of {budget} train+validation queries cannot pay for one optimizer step and its "
                f"validation: fitting the mapping at θ₀ costs {self.first_fit} (the training split), each "
                f"validation {self.validation}{self._refit_words}, one step {self.per_step}, and {self.final_refit} are kept for the "
                f"final refit — at least {self.minimum} are needed. Raise the budget, or use fewer training or "
                f"validation examples (--val-size), a smaller batch or fewer candidates per step")

    def describe(self, budget: int | None, max_steps: int | None = None) -> str:
        n = self.steps(budget, max_steps)
        return (f"{'unbounded' if n is None else n} steps of {self.per_step} queries; θ₀ fit {self.first_fit}, "
                f"validation {self.validation}{self._refit_words} every {self.eval_every} steps, "
                f"final refit {self.final_refit}")

    @property
    def _refit_words(self) -> str:
        return f" (+{self.validation_refit} to refit the mapping at the validated θ)" if self.validation_refit else ""


@dataclass(frozen=True)
class StepInfo:
    """What a ``fit`` callback sees after each step (and after each validation point)."""

    step: int
    queries: int              # train + validation queries spent by this fit so far
    loss: float               # mean loss of the step's candidates
    val_accuracy: float | None  # set on steps that evaluated validation


@dataclass
class FitResult:
    """The outcome of :meth:`Reprogrammer.fit`: the selected θ and how it was reached."""

    theta: np.ndarray
    val_accuracy: float
    best_step: int
    steps: int
    stop_reason: str
    curve: list[dict[str, float]] = field(default_factory=list)
    queries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"val_accuracy": self.val_accuracy, "best_step": self.best_step, "steps": self.steps,
                "stop_reason": self.stop_reason, "queries": self.queries, "curve": list(self.curve),
                "theta_dim": int(self.theta.size)}


class Reprogrammer:
    """Learns θ of ``transform`` and ω of ``mapping`` through ``oracle`` with ``optimizer``.

    Args:
        transform: a :class:`~blackbox_rp.transforms.Transform` (its ``dim`` is θ's size).
        oracle: any :class:`~blackbox_rp.oracle.Oracle` whose inputs are the transform's outputs.
        mapping: a :class:`~blackbox_rp.mapping.LabelMapping`; checked against the oracle's exposure now.
        optimizer: an :class:`~blackbox_rp.optim.Optimizer` of dimension ``transform.dim``, or a
            registered name (then built with ``seed`` and ``x0 = theta0``).
        loss: shorthand for ``config.loss``.
        config: a :class:`ReprogramConfig`; keyword arguments override its fields.
        theta0: where the fit starts — the point step 0 validates, and what "kept θ₀" means — by default
            ``transform.init_theta()``; a warm start (e.g. black-box REFINE's surrogate) passes its θ. An
            optimizer given built must start there (``x0=theta0``).
        input_prior: for an optimizer that estimates gradients at the model's inputs (zo-chain), a guess of
            those gradients (e.g. a surrogate's) that it spends one direction per example on.
    """

    def __init__(self, transform: Any, oracle: Any, mapping: Any, optimizer: Any, loss: str | None = None,
                 config: ReprogramConfig | None = None, theta0: np.ndarray | None = None,
                 input_prior: InputPrior | None = None, **overrides: Any):
        from .optim import make

        cfg = config or ReprogramConfig()
        if loss is not None:
            overrides["loss"] = loss
        if overrides:
            unknown = sorted(set(overrides) - set(ReprogramConfig.__dataclass_fields__))
            if unknown:
                raise ValueError(f"unknown Reprogrammer option(s) {unknown}; accepted: "
                                 f"{list(ReprogramConfig.__dataclass_fields__)}")
            cfg = ReprogramConfig(**{**cfg.to_dict(), **overrides})
        self.config = cfg
        space = transform.space
        if space.dim < 1:
            raise ValueError(f"transform {transform.name!r} has no parameters (dim 0): nothing to optimise; "
                             f"for a no-prompt baseline use blackbox_rp.baselines.output_only")
        mapping.check(oracle)
        if mapping.views != transform.views:
            raise ValueError(f"transform {transform.name!r} shows each input {transform.views} way(s) but mapping "
                             f"{mapping.name!r} reads {mapping.views} answer(s) per input; build both with the same views")
        start = transform.start_theta(theta0)
        if isinstance(optimizer, str):
            optimizer = make(optimizer, space, seed=cfg.seed, x0=start)
        elif theta0 is not None and not np.array_equal(np.asarray(optimizer.recommend(), dtype=np.float64), start):
            raise ValueError(f"the fit is told to start at theta0, but optimizer {optimizer.name!r} was built at "
                             f"another point: build it with x0=theta0 (or pass its name and let the fit build it)")
        if optimizer.space != space:
            raise ValueError(f"optimizer searches {optimizer.space.describe_short()} but transform "
                             f"{transform.name!r}'s θ is {space.describe_short()}")
        if isinstance(optimizer, InputGradientOptimizer) and not isinstance(transform, DifferentiableTransform):
            raise ValueError(f"optimizer {optimizer.name!r} backpropagates through the transform, but transform "
                             f"{transform.name!r} has no torch form (it is not differentiable in θ); choose an "
                             f"image transform (unet, full, lowdim, ...) or another optimizer (zo-adam, spsa-gc, ...)")
        if input_prior is not None and not isinstance(optimizer, InputGradientOptimizer):
            raise ValueError(f"an input prior guides the directions of an optimizer that estimates gradients at the "
                             f"model's inputs (zo-chain); optimizer {optimizer.name!r} proposes θ candidates instead")
        self.transform, self.oracle, self.mapping, self.optimizer = transform, oracle, mapping, optimizer
        self.input_prior = input_prior
        self.loss_fn = make_loss(cfg.loss, **dict(cfg.loss_params))
        self.objective = Objective(transform, oracle, mapping, self.loss_fn, eval_batch=cfg.eval_batch)
        self.theta = start.copy()
        trainable = isinstance(mapping, TrainableMapping)
        self.refit = cfg.refit
        if self.refit == "auto":
            self.refit = "epoch" if mapping.refit_every == "epoch" or trainable else "window"
        if self.refit == "joint" and not trainable:
            raise ValueError(f"refit='joint' trains a parametric readout with the prompt; mapping {mapping.name!r} "
                             f"has no parameters to train: use refit 'window' or 'epoch' (or the 'linear' mapping)")
        if self.refit == "candidate" and isinstance(mapping, FixedMapping):
            raise ValueError(f"refit='candidate' fits the mapping to every candidate's answers, but mapping "
                             f"{mapping.name!r} is fixed (nothing is fitted): use a fitted mapping (token-linear, "
                             f"token-blm+, linear, blm+, ...) or another refit")
        if self.refit == "candidate" and isinstance(optimizer, InputGradientOptimizer):
            raise ValueError(f"refit='candidate' scores θ candidates, but optimizer {optimizer.name!r} estimates "
                             f"gradients at the model's inputs (it proposes no candidates): use another refit")
        self.result: FitResult | None = None
        logger.info("reprogramming: transform %s (θ: %s), mapping %s, optimizer %s, loss %s",
                    transform.name, space.describe_short(), mapping.name, optimizer.name, cfg.loss)

    @classmethod
    def build(cls, transform: str | InputTransform, oracle: Any, mapping: str, optimizer: str, train: Any, *,
              out_size: int | None = None, seed: int = 0, transform_params: dict[str, Any] | None = None,
              mapping_params: dict[str, Any] | None = None, optimizer_params: dict[str, Any] | None = None,
              **config: Any) -> "Reprogrammer":
        """Assemble a Reprogrammer from registry names; the transform shapes itself from ``train`` and the
        oracle's input spec — or from the oracle itself, for a :class:`~blackbox_rp.transforms.BuiltFromOracle`
        transform such as ``soft`` (``out_size`` sets an image canvas) — or is given built (a run builds it once,
        :func:`blackbox_rp.experiments.run.run_transform`, so ``apply`` rebuilds the very same one).

        ``optimizer_params`` None takes :func:`recommended_optimizer_params`; ``{}`` the optimizer's defaults.
        """
        from .mapping import make_mapping
        from .mapping.tokens import token_mapping_params
        from .optim import make
        from .transforms import InputTransform, build_transform

        if isinstance(transform, InputTransform):
            if transform_params or out_size is not None:
                raise ValueError("the transform is given built: its parameters and canvas are already set; "
                                 "pass transform_params / out_size only with a transform name")
            t = transform
        else:
            params = dict(transform_params or {})
            if out_size is not None:
                params["out_size"] = int(out_size)
            t = build_transform(transform, train, oracle, seed=seed, **params)
        # a token mapping (verbalizer, BLM over tokens, ...) reads the oracle's vocabulary
        m = make_mapping(mapping, oracle.num_classes, train.num_classes, seed=seed, views=t.views,
                         **{**token_mapping_params(mapping, oracle), **(mapping_params or {})})
        if optimizer_params is None:
            optimizer_params = recommended_optimizer_params(optimizer, mapping)
        o = make(optimizer, t.space, seed=seed, x0=t.init_theta(), **optimizer_params)
        return cls(t, oracle, m, o, seed=seed, **config)

    # ------------------------------------------------------------------ plan
    def budget_plan(self, n_train: int, n_val: int) -> BudgetPlan:
        """What :meth:`fit` on ``n_train`` training and ``n_val`` validation targets will spend (before any query)."""
        cfg, views = self.config, self.transform.views
        n_v = n_val if cfg.val_size is None else min(cfg.val_size, n_val)
        batch = min(cfg.batch_size, n_train)
        per_candidate = self.refit == "candidate"
        return BudgetPlan(first_fit=n_train * views, validation=n_v * views,
                          per_step=self.optimizer.queries_per_step * batch * views,
                          final_refit=n_train * views if cfg.final_refit and not per_candidate else 0,
                          epoch_refit=n_train * views if self.refit == "epoch" else 0,
                          validation_refit=n_train * views if per_candidate else 0,
                          steps_per_epoch=max(1, n_train // cfg.batch_size), eval_every=cfg.eval_every)

    # ------------------------------------------------------------------ fit
    def fit(self, train: Any, val: Any, callback: Callable[[StepInfo], None] | None = None,
            callbacks: Iterable[Callable[[dict[str, Any]], str | None]] = ()) -> FitResult:
        """Learn θ and ω on ``train``, select them on ``val``; returns the :class:`FitResult`.

        Spends train queries (phase ``"train"``) for the initial mapping fit, the
        optimisation steps, ILM's per-epoch refits and the final refit, and
        validation queries (phase ``"validation"``) for selection. Never touches
        a test split. ``callback`` is called after every step with a :class:`StepInfo`; ``callbacks``
        (e.g. :class:`blackbox_rp.loop.ProgressBar`) get the loop's records. The loop is
        :class:`blackbox_rp.loop.Loop`, the one every fit shares.
        """
        cfg = self.config
        self._check_split(train, "train")
        self._check_split(val, "validation")
        rng = np.random.default_rng(cfg.seed)
        val_idx = np.arange(len(val)) if cfg.val_size is None or cfg.val_size >= len(val) else \
            np.sort(rng.choice(len(val), cfg.val_size, replace=False))
        xv, yv = val.x[val_idx], val.y[val_idx]
        obj, opt, mapping = self.objective, self.optimizer, self.mapping
        plan = self.budget_plan(len(train), len(xv))
        remaining = obj.remaining()
        plan.check(remaining)  # before any query: a budget that cannot pay for one judged step is refused
        reserve = plan.final_refit
        horizon = plan.steps(remaining, cfg.max_steps)
        if horizon is not None:  # optimizers whose gains depend on the horizon (SPSA's A) use it
            opt.plan(max(1, horizon))
        logger.info("budget plan: %s", plan.describe(remaining, cfg.max_steps))
        window: list[tuple[Response, np.ndarray]] = []
        validated: dict[str, Any] = {}
        batches = {"order": rng.permutation(len(train)), "pos": 0}

        def refit_full(theta: np.ndarray) -> None:
            mapping.fit(obj.respond(theta, train.x, "train"), train.y)

        def validate(step: int) -> float:
            # at step 0 ω was just fitted on all of train at θ₀: no final refit to keep budget for
            if not obj.affordable(plan.judge if step else plan.validation, reserve if step else 0):
                raise StopLoop("budget exhausted (budget left only for the final refit)" if reserve else
                               "budget exhausted (too little left for this validation)")
            theta = self.theta.copy() if step == 0 else opt.recommend()
            if step and plan.validation_refit:  # ω read this θ's answers on no split yet: fit it there first
                refit_full(theta)
            acc, resp = obj.accuracy(theta, xv, yv, "validation")
            validated.update(theta=theta, val_resp=resp)
            logger.info("step %d: validation accuracy %.4f after %d queries at θ = %r", step, acc, obj.spent(),
                        self.transform.readable(theta))
            return acc

        def snapshot() -> dict[str, Any]:  # the point validate() just measured
            return {**validated, "mapping": mapping.state_dict()}

        def start() -> None:
            refit_full(self.theta)
            loop.select(0)

        def can_step() -> str | None:
            why = opt.stop()
            if why:
                return f"optimizer: {why}"
            # the step (with the epoch refit it may start), the validation that will judge it, the final refit
            if not obj.affordable(plan.step_cost(loop.result.steps) + plan.judge, reserve):
                return ("budget exhausted (the rest pays for the last validation"
                        + (" and the final refit)" if reserve else ")"))
            return None

        def step(n: int) -> dict[str, Any]:
            if batches["pos"] + cfg.batch_size > len(train):  # an epoch ends: reshuffle; epoch refits
                batches["order"], batches["pos"] = rng.permutation(len(train)), 0
                if self.refit == "epoch":  # paid for: can_step counted it in this step's cost
                    refit_full(opt.recommend())
            idx = batches["order"][batches["pos"]:batches["pos"] + min(cfg.batch_size, len(train))]
            batches["pos"] += len(idx)
            loss = self._step(train.x[idx], train.y[idx], window)
            if self.refit == "window" and (n + 1) % cfg.refit_every == 0:
                rows = Response.concat([r for r, _ in window])
                mapping.fit(rows, np.concatenate([y for _, y in window]))
            return {"loss": loss}

        def finish() -> None:
            if plan.final_refit:
                self._final_refit(train, yv, loop.result)

        callbacks = list(callbacks) + ([] if callback is None else [
            lambda r: callback(StepInfo(r["step"], r["queries"], r["loss"], r.get("val_accuracy")))])
        loop = Loop(step, max_steps=cfg.max_steps, can_step=can_step, start=start, validate=validate,
                    eval_every=cfg.eval_every, snapshot=snapshot, finish=finish, measure=obj.spent,
                    callbacks=callbacks, name="reprogram")
        out = loop.run()
        best = out.best_state
        if best is not None:
            self.theta = best["theta"]
            mapping.load_state_dict(best["mapping"])
        acc = out.best_score if best is not None else -1.0
        self.result = FitResult(theta=self.theta.copy(), val_accuracy=float(acc), best_step=out.best_step,
                                steps=out.steps, stop_reason=out.stop_reason, curve=out.curve, queries=obj.spent())
        logger.info("fit done: %d steps, best validation accuracy %.4f at step %d (%s)", out.steps, acc,
                    out.best_step, out.stop_reason)
        return self.result

    def _step(self, xb: Any, yb: np.ndarray, window: list[tuple[Response, np.ndarray]]) -> float:
        """One optimizer step: all candidates on the same minibatch, in one oracle batch (for an optimizer that
        learns from gradients at the model's inputs, the minibatch and its perturbed inputs, in one batch)."""
        if isinstance(self.optimizer, InputGradientOptimizer):
            est = chain_gradient(self.optimizer, self.transform, self.objective, xb, yb, prior=self.input_prior)
            self.optimizer.apply_gradient(est.gradient)
            answers, labels, losses = est.answers, est.labels, [est.loss]
        else:
            cands = self.optimizer.ask()
            scored = self.objective.score(cands, xb, yb,
                                          folds=self.config.candidate_folds if self.refit == "candidate" else None)
            self.optimizer.tell(cands, scored.losses)
            answers, labels, losses = scored.answers, scored.labels, scored.losses
        if self.refit == "joint":
            self.mapping.train_step(answers, labels, self.config.readout_lr)
        window.append((answers, labels))
        while sum(len(y) for _, y in window) - len(window[0][1]) >= self.config.refit_window:
            window.pop(0)
        return float(np.mean(losses))

    def _final_refit(self, train: Any, yv: np.ndarray, out: Any) -> None:
        """Refit ω on all of ``train`` at the best θ; keep it only if validation does not get worse."""
        best = out.best_state
        if best is None or out.best_step == 0:  # at θ₀, ω was already fitted on all of train
            return
        saved = self.mapping.state_dict()
        self.mapping.load_state_dict(best["mapping"])
        self.mapping.fit(self.objective.respond(best["theta"], train.x, "train"), train.y)
        acc = accuracy_of(self.mapping.predict(best["val_resp"]), yv)
        logger.info("final refit at the best θ: validation %.4f (was %.4f)", acc, out.best_score)
        if acc >= out.best_score:
            out.best_score = acc
            best["mapping"] = self.mapping.state_dict()
        self.mapping.load_state_dict(saved)

    @staticmethod
    def _check_split(d: Any, what: str) -> None:
        if not isinstance(d, TaskData):
            raise TypeError(f"{what} split must be a labelled dataset (blackbox_rp.data.Dataset or "
                            f"blackbox_rp.textdata.TextDataset), got {type(d).__name__}")
        if len(d) == 0:
            raise ValueError(f"the {what} split is empty")

    # ----------------------------------------------------------- serving
    def predict(self, x: np.ndarray, phase: str = "serve") -> np.ndarray:
        """Target-class predictions of the reprogrammed model for images ``x`` (queries charged to ``phase``)."""
        if not self.mapping.fitted:
            raise RuntimeError("the mapping is not fitted: call fit(train, val) first")
        return self.mapping.predict(self.objective.respond(self.theta, x, phase))

    def evaluate(self, test: Any) -> dict[str, Any]:
        """Test accuracy at the selected θ and ω; queries charged to phase ``"test"``."""
        self._check_split(test, "test")
        before = self.oracle.ledger.counts("test")
        acc = accuracy_of(self.predict(test.x, phase="test"), test.y)
        after = self.oracle.ledger.counts("test")
        return {"accuracy": acc, "n": len(test), "queries": after.queries - before.queries,
                "calls": after.calls - before.calls}

    def describe(self) -> dict[str, Any]:
        """The configuration results files record."""
        return {"transform": self.transform.describe(), "mapping": self.mapping.describe(),
                "theta_readable": self.transform.readable(self.theta),
                "optimizer": {"name": self.optimizer.name, "dim": self.optimizer.dim,
                              "queries_per_step": self.optimizer.queries_per_step,
                              "config": self.optimizer.config.to_dict()},
                "loss": self.config.loss, "refit": self.refit, "config": self.config.to_dict(),
                "oracle": self.oracle.describe()}
