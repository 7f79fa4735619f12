"""The white-box ceiling: the same transform and mapping, trained by backpropagation.

Black-box numbers mean little alone: a prompt may be weak because zeroth-order
search failed, or because no θ of that transform could do better. This
reference answers the second question. It trains θ (and, for the ``linear``
mapping, the readout jointly) with Adam through the local model
(``TorchOracle.module``) and the transform's differentiable
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
from typing import Any

import numpy as np

from .data import Dataset
from .exposure import Response

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


def _target_log_probs(mapping: Any, logits: Any, readout: Any) -> Any:
    """log target-class probabilities in torch, the same function as ``mapping.scores`` on these logits."""
    import torch

    if hasattr(mapping, "torch_logits"):  # linear alignment: differentiable in prompt and readout
        return torch.log_softmax(mapping.torch_logits(torch.log_softmax(logits, 1), readout), 1)
    probs = torch.softmax(logits, 1)
    if hasattr(mapping, "omega"):  # BLM / BLM+: f(x) · ω, rows renormalised
        mass = probs @ torch.as_tensor(mapping.omega, dtype=probs.dtype)
    elif hasattr(mapping, "source_of"):  # one-to-one mappings: the mapped source classes, renormalised
        mass = probs[:, torch.as_tensor(mapping.source_of)]
    else:
        raise ValueError(f"no differentiable form of mapping {mapping.name!r} for the white-box reference")
    return torch.log(torch.clamp(mass / mass.sum(1, keepdim=True).clamp_min(1e-30), min=1e-12))


def whitebox_fit(transform: Any, oracle: Any, mapping: Any, train: Dataset, val: Dataset, test: Dataset | None = None,
                 config: WhiteboxConfig | None = None) -> dict[str, Any]:
    """Train ``transform``'s θ (and a linear readout) by backprop through ``oracle.module``.

    ``mapping`` is fitted in place (to the selected state). Returns a dict with
    ``black_box: False``, ``val_accuracy``, ``test_accuracy`` (if ``test``),
    ``theta``, ``steps`` and ``curve`` (validation accuracy by step).
    """
    import torch

    cfg = config or WhiteboxConfig()
    module = getattr(oracle, "module", None)
    if module is None:
        raise ValueError(f"the white-box reference needs a local torch model (TorchOracle); {oracle!r} has none")
    rng = np.random.default_rng(cfg.seed)
    theta = torch.tensor(transform.init_theta(), dtype=torch.float32, requires_grad=True)
    params = [{"params": [theta], "lr": cfg.lr}]

    def forward(th: Any, x: np.ndarray) -> Any:
        return module(transform.torch_forward(th, torch.from_numpy(x)))

    def answers(th: Any, x: np.ndarray) -> Response:
        with torch.no_grad():
            out = [forward(th, x[s:s + cfg.eval_batch]) for s in range(0, len(x), cfg.eval_batch)]
        return Response.from_logits(torch.cat(out).numpy())

    mapping.fit(answers(theta, train.x), train.y)
    readout = None
    if cfg.readout == "joint" and hasattr(mapping, "torch_logits"):
        readout = torch.tensor(mapping.params, dtype=torch.float32, requires_grad=True)
        params.append({"params": [readout], "lr": cfg.readout_lr})
    opt = torch.optim.Adam(params)

    def sync_readout() -> None:
        if readout is not None:
            mapping.set_params(readout.detach().double().numpy())

    def val_acc() -> float:
        sync_readout()
        return float((mapping.predict(answers(theta, val.x)) == val.y).mean())

    best = {"acc": val_acc(), "theta": theta.detach().clone(), "mapping": mapping.state_dict(), "step": 0}
    curve = [{"step": 0, "val_accuracy": best["acc"]}]
    order, pos = rng.permutation(len(train)), 0
    for step in range(1, cfg.steps + 1):
        if pos + cfg.batch_size > len(train):
            order, pos = rng.permutation(len(train)), 0
        idx = order[pos:pos + cfg.batch_size]
        pos += len(idx)
        logits = forward(theta, train.x[idx])
        loss = torch.nn.functional.nll_loss(_target_log_probs(mapping, logits, readout),
                                            torch.from_numpy(train.y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if readout is None and step % cfg.refit_every == 0:  # the mapping follows the prompt
            mapping.fit(answers(theta, train.x), train.y)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            acc = val_acc()
            curve.append({"step": step, "val_accuracy": acc})
            logger.info("white-box step %d: loss %.4f, validation %.4f", step, loss.item(), acc)
            if acc > best["acc"]:
                best.update(acc=acc, theta=theta.detach().clone(), mapping=mapping.state_dict(), step=step)
    mapping.load_state_dict(best["mapping"])
    out: dict[str, Any] = {"black_box": False, "val_accuracy": best["acc"], "best_step": best["step"],
                           "steps": cfg.steps, "curve": curve, "config": asdict(cfg),
                           "theta": best["theta"].double().numpy()}
    if test is not None:
        out["test_accuracy"] = float((mapping.predict(answers(best["theta"], test.x)) == test.y).mean())
    return out
