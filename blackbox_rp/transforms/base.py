"""The input-transformation protocol ``I_θ`` and the canvas every visual prompt starts from.

A transform maps a flat parameter vector θ and a batch of target images to
the source model's input space: (N, channels, S, S) float32 in [0, 1]. The
bundled models take [0, 1] images and normalise inside, so every transform
works in that one pixel space.

There is exactly one implementation of each transform, written in torch
(:meth:`Transform.forward`): the white-box reference backpropagates through it
(:meth:`Transform.torch_forward`), and the black-box path (:meth:`Transform.__call__`)
runs the very same code under ``torch.no_grad()`` in float32. Half precision
is never used: finite differences of size ~1e-3 vanish in it.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..space import SearchSpace
from .protocol import DifferentiableTransform, InputTransform

logger = logging.getLogger(__name__)

__all__ = ["Transform", "CanvasConfig", "TransformError"]

#: ITU-R BT.601 luma weights, for an RGB target fed to a grey source model
_LUMA = (0.299, 0.587, 0.114)


class TransformError(ValueError):
    """Inputs or θ that a transform cannot take; the message says what it expected."""


@dataclass(frozen=True)
class CanvasConfig:
    """Where the target image goes on the source model's S×S canvas.

    ``image_size`` — side of the (square) resized target image, centred on the
    canvas; None takes ``round(S · 7/12)`` (56 px in a 96 px canvas, the size
    RESOURCES.md's probes used), at least 1. ``background`` — the canvas value
    around the image before any prompt is added (0 = black, as in the probes;
    0.5 = grey, as in Elsayed et al.'s [-1, 1] formulation).
    """

    image_size: int | None = None
    background: float = 0.0

    def __post_init__(self) -> None:
        if self.image_size is not None and (not isinstance(self.image_size, int) or self.image_size < 1):
            raise ValueError(f"image_size must be a positive int or None, got {self.image_size!r}")
        if not 0.0 <= float(self.background) <= 1.0:
            raise ValueError(f"background must lie in [0, 1] (pixel space), got {self.background!r}")


def _config_from(cls: type, params: dict[str, Any], who: str) -> Any:
    """Build a frozen config, rejecting unknown keys with the accepted ones listed."""
    fields = list(cls.__dataclass_fields__)
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(f"{who}: unknown parameter(s) {unknown}; accepted: {fields}")
    return cls(**params)


class Transform(InputTransform, DifferentiableTransform):
    """Base of image transformations: a canvas placement plus a θ-dependent prompt.

    Subclasses set ``name`` and ``Config`` (a frozen dataclass deriving from
    :class:`CanvasConfig`), compute ``self.dim`` in ``__init__`` and implement
    :meth:`forward` in torch.

    Args:
        in_shape: (C_in, H_in, W_in) of the target images.
        out_size: S, the side of the source model's square input.
        channels: channels the source model takes (grey targets are repeated;
            RGB targets fed to a grey model are converted with BT.601 luma).
        seed: for transforms with random fixed parts (the coordinator's encoder).
        **params: the transform's config fields.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = CanvasConfig

    def __init__(self, in_shape: tuple[int, int, int], out_size: int, channels: int = 3, seed: int = 0,
                 **params: Any):
        if len(tuple(in_shape)) != 3 or any(int(v) < 1 for v in in_shape):
            raise ValueError(f"in_shape must be (C_in, H_in, W_in) with positive sides, got {in_shape!r}")
        c_in = int(in_shape[0])
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        if c_in not in (1, channels) and not (channels == 1 and c_in == 3):
            raise ValueError(f"cannot feed {c_in}-channel targets to a {channels}-channel model; "
                             f"targets must have 1 or {channels} channels (or 3 for a grey model)")
        if not isinstance(out_size, int) or out_size < 1:
            raise ValueError(f"out_size must be a positive int, got {out_size!r}")
        self.config = _config_from(self.Config, params, f"transform {self.name!r}")
        self.in_shape = tuple(int(v) for v in in_shape)
        self.out_size = out_size
        self.channels = channels
        self.seed = int(seed)
        m = self.config.image_size if self.config.image_size is not None else max(1, round(out_size * 7 / 12))
        if m > out_size:
            raise ValueError(f"image_size {m} does not fit in a {out_size} px canvas")
        self.image_size = m
        self.offset = (out_size - m) // 2
        self.dim = 0

    # ------------------------------------------------------------ geometry
    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.out_size, self.out_size)

    def image_mask(self) -> torch.Tensor:
        """(S, S) float32: 1 where the resized target image lies, 0 on the frame around it."""
        s, m, o = self.out_size, self.image_size, self.offset
        mask = torch.zeros(s, s)
        mask[o:o + m, o:o + m] = 1.0
        return mask

    def place(self, x: torch.Tensor) -> torch.Tensor:
        """Resize the targets (bilinear, antialiased when shrinking) into the centre of the canvas."""
        x = x.to(torch.float32)
        c_in = x.shape[1]
        if c_in == 3 and self.channels == 1:
            w = torch.tensor(_LUMA, dtype=x.dtype).view(1, 3, 1, 1)
            x = (x * w).sum(dim=1, keepdim=True)
        m, s, o = self.image_size, self.out_size, self.offset
        if x.shape[-2:] != (m, m):
            shrink = x.shape[-1] > m or x.shape[-2] > m
            x = F.interpolate(x, size=(m, m), mode="bilinear", align_corners=False, antialias=shrink)
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        # padding (not in-place writes) keeps the canvas a pure function of x
        return F.pad(x, (o, s - m - o, o, s - m - o), value=float(self.config.background))

    @classmethod
    def for_task(cls, train: Any, input_spec: Any, *, seed: int = 0, out_size: int | None = None,
                 **params: Any) -> "Transform":
        """The transform for ``train``'s images on the oracle's canvas: S = ``out_size``, else the model's
        fixed input size, else ``max(min_size, 32)``; the model's channels (3 when it does not say)."""
        x = getattr(train, "x", None)
        if not isinstance(x, np.ndarray) or x.ndim != 4:
            raise TransformError(f"transform {cls.name!r} takes images (N, C, H, W); "
                                 f"the target task holds {type(train).__name__} inputs")
        if getattr(input_spec, "kind", "image") != "image":
            raise TransformError(f"transform {cls.name!r} makes images, but the model takes {input_spec.kind} "
                                 f"inputs; choose a transform for {input_spec.kind}")
        size = out_size or input_spec.height or max(input_spec.min_size, 32)
        return cls(tuple(x.shape[1:]), int(size), channels=input_spec.channels or 3, seed=seed, **params)

    # ---------------------------------------------------------------- θ
    @property
    def space(self) -> SearchSpace:
        return SearchSpace.box(self.dim)

    def init_theta(self) -> np.ndarray:
        """The starting θ: zeros (the prompt then adds nothing: θ₀ is the zero-shot input)."""
        return np.zeros(self.dim, dtype=np.float64)

    @abstractmethod
    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The transform in torch: θ (dim,) float32, x (N, C_in, H_in, W_in) → (N, channels, S, S) in [0, 1]."""

    # -------------------------------------------------------------- calls
    def _check_x(self, x: Any) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise TransformError(f"transform {self.name!r} was built for targets of shape (N, "
                                 f"{', '.join(map(str, self.in_shape))}), got {tuple(x.shape)}")

    def _check_theta(self, theta: Any) -> None:
        if tuple(theta.shape) != (self.dim,):
            raise TransformError(f"transform {self.name!r} takes θ of shape ({self.dim},), got {tuple(theta.shape)}")

    def torch_forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Differentiable in ``theta`` (for the white-box reference); computed in float32."""
        self._check_theta(theta)
        self._check_x(x)
        return self.forward(theta.to(torch.float32), x.to(torch.float32))

    def apply(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The black-box path: the same :meth:`forward` under ``no_grad``; float32 (N, channels, S, S) in [0, 1]."""
        theta = np.asarray(theta)
        x = np.asarray(x)
        if not np.issubdtype(theta.dtype, np.floating) or not np.issubdtype(x.dtype, np.floating):
            raise TransformError(f"θ and x must be float arrays (x in [0, 1]), got {theta.dtype} and {x.dtype}"
                                 + ("; for 0-255 images use x.astype(np.float32) / 255" if x.dtype == np.uint8 else ""))
        if x.dtype == np.float16 or theta.dtype == np.float16:
            raise TransformError("half precision is refused: finite differences need float32 or wider")
        self._check_theta(theta)
        self._check_x(x)
        if not np.isfinite(theta).all():
            raise TransformError("θ contains NaN or inf; check the optimizer's step size")
        with torch.no_grad():
            out = self.forward(torch.from_numpy(np.ascontiguousarray(theta, dtype=np.float32)),
                               torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        return out.numpy()

    def describe(self) -> dict[str, Any]:
        """What results files record about the transform."""
        return {"name": self.name, "dim": self.dim, "in_shape": list(self.in_shape),
                "out_shape": list(self.out_shape), "image_size": self.image_size, "seed": self.seed,
                "config": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                           for k, v in asdict(self.config).items()}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, out_shape={self.out_shape})"
