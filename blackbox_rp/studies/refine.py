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
2. **Warm start** (``warm_start="surrogate"``, the default). The
   pseudo-label answers train a local stand-in of the suspect
   (:mod:`.surrogate`: knowledge distillation through the API; no query), the
   transform is trained white-box against it, then ``rounds`` rounds each send
   the *transformed* training images through the oracle once (counted, in the
   plan), refit the stand-in on every answer bought so far and train the
   transform further against it: the stand-in learns the suspect where the
   transform actually leads, which a stand-in of benign images alone does not
   know. The black-box fit starts there — and, with ``zo-chain``, spends one of
   its directions per image on the stand-in's gradient
   (:class:`~blackbox_rp.optim.chain.InputPrior`).
3. **Black-box fit.** A :class:`~blackbox_rp.reprogram.Reprogrammer` with the
   ``derangement`` mapping on a dataset whose labels are the pseudo-labels,
   split into train / validation by the seed: the loss is the cross-entropy
   between the deranged output on the transformed input and the original
   prediction (REFINE's first term); selection is agreement with the suspect
   model's predictions on held-out benign inputs — step 0 is the warm start
   itself, so when no step beats it, it is what is kept (``info["warm_start"]["kept"]``).
   Zeroth-order optimizers, through the oracle, under the ledger's budget.
4. **White-box ceiling.** The same transform and derangement trained by
   backprop through the local model (:func:`blackbox_rp.whitebox.whitebox_fit`),
   marked ``black_box: False``.

The supervised-contrastive term is left out: an oracle does not return the model's
features.

**The transform.** The default is ``unet`` (REFINE's input-dependent transformation,
:mod:`blackbox_rp.transforms.unet`). An additive prompt (``full``) adds one pattern to every
image, so it cannot send each class c to its own deranged class: its white-box ceiling on the
bundled backdoored Fashion-MNIST CNNs is 56–61% clean accuracy. What bounds the U-Net: to route class
c to π⁻¹(c) it must itself recognise c, so it is a small classifier distilled from the suspect model's
answers on the benign images, and its ceiling grows with their number (white-box, badnets: 78.8% clean
from 2,000 images, 81.5% from 8,000, 84.4% from 20,000 training-split images). Through queries alone,
from θ₀ (a grey image) zeroth-order search stays near chance; ``zo-chain`` (zeroth order per image at the
model's input, exact backprop through the U-Net) reaches 39% clean from 2,000 images at 3·10⁵ queries;
the stand-in's warm start lifts that to 71%, and its rounds (20,000 images) bring the warm start itself
from 46% to 82% in three rounds of 16,000 queries — the README has the tables.

Example (seconds on a CPU)::

    >>> from blackbox_rp.data import load_dataset
    >>> from blackbox_rp.studies.refine import RefineConfig, refine_blackbox
    >>> from oracles import TorchOracle
    >>> from blackbox_rp.ledger import Budget, Ledger
    >>> oracle = TorchOracle("fmnist-cnn", ledger=Ledger(Budget(max_queries=3000, phases=("train", "validation"))))
    >>> import numpy as np
    >>> benign = np.pad(load_dataset("digits").x[:200], ((0, 0), (0, 0), (10, 10), (10, 10)))  # any unlabeled images
    >>> cfg = RefineConfig(max_steps=5, whitebox_steps=50, surrogate={"epochs": 3}, rounds=1, round_steps=20)
    >>> d = refine_blackbox(oracle, benign, cfg)
    >>> d.black_box, d.queries <= 3000, d.info["warm_start"]["input_prior"]
    (True, True, True)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..data import Dataset
from ..exposure import Response
from ..ledger import Ledger
from ..optim.chain import InputGradientOptimizer
from .surrogate import Surrogate, SurrogateConfig, SurrogatePrior, distill, refit

logger = logging.getLogger(__name__)

WARM_STARTS = ("surrogate", "none")

#: settings for a fit that starts from the warm start (a smaller first step: it starts near a solution).
#: zo-chain lr 0.01: measured on the bundled BadNets model, 2,000 benign images, seed 0, 3·10⁵ queries —
#: 71.2% clean accuracy against 67.0% at lr 0.003 (constant step); the cold default 0.03 is for a grey start
WARM_OPTIMIZER_PARAMS = {"zo-chain": {"lr": 0.01}}

__all__ = ["RefineConfig", "DefendedModel", "RefinePlan", "plan_refine", "pseudo_answers", "pseudo_labels",
           "refine_blackbox", "refine_whitebox", "warm_start", "WarmStart"]


@dataclass(frozen=True)
class RefineConfig:
    """How REFINE is trained.

    Args:
        transform: a registered transform (``unet``: REFINE's small U-Net, input-dependent — the default;
            ``full``: one free value per pixel, added everywhere — give it ``mask=ones``, REFINE may change
            the whole image; ``lowdim``: a small pattern upsampled; ...).
        transform_params: the transform's options.
        optimizer: a registered zeroth-order optimizer (default ``zo-chain``: zeroth order per image at the
            model's input, exact backprop through the transform — the best measured here; ``zo-adam``,
            ``cma``, ... search θ directly); ``optimizer_params`` None takes the toolkit's recommendation for it
            (after a warm start, :data:`WARM_OPTIMIZER_PARAMS` over it).
        val_fraction: share of the benign images kept to select θ (agreement with the suspect model).
        val_size: validate each judged point on this many of them (a fixed seeded subset; None: all) — with
            10,000 benign images, 2,000 validation queries per judged point would take a third of a zo-chain
            budget at ``eval_every`` 20.
        max_steps, batch_size, eval_every: passed to the Reprogrammer.
        whitebox_steps, whitebox_lr, whitebox_batch_size: the white-box ceiling's Adam steps, step size and
            minibatch (defaults measured for ``unet`` on 2,000 images: its held-out agreement levels off by ~800
            steps at 0.01; ``full`` used 0.05; more images want more steps) — also those of the warm start,
            which is white-box REFINE against the surrogate. No query is spent on them.
        warm_start: ``"surrogate"`` (default) distills a local stand-in from the pseudo-label answers
            (:mod:`.surrogate`; no query), trains the transform white-box against it, runs ``rounds`` (below)
            and starts the black-box fit there; ``"none"`` starts at the transform's θ₀ (for REFINE's U-Net:
            a grey image). Measured on the bundled BadNets model, 2,000 benign images, seed 0, zo-chain,
            3·10⁵ queries, no rounds: 71% clean accuracy from the warm start against 39% from θ₀.
        surrogate: how the stand-in is trained (:class:`~.surrogate.SurrogateConfig`).
        rounds, round_steps, round_lr: the warm start's rounds of querying where the transform leads (each
            round sends the transformed training images through the oracle once — ``rounds`` × the training
            images, in the budget and the plan — refits the stand-in on every answer bought so far and trains the
            transform ``round_steps`` more white-box steps at ``round_lr`` against it; see :func:`warm_start`).
            Measured on the bundled BadNets model, 20,000 benign images, 3 seeds: the warm start alone keeps
            83.0% clean accuracy through the suspect after 4 rounds (64,000 queries), against 58.3% without.
        input_prior: with the surrogate warm start and an optimizer that estimates gradients at the model's
            inputs (zo-chain), spend one of its directions per image on the stand-in's gradient there
            (default True; :class:`~blackbox_rp.optim.chain.InputPrior`). No extra query.
        seed: the derangement, the split, minibatches, the surrogate and the optimizer.
    """

    transform: str = "unet"
    transform_params: tuple[tuple[str, Any], ...] = ()
    optimizer: str = "zo-chain"
    optimizer_params: tuple[tuple[str, Any], ...] | None = None
    val_fraction: float = 0.2
    val_size: int | None = None
    max_steps: int | None = None
    batch_size: int = 64
    eval_every: int = 10
    whitebox_steps: int = 800
    whitebox_lr: float = 0.01
    whitebox_batch_size: int = 64
    warm_start: str = "surrogate"
    surrogate: SurrogateConfig = SurrogateConfig()
    rounds: int = 4
    round_steps: int = 500
    round_lr: float = 0.005
    input_prior: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.warm_start not in WARM_STARTS:
            raise ValueError(f"RefineConfig.warm_start must be one of {WARM_STARTS}, got {self.warm_start!r}")
        if isinstance(self.surrogate, dict):
            object.__setattr__(self, "surrogate", SurrogateConfig(**self.surrogate))
        for name in ("transform_params", "optimizer_params"):
            v = getattr(self, name)
            if isinstance(v, dict):
                object.__setattr__(self, name, tuple(sorted(v.items())))
        for name in ("batch_size", "eval_every", "whitebox_steps", "whitebox_batch_size", "round_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"RefineConfig.{name} must be a positive int, got {v!r}")
        if self.val_size is not None and (isinstance(self.val_size, bool) or not isinstance(self.val_size, int)
                                          or self.val_size < 1):
            raise ValueError(f"RefineConfig.val_size must be a positive int or None, got {self.val_size!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ValueError(f"RefineConfig.max_steps must be a positive int or None, got {self.max_steps!r}")
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise ValueError(f"RefineConfig.val_fraction must lie in (0, 1), got {self.val_fraction!r}")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 0:
            raise ValueError(f"RefineConfig.rounds must be an int >= 0, got {self.rounds!r}")
        if not (self.whitebox_lr > 0 and self.round_lr > 0):
            raise ValueError(f"RefineConfig.whitebox_lr and round_lr must be positive, got {self.whitebox_lr!r}, "
                             f"{self.round_lr!r}")

    @property
    def warm_rounds(self) -> int:
        """The rounds the warm start will run (none without the surrogate warm start)."""
        return self.rounds if self.warm_start == "surrogate" else 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["transform_params"] = dict(self.transform_params)
        d["optimizer_params"] = None if self.optimizer_params is None else dict(self.optimizer_params)
        return d


@dataclass
class DefendedModel:
    """The defended pipeline ``π ∘ f ∘ I_θ``: predicts through the oracle (queries charged to ``phase``).
    ``theta0`` is where the fit started (the surrogate warm start, or the transform's θ₀)."""

    transform: Any
    theta: np.ndarray
    mapping: Any
    oracle: Any
    black_box: bool
    queries: int
    info: dict[str, Any] = field(default_factory=dict)
    theta0: np.ndarray | None = None

    def at(self, theta: np.ndarray) -> "DefendedModel":
        """The same pipeline with another θ (e.g. ``d.at(d.theta0)``: the warm start alone)."""
        return replace(self, theta=np.asarray(theta, dtype=np.float64).copy())

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


def pseudo_answers(oracle: Any, x: np.ndarray, phase: str = "train", batch: int = 512) -> Response:
    """The suspect model's answers on ``x`` (queries charged to ``phase``): their top-1 labels are REFINE's
    targets, their scores what the surrogate is distilled from."""
    return Response.concat([oracle(x[s:s + batch], phase=phase) for s in range(0, len(x), batch)])


def pseudo_labels(oracle: Any, x: np.ndarray, phase: str = "train", batch: int = 512) -> np.ndarray:
    """The suspect model's top-1 answers on ``x`` (queries charged to ``phase``): REFINE's targets."""
    return pseudo_answers(oracle, x, phase, batch).labels


def _split(n: int, cfg: RefineConfig) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices of the benign images, drawn by the seed (labels are not needed for it)."""
    order = np.random.default_rng(cfg.seed).permutation(n)
    n_val = max(1, int(round(cfg.val_fraction * n)))
    return order[n_val:], order[:n_val]


def _pseudo_splits(oracle: Any, x: np.ndarray, cfg: RefineConfig) -> tuple[Dataset, Dataset, np.ndarray]:
    """Train / validation datasets labelled by the oracle's top-1, and the training images' answer scores."""
    answers = pseudo_answers(oracle, x)
    y = answers.labels
    classes = tuple(oracle.class_names or [str(i) for i in range(oracle.num_classes)])
    tr, va = _split(len(x), cfg)
    return (Dataset(x[tr], y[tr], classes, "benign-pseudo-train"), Dataset(x[va], y[va], classes, "benign-pseudo-val"),
            answers.probs()[tr])


def _derangement(num_classes: int, cfg: RefineConfig) -> Any:
    from ..mapping import make_mapping

    return make_mapping("derangement", num_classes, num_classes, seed=cfg.seed)


def _whitebox(model: Any, transform: Any, train: Dataset, val: Dataset, cfg: RefineConfig,
              callbacks: Iterable[Callable[[dict[str, Any]], str | None]] = (), theta0: np.ndarray | None = None,
              steps: int | None = None, lr: float | None = None, seed: int | None = None) -> tuple[Any, dict[str, Any]]:
    """White-box REFINE of ``transform`` through the local ``model`` (the suspect for the ceiling, the
    surrogate for the warm start) from ``theta0``: the derangement and the fit's result. ``steps``, ``lr`` and
    ``seed`` default to the config's white-box ones."""
    from ..whitebox import WhiteboxConfig, whitebox_fit

    m = _derangement(train.num_classes, cfg)
    steps = cfg.whitebox_steps if steps is None else steps
    out = whitebox_fit(transform, model, m, train, val, config=WhiteboxConfig(
        steps=steps, batch_size=cfg.whitebox_batch_size, lr=cfg.whitebox_lr if lr is None else lr,
        eval_every=max(1, steps // 10), seed=cfg.seed if seed is None else seed), callbacks=callbacks, theta0=theta0)
    return m, out


@dataclass
class WarmStart:
    """Where black-box REFINE's fit starts: θ from white-box REFINE against the ``surrogate`` (distilled from the
    pseudo-label answers, refitted in each round on the answers where the transform led), and what was measured
    on the way (``info``; ``info["rounds"]`` one record per round)."""

    theta: np.ndarray
    info: dict[str, Any]
    surrogate: Surrogate


def _transformed_answers(oracle: Any, transform: Any, theta: np.ndarray, x: np.ndarray,
                         batch: int = 512) -> tuple[np.ndarray, Response]:
    """The transformed images ``I_θ(x)`` and the oracle's answers on them (charged to ``train``)."""
    z = np.concatenate([np.asarray(transform(theta, x[s:s + batch]), dtype=np.float32)
                        for s in range(0, len(x), batch)])
    return z, pseudo_answers(oracle, z)


def warm_start(oracle: Any, x: np.ndarray, train: Dataset, val: Dataset, scores: np.ndarray, cfg: RefineConfig,
               callbacks: Iterable[Callable[[dict[str, Any]], str | None]] = (),
               cache: str | Path | None = None) -> WarmStart:
    """The surrogate warm start: distill a stand-in from the training images' answer ``scores`` (selected on
    agreement with ``val``'s oracle labels; no query), train the transform white-box against it, then
    ``cfg.rounds`` rounds of: send the *transformed* training images through the oracle (``len(train)``
    queries, phase ``train``), refit the stand-in on every answer bought so far, train the transform further
    against it. A stand-in distilled from benign images is right about benign images and wrong about what the
    transform makes of them — the inputs the suspect actually sees — and the transform exploits exactly those
    errors; each round buys the suspect's answers where the transform now leads (the active learning of
    model-extraction attacks). The answers also measure the round's θ through the suspect on the training images
    (``info["rounds"][r]["agreement"]``, against the pseudo-labels) at no extra query.

    ``cache``: a directory where the result (θ, the θ of each round's queries, the stand-in's weights, the
    measurements) is kept under a digest of everything it depends on (the images, the answers, the settings
    that shape it and the seed): runs that differ only in budget or optimizer — a budget sweep — compute it
    once. A run that reuses it sends the rounds' queries again (the same images, so the same count in the
    ledger — a cache saves compute, never queries). The answers are in the digest, so another model or
    exposure misses."""
    key = _warm_key(train, val, scores, cfg)
    path = None if cache is None else Path(cache) / f"warm-{key}.npz"
    shape = (int(train.x.shape[1]), int(scores.shape[1]))
    t = _transform(cfg, oracle, x)
    if path is not None and path.exists():
        logger.info("warm start: reusing %s (its %d rounds' queries sent again)", path, cfg.rounds)
        with np.load(path) as f:
            info = json.loads(str(f["info"]))
            last = info["rounds"][-1] if info["rounds"] else info  # the stand-in kept is the last round's
            sur = Surrogate.from_arrays(*shape, cfg.surrogate, {k[4:]: f[k] for k in f.files if k.startswith("sur/")},
                                        last["surrogate_agreement"], info["surrogate_epochs"])
            for r in range(cfg.rounds):
                _transformed_answers(oracle, t, f[f"round/{r}"], train.x)
            return WarmStart(f["theta"].astype(np.float64), info, sur)
    sur = distill(train.x, scores, val.x, val.y, cfg.surrogate, seed=cfg.seed, callbacks=callbacks)
    m, out = _whitebox(sur, t, train, val, cfg, callbacks)
    theta = np.asarray(out["theta"], dtype=np.float64)
    info: dict[str, Any] = {"surrogate_agreement": sur.agreement, "surrogate_epochs": sur.epochs,
                            "agreement_through_surrogate": out["val_accuracy"], "rounds": []}  # before the rounds
    logger.info("warm start: surrogate agrees with the oracle on %.4f of held-out images; the transform trained "
                "against it reaches %.4f agreement there (through the surrogate)", sur.agreement, out["val_accuracy"])
    xs, ps, queried = [train.x], [np.asarray(scores, dtype=np.float32)], {}
    for r in range(cfg.rounds):
        queried[f"round/{r}"] = theta
        z, answers = _transformed_answers(oracle, t, theta, train.x)
        before = float((sur.predict(z) == answers.labels).mean())
        xs.append(z)
        ps.append(answers.probs().astype(np.float32))
        sur = refit(sur, np.concatenate(xs), np.concatenate(ps), val.x, val.y, cfg.surrogate,
                    seed=cfg.seed + 1 + r, callbacks=callbacks)
        _, out = _whitebox(sur, t, train, val, cfg, callbacks, theta0=theta, steps=cfg.round_steps,
                           lr=cfg.round_lr, seed=cfg.seed + 1 + r)
        theta = np.asarray(out["theta"], dtype=np.float64)
        rec = {"round": r, "queries": len(z), "agreement": float((m.predict(answers) == train.y).mean()),
               "stand_in_on_transformed": before, "surrogate_agreement": sur.agreement,
               "agreement_through_surrogate": out["val_accuracy"]}
        info["rounds"].append(rec)
        logger.info("warm start round %d: the transform of the round before agrees with the pseudo-labels on %.4f "
                    "of the training images through the oracle; the stand-in had agreed with the oracle on %.4f "
                    "of those transformed images before this refit", r, rec["agreement"], before)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, theta=theta, info=json.dumps(info), **queried,
                 **{f"sur/{k}": v for k, v in sur.arrays().items()})
        os.replace(tmp, path)
    return WarmStart(theta, info, sur)


def _warm_key(train: Dataset, val: Dataset, scores: np.ndarray, cfg: RefineConfig) -> str:
    h = hashlib.sha256()
    for a in (train.x, train.y, val.x, val.y, np.asarray(scores, dtype=np.float32)):
        h.update(np.ascontiguousarray(a).tobytes())
    shaping = {k: v for k, v in cfg.to_dict().items()
               if k in ("transform", "transform_params", "whitebox_steps", "whitebox_lr", "whitebox_batch_size",
                        "surrogate", "rounds", "round_steps", "round_lr", "seed")}
    h.update(json.dumps(shaping, sort_keys=True, default=str).encode())
    return h.hexdigest()[:24]


def _transform(cfg: RefineConfig, oracle: Any, x: np.ndarray) -> Any:
    from ..transforms import make_transform

    return make_transform(cfg.transform, in_shape=tuple(x.shape[1:]), out_size=_size(oracle, x),
                          channels=oracle.input_spec.channels or x.shape[1], seed=cfg.seed, **_canvas(cfg, oracle, x))


def _reprogrammer(oracle: Any, x: np.ndarray, cfg: RefineConfig, theta0: np.ndarray | None = None,
                  prior: Any = None) -> Any:
    """The black-box fit's Reprogrammer, starting at ``theta0`` (default the transform's θ₀); built before any
    query for the plan (it needs shapes, not labels)."""
    from ..optim import make
    from ..reprogram import Reprogrammer, recommended_optimizer_params
    from ..transforms.protocol import DifferentiableTransform

    t = _transform(cfg, oracle, x)
    if cfg.warm_start == "surrogate" and not isinstance(t, DifferentiableTransform):
        raise ValueError(f"the surrogate warm start trains the transform by backprop against the stand-in, and "
                         f"transform {cfg.transform!r} has no torch form: use warm_start='none' with it, or an "
                         f"image transform (unet, full, lowdim)")
    start = t.init_theta() if theta0 is None else theta0
    if cfg.optimizer_params is not None:
        params = dict(cfg.optimizer_params)
    else:
        params = recommended_optimizer_params(cfg.optimizer, "derangement")
        if cfg.warm_start == "surrogate":
            params.update(WARM_OPTIMIZER_PARAMS.get(cfg.optimizer, {}))
    opt = make(cfg.optimizer, t.space, seed=cfg.seed, x0=start, **params)
    return Reprogrammer(t, oracle, _derangement(oracle.num_classes, cfg), opt, seed=cfg.seed, refit="none",
                        final_refit=False, max_steps=cfg.max_steps, batch_size=cfg.batch_size,
                        eval_every=cfg.eval_every, val_size=cfg.val_size, theta0=theta0, input_prior=prior)


@dataclass(frozen=True)
class RefinePlan:
    """What black-box REFINE will spend, in train + validation queries, known before the first one: the
    pseudo-labels (every benign image once), the warm start's rounds (the training images once per round) and
    the fit's :class:`~blackbox_rp.reprogram.BudgetPlan`."""

    pseudo_labels: int
    warm_start: int
    fit: Any

    @property
    def minimum(self) -> int:
        """The least budget that pays for the pseudo-labels, the warm start's rounds and one judged step."""
        return self.pseudo_labels + self.warm_start + self.fit.minimum

    def check(self, budget: int | None) -> None:
        """Refuse, before any query, a budget that cannot pay for the pseudo-labels, the rounds and one judged step."""
        from ..reprogram import BudgetTooSmall

        if budget is not None and budget < self.minimum:
            rounds = f", the warm start's rounds {self.warm_start}" if self.warm_start else ""
            raise BudgetTooSmall(
                f"a budget of {budget} train+validation queries cannot pay for black-box REFINE: the pseudo-labels "
                f"cost {self.pseudo_labels} (every benign image once){rounds}, then the fit needs at least "
                f"{self.fit.minimum} (the training images at θ₀ {self.fit.first_fit}, two validations of "
                f"{self.fit.validation}, one step of {self.fit.per_step}) — at least {self.minimum} in all. Raise the "
                f"budget, or use fewer benign images, fewer rounds, a smaller batch or fewer directions per step")

    def describe(self, budget: int | None) -> str:
        rest = None if budget is None else budget - self.pseudo_labels - self.warm_start
        return f"pseudo-labels {self.pseudo_labels}; warm start's rounds {self.warm_start}; fit: {self.fit.describe(rest)}"


def plan_refine(oracle: Any, benign: np.ndarray | Dataset, config: RefineConfig | None = None) -> RefinePlan:
    """The whole black-box REFINE budget (pseudo-labels + rounds + fit), planned without a query."""
    cfg = config or RefineConfig()
    x = _images(benign)
    tr, va = _split(len(x), cfg)
    return RefinePlan(len(x), cfg.warm_rounds * len(tr), _reprogrammer(oracle, x, cfg).budget_plan(len(tr), len(va)))


def refine_blackbox(oracle: Any, benign: np.ndarray | Dataset, config: RefineConfig | None = None,
                    callbacks: Iterable[Callable[[dict[str, Any]], str | None]] = (),
                    warm_cache: str | Path | None = None) -> DefendedModel:
    """Black-box REFINE on unlabeled ``benign`` images through ``oracle``.

    The budget is the oracle's ledger's (train + validation queries: pseudo-labels, the warm start's
    rounds, steps, selection); without one, ``config.max_steps`` bounds the run. The whole budget is planned
    before the first query (:func:`plan_refine`): one too small for the pseudo-labels, the rounds and one
    judged step is refused then, with :class:`~blackbox_rp.reprogram.BudgetTooSmall`. With
    ``warm_start="surrogate"`` the fit starts from white-box REFINE against a stand-in distilled from the
    pseudo-label answers and refitted in each round on the suspect's answers for the transformed images
    (:func:`warm_start`; ``config.rounds`` × the training images in queries). Returns the defended pipeline; ``queries`` counts every train + validation query it spent;
    ``info["warm_start"]`` says what the warm start alone reached through the oracle and whether the
    zeroth-order fit improved on it. ``callbacks`` (e.g. :class:`~blackbox_rp.loop.ProgressBar`) see every
    loop's records: the surrogate's (and each refit's), the warm start's and the fit's. ``warm_cache``: a directory to keep
    the warm start in (see :func:`warm_start`).

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
    plan = RefinePlan(len(x), cfg.warm_rounds * len(tr), rp.budget_plan(len(tr), len(va)))
    remaining = rp.objective.remaining()
    plan.check(remaining)  # before any query: pseudo-labels and one judged step
    logger.info("black-box REFINE budget plan: %s", plan.describe(remaining))
    train, val, scores = _pseudo_splits(oracle, x, cfg)
    info: dict[str, Any] = {"warm_start": None}
    start = rp.theta.copy()
    if cfg.warm_start == "surrogate":
        warm = warm_start(oracle, x, train, val, scores, cfg, callbacks, warm_cache)
        start, info["warm_start"] = warm.theta, warm.info
        prior = None
        if cfg.input_prior and isinstance(rp.optimizer, InputGradientOptimizer):
            prior = SurrogatePrior(warm.surrogate, _derangement(oracle.num_classes, cfg))
        info["warm_start"]["input_prior"] = prior is not None
        rp = _reprogrammer(oracle, x, cfg, start, prior)
    fit = rp.fit(train, val, callbacks=callbacks)
    queries = _spent(oracle.ledger) - spent0
    if info["warm_start"] is not None:
        info["warm_start"].update(agreement=fit.curve[0]["val_accuracy"], kept=fit.best_step == 0)
    logger.info("black-box REFINE: agreement %.4f on held-out benign inputs after %d queries (%s)",
                fit.val_accuracy, queries, fit.stop_reason)
    return DefendedModel(rp.transform, rp.theta.copy(), rp.mapping, oracle, True, queries,
                         {"val_agreement": fit.val_accuracy, "steps": fit.steps, "best_step": fit.best_step,
                          "stop_reason": fit.stop_reason, "optimizer": rp.optimizer.name, "n_benign": len(x),
                          **info, "config": cfg.to_dict()}, theta0=start)


def refine_whitebox(oracle: Any, benign: np.ndarray | Dataset, config: RefineConfig | None = None,
                    callbacks: Iterable[Callable[[dict[str, Any]], str | None]] = ()) -> DefendedModel:
    """The white-box ceiling: the same transform and derangement trained by backprop through ``oracle.module``.

    Not black-box (``black_box`` False): it reads gradients. Its pseudo-labels are still bought through
    the oracle (counted); training itself spends no queries.
    """
    cfg = config or RefineConfig()
    x = _images(benign)
    spent0 = _spent(oracle.ledger)
    train, val, _ = _pseudo_splits(oracle, x, cfg)
    t = _transform(cfg, oracle, x)
    m, out = _whitebox(oracle, t, train, val, cfg, callbacks)
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
