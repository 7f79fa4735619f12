"""The white-box ceiling: the same transform and mapping, trained by backpropagation.

Black-box numbers mean little alone: a prompt may be weak because zeroth-order
search failed, or because no θ of that transform could do better. This
reference answers the second question. It trains θ (and, for the ``linear``
mapping, the readout jointly) with Adam through the local model
(a :class:`~blackbox_rp.oracle.LocalModel` such as ``TorchOracle``) and the transform's differentiable
``torch_forward``, refits statistical mappings (FLM/ILM/BLM/BLM+) from the
model's own answers on the recent minibatches exactly as the black-box
:class:`~blackbox_rp.reprogram.Reprogrammer` does, and selects on validation.

It is **not** black-box: it reads the model's gradients, spends no oracle
queries (the ledger is untouched) and every result it returns says
``"black_box": False``. It is the ceiling black-box results are measured
against, never a result to report as black-box.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

import numpy as np

from .data import Dataset
from .exposure import Response
from .loop import Loop
from .oracle import LocalModel
from .mapping.base import DifferentiableMapping, FixedMapping, TrainableMapping

logger = logging.getLogger(__name__)

__all__ = ["WhiteboxConfig", "whitebox_fit"]


@dataclass(frozen=True)
class WhiteboxConfig:
    """``steps`` Adam steps on minibatches of ``batch_size`` with learning rate ``lr`` for θ.

    The mapping is refitted every ``refit_every`` steps on the model's answers for the whole training
    split at the current θ (``readout="refit"``; free here, since no query is paid); with
    ``readout="joint"`` a linear readout is instead trained by Adam together with θ (``readout_lr``).
    Validation every ``eval_every`` steps selects the result."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 0.05
    readout: str = "refit"
    readout_lr: float = 0.001
    refit_every: int = 50
    eval_every: int = 50
    eval_batch: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "refit_every", "eval_every", "eval_batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"WhiteboxConfig.{name} must be a positive int, got {v!r}")
        if self.readout not in ("refit", "joint"):
            raise ValueError(f"WhiteboxConfig.readout must be 'refit' or 'joint', got {self.readout!r}")
        if not (self.lr > 0 and self.readout_lr > 0):
            raise ValueError(f"learning rates must be positive, got lr={self.lr!r}, readout_lr={self.readout_lr!r}")


def whitebox_fit(transform: Any, oracle: Any, mapping: Any, train: Dataset, val: Dataset, test: Dataset | None = None,
                 config: WhiteboxConfig | None = None,
                 callbacks: Iterable[Callable[[dict[str, Any]], str | None]] = (),
                 theta0: np.ndarray | None = None) -> dict[str, Any]:
    """Train ``transform``'s θ (and a linear readout) by backprop through ``oracle.torch_module``, from
    ``theta0`` (default the transform's θ₀; step 0 is validated there, so a fit that finds nothing better keeps it).

    ``mapping`` is fitted in place (to the selected state). Returns a dict with
    ``black_box: False``, ``val_accuracy``, ``test_accuracy`` (if ``test``),
    ``theta``, ``steps`` and ``curve`` (validation accuracy by step). The loop is
    :class:`blackbox_rp.loop.Loop`, the one every fit shares (``callbacks`` see each step's record).
    """
    import torch

    cfg = config or WhiteboxConfig()
    if not isinstance(oracle, LocalModel):
        raise ValueError(f"the white-box reference needs a local torch model (a LocalModel such as TorchOracle); "
                         f"{type(oracle).__name__} is not one")
    module = oracle.torch_module
    rng = np.random.default_rng(cfg.seed)
    theta = torch.tensor(transform.start_theta(theta0), dtype=torch.float32, requires_grad=True)
    params = [{"params": [theta], "lr": cfg.lr}]

    def forward(th: Any, x: np.ndarray) -> Any:
        return module(transform.torch_forward(th, torch.from_numpy(x)))

    def answers(th: Any, x: np.ndarray) -> Response:
        with torch.no_grad():
            out = [forward(th, x[s:s + cfg.eval_batch]) for s in range(0, len(x), cfg.eval_batch)]
        return Response.from_logits(torch.cat(out).numpy())

    if not isinstance(mapping, DifferentiableMapping):
        raise ValueError(f"mapping {mapping.name!r} has no differentiable form for the white-box reference")
    fixed = isinstance(mapping, FixedMapping)  # nothing to refit: no pass over the training split for it
    if not fixed:
        mapping.fit(answers(theta, train.x), train.y)
    readout = None
    if cfg.readout == "joint" and isinstance(mapping, TrainableMapping):
        readout = torch.tensor(mapping.params, dtype=torch.float32, requires_grad=True)
        params.append({"params": [readout], "lr": cfg.readout_lr})
    opt = torch.optim.Adam(params)
    batches = {"order": rng.permutation(len(train)), "pos": 0}

    def validate(step: int) -> float:
        if readout is not None:
            mapping.set_params(readout.detach().double().numpy())
        return float((mapping.predict(answers(theta, val.x)) == val.y).mean())

    def step(n: int) -> dict[str, Any]:
        if batches["pos"] + cfg.batch_size > len(train):
            batches["order"], batches["pos"] = rng.permutation(len(train)), 0
        idx = batches["order"][batches["pos"]:batches["pos"] + cfg.batch_size]
        batches["pos"] += len(idx)
        logits = forward(theta, train.x[idx])
        loss = torch.nn.functional.nll_loss(mapping.torch_log_probs(logits, readout), torch.from_numpy(train.y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if readout is None and not fixed and (n + 1) % cfg.refit_every == 0:  # the mapping follows the prompt
            mapping.fit(answers(theta, train.x), train.y)
        return {"loss": loss.item()}

    loop = Loop(step, max_steps=cfg.steps, start=lambda: loop.select(0), validate=validate,
                eval_every=cfg.eval_every, snapshot=lambda: {"theta": theta.detach().clone(),
                                                              "mapping": mapping.state_dict()},
                callbacks=callbacks, name="white-box")
    res = loop.run()
    best = res.best_state
    mapping.load_state_dict(best["mapping"])
    curve = [{"step": p["step"], "val_accuracy": p["val_accuracy"]} for p in res.curve]
    out: dict[str, Any] = {"black_box": False, "val_accuracy": res.best_score, "best_step": res.best_step,
                           "steps": res.steps, "curve": curve, "config": asdict(cfg),
                           "theta": best["theta"].double().numpy()}
    if test is not None:
        out["test_accuracy"] = float((mapping.predict(answers(best["theta"], test.x)) == test.y).mean())
    return out
