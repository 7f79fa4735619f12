"""Linear alignment: multinomial logistic regression on the oracle's log-scores.

The taxonomy's *linear* output alignment: target logits = W · φ(f(x)) + b,
where φ are the returned log-probabilities, standardised. On the bundled
ImageNet model this output-only probe beats every statistical mapping by
40 points (RESOURCES.md), so it is both the baseline an input transformation
must beat and a readout to train *together with* the prompt.

Features φ (``needs = "topk"``; label-only answers carry no scores):

* logits / probs answers: log p, floored at log(``eps``);
* top-k answers: the shown classes' log p; each missing class gets the
  unshown mass spread evenly, min(1 − Σ shown, …)/(C − k), capped at the
  smallest shown probability (a missing class cannot be likelier than a shown
  one) and floored at ``eps``;
* then standardised per source class with the mean and standard deviation of
  the first fit (features nearly constant there, spread < 1e-3, are only centred) (``fit(..., warm_start=False)`` re-estimates them), so one W
  stays meaningful while the prompt moves the features.

Fitting minimises mean cross-entropy + ``l2``/2 · ‖W‖² with L-BFGS in float64
(deterministic; no random start).

How the Reprogrammer uses it, black-box: evaluate the prompt loss with
``scores(resp)`` (rows sum to 1) for the zeroth-order optimizer over θ, and
refit the readout with ``fit(resp, y)`` on the whole training split at the
current θ once per epoch (``refit="epoch"``), or train it together with θ:
``train_step(resp, y)`` takes one Adam step on the exact gradient of
cross-entropy + l2 (``loss_and_grad``) over each step's answers, at no query
cost (``refit="joint"``). ``fit(resp, y, warm_start=True)`` keeps the
standardisation and starts L-BFGS from the current W. More generally:
``params`` is the flat readout vector
(W row-major, then b) and ``logits(resp, params=v)`` / ``scores(resp, params=v)``
evaluate any candidate v without changing the mapping, so a loss of
(θ, v) can be formed, e.g. by appending v to θ for a zeroth-order optimizer;
``set_params(v)`` adopts one. White-box: ``torch_logits(log_probs, params_t)``
is the same map in torch, differentiable in both the prompt (through
``log_probs``) and ``params_t``.

Example::

    >>> import numpy as np
    >>> from blackbox_rp.mapping import make_mapping
    >>> p = np.array([[.7, .2, .1], [.1, .2, .7], [.6, .3, .1], [.2, .1, .7]])
    >>> m = make_mapping("linear", 3, 2).fit(p, np.array([0, 1, 0, 1]))
    >>> m.predict(p).tolist(), m.params.shape
    ([0, 1, 0, 1], (8,))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..exposure import Response
from .base import DifferentiableMapping, LabelMapping, TrainableMapping, as_probs
from .registry import register_mapping

logger = logging.getLogger(__name__)

__all__ = ["LinearMapping", "LinearConfig", "log_features"]


@dataclass(frozen=True)
class LinearConfig:
    """``l2``: weight decay on W (mean-loss scale); ``eps``: probability floor before the log;
    ``max_iter``: L-BFGS iterations per fit.

    Why ``eps = 1e-30`` and 300 iterations: ImageNet log-probabilities of digits go far below
    log(1e-8), and a floor there discards what separates the classes. Measured on MNIST-5k through
    EfficientNet-Lite0 (3,000 train / 1,000 validation, 48 px image in a 64 px canvas): validation
    accuracy 82.5% with eps 1e-8 and 100 iterations, 84% with 500 iterations, 92.6% with eps 1e-30
    and 300 iterations (scikit-learn's logistic regression on the raw log-probabilities: 92.0%).
    """

    l2: float = 1e-3
    eps: float = 1e-30
    max_iter: int = 300

    def __post_init__(self) -> None:
        if not float(self.l2) >= 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2!r}")
        if not 0 < float(self.eps) < 1:
            raise ValueError(f"eps must lie in (0, 1), got {self.eps!r}")
        if not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive int, got {self.max_iter!r}")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_features(resp: Response | np.ndarray, num_source: int, eps: float) -> np.ndarray:
    """(n, num_source) float64 log-probabilities, top-k gaps filled as the module docstring says."""
    if isinstance(resp, Response) and resp.kind == "logits":
        z = resp.scores.astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return np.maximum(logp, np.log(eps))
    if isinstance(resp, Response) and resp.kind == "topk":
        shown = resp.scores.astype(np.float64)
        k = shown.shape[1]
        missing = max(num_source - k, 1)
        rest = np.clip(1.0 - shown.sum(axis=1), 0.0, None) / missing
        fill = np.minimum(rest, shown.min(axis=1))
        p = np.repeat(fill[:, None], num_source, axis=1)
        np.put_along_axis(p, resp.indices, shown, axis=1)
        return np.log(np.maximum(p, eps))
    return np.log(np.maximum(as_probs(resp, num_source), eps))


@register_mapping("linear")
class LinearMapping(LabelMapping, DifferentiableMapping, TrainableMapping):
    """Multinomial logistic regression from standardised log-scores to target classes."""

    name = "linear"
    needs = "topk"
    Config = LinearConfig
    _state = ("weight", "bias", "mu", "sd")

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        s, t = self.num_source, self.num_target
        self.weight = np.zeros((t, s), dtype=np.float64)
        self.bias = np.zeros(t, dtype=np.float64)
        self.mu = np.zeros(s, dtype=np.float64)
        self.sd = np.ones(s, dtype=np.float64)
        self._warm = False
        self._max_iter = self.config.max_iter
        self._adam: tuple[np.ndarray, np.ndarray, int] | None = None  # train_step's moments; a new readout resets them

    # ------------------------------------------------------------- parameters
    @property
    def num_params(self) -> int:
        return self.num_target * (self.num_source + 1)

    @property
    def params(self) -> np.ndarray:
        """Flat copy of the readout: W (num_target, num_source) row-major, then b (num_target)."""
        return np.concatenate([self.weight.ravel(), self.bias])

    def set_params(self, params: np.ndarray) -> None:
        """Adopt a flat readout vector (see :attr:`params`); marks the mapping fitted and restarts
        :meth:`train_step`'s Adam moments (they belonged to the readout replaced)."""
        self._adopt(params)
        self._adam = None

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._adam = None

    def _adopt(self, params: np.ndarray) -> None:
        v = np.asarray(params, dtype=np.float64)
        if v.shape != (self.num_params,):
            raise ValueError(f"linear mapping takes {self.num_params} params, got shape {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError("linear mapping params contain NaN or inf")
        t, s = self.num_target, self.num_source
        self.weight = v[: t * s].reshape(t, s).copy()
        self.bias = v[t * s:].copy()
        self.fitted = True

    def _split(self, params: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if params is None:
            return self.weight, self.bias
        v = np.asarray(params, dtype=np.float64)
        if v.shape != (self.num_params,):
            raise ValueError(f"linear mapping takes {self.num_params} params, got shape {v.shape}")
        t, s = self.num_target, self.num_source
        return v[: t * s].reshape(t, s), v[t * s:]

    # ----------------------------------------------------------------- numpy
    def features(self, resp: Response | np.ndarray) -> np.ndarray:
        """Standardised log-scores (n, num_source), the regression's inputs."""
        return (log_features(resp, self.num_source, float(self.config.eps)) - self.mu) / self.sd

    def logits(self, resp: Response | np.ndarray, params: np.ndarray | None = None) -> np.ndarray:
        """(n, num_target) target logits under the current readout, or under ``params`` if given."""
        self._check_response(resp)
        resp = self.fold(resp)
        w, b = self._split(params)
        return self.features(resp) @ w.T + b

    def scores(self, resp: Response | np.ndarray, params: np.ndarray | None = None) -> np.ndarray:
        """Softmax of :meth:`logits`; rows sum to 1."""
        if params is None:
            return super().scores(resp)
        return _softmax(self.logits(resp, params))

    def _scores(self, resp: Response | np.ndarray) -> np.ndarray:
        return _softmax(self.logits(resp))

    # ----------------------------------------------------------------- torch
    def torch_logits(self, log_probs: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        """The same map in torch: ``log_probs`` (n, num_source) log-softmax of the model's output,
        ``params`` a flat tensor like :attr:`params` (the current readout if None). Differentiable in both."""
        dtype = log_probs.dtype
        x = torch.clamp(log_probs, min=float(np.log(self.config.eps)))
        x = (x - torch.as_tensor(self.mu, dtype=dtype)) / torch.as_tensor(self.sd, dtype=dtype)
        if params is None:
            params = torch.as_tensor(self.params, dtype=dtype)
        t, s = self.num_target, self.num_source
        w, b = params[: t * s].view(t, s), params[t * s:]
        return x @ w.to(dtype).T + b.to(dtype)

    def torch_log_probs(self, logits: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        """log-softmax of the readout over the model's log-probabilities."""
        return torch.log_softmax(self.torch_logits(torch.log_softmax(logits, 1), params), 1)

    def view_probs(self, resp: Response) -> np.ndarray:
        """The probabilities the readout itself would see (top-k gaps filled its way)."""
        return np.exp(log_features(resp, resp.num_classes, float(self.config.eps)))

    # ------------------------------------------------------------------- fit
    def fit(self, resp: Response | np.ndarray, y: np.ndarray, warm_start: bool = False,
            max_iter: int | None = None) -> "LinearMapping":
        """Fit the readout. ``warm_start=True`` keeps the standardisation and starts from the current W
        (cheap refits as the prompt changes); otherwise both are re-estimated from scratch.
        ``max_iter`` overrides the config's L-BFGS iterations for this fit (e.g. a few for refits)."""
        if max_iter is not None and (not isinstance(max_iter, int) or max_iter < 1):
            raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
        self._warm = bool(warm_start) and self.fitted
        self._max_iter = max_iter or self.config.max_iter
        return super().fit(resp, y)  # type: ignore[return-value]

    def loss_and_grad(self, resp: Response | np.ndarray, y: np.ndarray,
                      params: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Mean cross-entropy + ``l2``/2 · ‖W‖² of the readout (the current one, or ``params``) on these
        answered rows, and its exact gradient, flat like :attr:`params`."""
        self._check_response(resp)
        resp = self.fold(resp)
        y = self._check_y(y, len(resp))
        w, b = self._split(params)
        x = self.features(resp)
        p = _softmax(x @ w.T + b)
        n, l2 = len(y), float(self.config.l2)
        rows = np.arange(n)
        loss = float(-np.log(np.maximum(p[rows, y], 1e-300)).mean() + 0.5 * l2 * (w * w).sum())
        p[rows, y] -= 1.0
        p /= n
        return loss, np.concatenate([(p.T @ x + l2 * w).ravel(), p.sum(axis=0)])

    def train_step(self, resp: Response | np.ndarray, y: np.ndarray, lr: float = 1e-3) -> float:
        """One Adam step of the readout on :meth:`loss_and_grad` over these answered rows; returns the
        loss before the step.

        The gradient is exact (the readout is ours; only the prompt sits behind the oracle), so a
        readout trained *jointly* with the prompt costs no query: the Reprogrammer's ``refit="joint"``
        calls this with each step's answers. Needs a first :meth:`fit` (the standardisation comes from
        it); Adam's moments restart whenever the readout is replaced (:meth:`fit`, :meth:`set_params`,
        :meth:`load_state_dict`).
        """
        if not self.fitted:
            raise RuntimeError("linear mapping: call fit(resp, y) once before train_step (it sets the "
                               "feature standardisation and the starting readout)")
        if isinstance(lr, bool) or not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        loss, grad = self.loss_and_grad(resp, y)
        m, v, t = self._adam or (np.zeros_like(grad), np.zeros_like(grad), 0)
        b1, b2, t = 0.9, 0.999, t + 1
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        self._adam = (m, v, t)
        self._adopt(self.params - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + 1e-8))
        return loss

    def _fit(self, resp: Response | np.ndarray, y: np.ndarray) -> None:
        raw = log_features(resp, self.num_source, float(self.config.eps))
        if not self._warm:
            self.mu = raw.mean(axis=0)
            sd = raw.std(axis=0)
            # a (near-)constant feature — a class always floored at eps — is left unscaled: dividing by
            # its tiny spread would blow up the first answer that moves it
            self.sd = np.where(sd < 1e-3, 1.0, sd)
            start = np.zeros(self.num_params)
        else:
            start = self.params
        x = torch.from_numpy((raw - self.mu) / self.sd)
        yt = torch.from_numpy(y)
        v = torch.tensor(start, dtype=torch.float64, requires_grad=True)
        t, s = self.num_target, self.num_source
        l2 = float(self.config.l2)
        opt = torch.optim.LBFGS([v], lr=1.0, max_iter=self._max_iter, tolerance_grad=1e-9,
                                tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            w, b = v[: t * s].view(t, s), v[t * s:]
            loss = torch.nn.functional.cross_entropy(x @ w.T + b, yt) + 0.5 * l2 * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.set_params(v.detach().numpy())
