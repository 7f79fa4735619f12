"""Several views of each image and no prompt: the multi-view probe's input transformation.

Each target image is placed on the canvas K ways (``views``: one canvas each,
e.g. ``[{"image_size": 32}, {"image_size": 48}, {"image_size": 64}]``) and all
K go to the model: ``views = K`` model inputs per target, target-major. θ is
empty — a mapping built with the same ``views`` (the linear readout) reads the
K answers side by side. It is the simplest input transformation that *adds*
information instead of moving one view (measured in ``benchmarks/visual.py``:
+2 points over the one-view probe on MNIST-5k and Fashion-MNIST), and the shape a
learned multi-view prompt takes.

    >>> import numpy as np
    >>> from blackbox_rp.oracle import InputSpec
    >>> from blackbox_rp.data import from_arrays
    >>> d = from_arrays(np.zeros((2, 1, 8, 8), np.float32), np.array([0, 1]))
    >>> t = MultiView.for_task(d, InputSpec(channels=3), out_size=16, views=[{"image_size": 8}, {"image_size": 16}])
    >>> t.views, t.space.dim, t.apply(np.zeros(0), d.x).shape
    (2, 0, (4, 3, 16, 16))
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..space import SearchSpace
from .base import CanvasConfig, TransformError
from .none import NoPrompt
from .protocol import InputTransform
from .registry import register_transform

__all__ = ["MultiView"]


@register_transform("views")
class MultiView(InputTransform):
    """K canvases of every image, no learnable part (θ has dimension 0)."""

    name = "views"
    modality = "image"

    def __init__(self, shows: Sequence[NoPrompt]):
        if not shows:
            raise TransformError("a multi-view transform needs at least one view (a canvas dict such as "
                                 "{'image_size': 48})")
        self.shows = list(shows)
        self.views = len(self.shows)

    @classmethod
    def for_task(cls, train: Any, input_spec: Any, *, seed: int = 0, out_size: int | None = None,
                 views: Sequence[dict[str, Any]] = (), **params: Any) -> "MultiView":
        if params:
            raise TransformError(f"transform 'views': unknown parameter(s) {sorted(params)}; accepted: "
                                 f"['out_size', 'views']")
        shows = []
        for v in views:
            unknown = sorted(set(v) - set(CanvasConfig.__dataclass_fields__))
            if unknown:
                raise TransformError(f"a view is a canvas: {unknown} not accepted; accepted: "
                                     f"{list(CanvasConfig.__dataclass_fields__)}")
            shows.append(NoPrompt.for_task(train, input_spec, seed=seed, out_size=out_size, **v))
        return cls(shows)

    @property
    def space(self) -> SearchSpace:
        return SearchSpace.box(0)

    def init_theta(self) -> np.ndarray:
        return np.zeros(0, dtype=np.float64)

    def apply(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        out = np.stack([t(theta, x) for t in self.shows], axis=1)  # (N, K, C, S, S): target-major
        return out.reshape(-1, *out.shape[2:])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "dim": 0, "views": [t.describe() for t in self.shows]}
