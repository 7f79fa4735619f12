"""A local torch model treated as a black box.

``TorchOracle`` wraps an ``nn.Module``, a TorchScript file, a ``module:factory``
spec or a bundled model name, and answers queries with its logits — through
the base :class:`~blackbox_rp.oracle.Oracle`, so every query is validated,
budgeted, journaled and counted exactly as a remote API's would be.

Why the defaults: eval mode is enforced (a model left in train mode answers
the same input differently, which breaks both finite differences and the
journal); float32 by default because finite differences of size ~1e-3 vanish
in half precision; ``inference_mode`` because nothing here needs gradients.

Example::

    >>> from oracles import TorchOracle
    >>> o = TorchOracle("fmnist-cnn", exposure="top3")
    >>> import numpy as np
    >>> r = o(np.zeros((2, 1, 28, 28), dtype=np.float32))
    >>> r.indices.shape, o.ledger.queries
    ((2, 3), 2)
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from blackbox_rp.exposure import Exposure, Response
from blackbox_rp.ledger import Ledger
from blackbox_rp.oracle import Call, InputSpec, LocalModel, Oracle, OracleError

logger = logging.getLogger(__name__)

__all__ = ["TorchOracle", "resolve_module"]


def resolve_module(spec: Any) -> tuple[Any, str]:
    """Turn a module, a bundled name, a ``pkg.mod:factory`` spec or a TorchScript path into (module, name)."""
    import torch

    if isinstance(spec, torch.nn.Module):
        return spec, type(spec).__name__
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"expected an nn.Module, a bundled model name, 'module:factory' or a TorchScript "
                        f"file, got {type(spec).__name__}")
    s = str(spec)
    from .models import MODELS, load_model

    if s in MODELS:
        return load_model(s), s
    if Path(s).exists():
        try:
            return torch.jit.load(s, map_location="cpu"), Path(s).name
        except Exception as e:  # torch raises several types for a bad file
            raise ValueError(f"{s} is not a TorchScript file ({e}); save one with torch.jit.save(torch.jit.script(m), path)") from e
    from .resolve import import_factory, is_factory_spec

    if is_factory_spec(s):
        m = import_factory(s)
        if not isinstance(m, torch.nn.Module):
            raise TypeError(f"{s} returned {type(m).__name__}, expected a torch.nn.Module")
        return m, s
    raise ValueError(f"{s!r} is neither a bundled model ({sorted(MODELS)}), an existing TorchScript file, "
                     f"nor a 'package.module:factory' spec")


def _weights_digest(module: Any) -> str:
    """A short hash of the weights: journal keys change when the model does."""
    h = hashlib.blake2b(digest_size=8)
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class TorchOracle(Oracle, LocalModel):
    """Any torch classifier as a query-only oracle (logits at the source; exposure decides what is shown).

    Args:
        model: ``nn.Module``, bundled name (``blackbox-rp models``), TorchScript path, or ``module:factory``.
        input_spec: accepted inputs; bundled models bring theirs (images in [0, 1]).
        num_classes: inferred from one forward pass of a blank input when omitted.
        device: ``"cuda"`` when available, else ``"cpu"``, unless given.
        dtype: computation dtype; float32 default, half precision refused.
        max_batch: inputs per forward pass (one call each).
        name: identity override (defaults to the model's name plus a hash of its weights).
    """

    source_level = "logits"

    def __init__(self, model: Any, *, input_spec: InputSpec | None = None, num_classes: int | None = None,
                 device: str | None = None, dtype: str = "float32", max_batch: int = 64,
                 exposure: Exposure | str | None = None, ledger: Ledger | None = None,
                 journal: Any = None, class_names: Sequence[str] | None = None, name: str | None = None):
        import torch

        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64 (finite differences break in half precision), "
                             f"got {dtype!r}")
        module, default_name = resolve_module(model)
        from .models import MODELS

        info = MODELS.get(default_name)
        if info is not None:
            input_spec = input_spec or info.input_spec()
            num_classes = num_classes or info.num_classes
            class_names = class_names or info.class_names() or None
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = getattr(torch, dtype)
        self.module = module.to(self.device, self.dtype).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        input_spec = input_spec or InputSpec()
        if num_classes is None:
            num_classes = self._probe_classes(input_spec)
        self._identity = f"torch:{name or default_name}@{_weights_digest(self.module)}"
        super().__init__(input_spec, num_classes, exposure=exposure, ledger=ledger, journal=journal,
                         max_batch=max_batch, class_names=class_names)

    @classmethod
    def from_name(cls, name: str, **kwargs: Any) -> "TorchOracle":
        """A bundled model as an oracle in one line: ``TorchOracle.from_name("efficientnet-lite0")``."""
        from .models import get_model_info

        get_model_info(name)  # a clear error for unknown names
        return cls(name, **kwargs)

    def _probe_classes(self, spec: InputSpec) -> int:
        import torch

        if spec.kind == "vector":
            shape = (1, spec.dim)
        else:
            side = max(spec.min_size, 32)
            shape = (1, spec.channels or 3, spec.height or side, spec.width or side)
        with torch.inference_mode():
            out = self.module(torch.zeros(shape, device=self.device, dtype=self.dtype))
        if out.ndim != 2:
            raise OracleError(f"the model returns shape {tuple(out.shape)} for one input; expected (1, num_classes)")
        return int(out.shape[1])

    @property
    def torch_module(self) -> Any:
        """The frozen module (the white-box ceiling differentiates through it)."""
        return self.module

    @property
    def identity(self) -> str:
        return self._identity

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The bare model, uncounted: for white-box references and overhead benchmarks only."""
        import torch

        if self.module.training:
            logger.warning("%s was put in train mode; forcing eval mode", self.identity)
            self.module.eval()
        with torch.inference_mode():
            out = self.module(torch.from_numpy(x).to(self.device, self.dtype))
        return out.float().cpu().numpy()

    def _answer(self, inputs: np.ndarray, call: Call) -> Response:
        call.attempt()
        logits = self.forward(inputs)
        if logits.shape != (len(inputs), self.num_classes):
            raise OracleError(f"{self.identity}: model returned shape {logits.shape} for {len(inputs)} inputs")
        return Response.from_logits(logits)
