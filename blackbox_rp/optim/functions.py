"""Standard test functions for optimizers: sphere, a rotated ill-conditioned quadratic, Rosenbrock.

They are what optimizer claims are measured on (the tests and
``benchmarks/optimizers.py``): the sphere checks basic convergence, the rotated
ellipsoid (condition number ``cond``, random rotation so that no coordinate
system helps) checks adaptation to ill-conditioning, and Rosenbrock's curved
valley (Rosenbrock, Comput. J. 1960) checks following a non-convex path. All
minima are 0; starts are away from the optimum so progress is measurable.

Example::

    >>> import numpy as np
    >>> from blackbox_rp.optim.functions import make_function
    >>> f = make_function("rosenbrock", 10)
    >>> f(np.ones(10)), f(f.x0) > 0
    (0.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .minimize import BatchObjective

__all__ = ["TestFunction", "make_function", "FUNCTIONS"]

FUNCTIONS = ("sphere", "ellipsoid", "rosenbrock")


@dataclass
class TestFunction(BatchObjective):
    """A function of θ (float64, shape (dim,)) with its optimum value 0 and a standard start ``x0``.

    ``torch_fn`` is the same function in torch (for autograd reference gradients).
    ``batch`` evaluates a list of points (a :class:`~blackbox_rp.optim.minimize.BatchObjective`).
    """

    name: str
    dim: int
    fn: Callable[[np.ndarray], float]
    x0: np.ndarray
    torch_fn: Callable[..., object] = field(repr=False, default=None)  # type: ignore[assignment]

    def __call__(self, theta: np.ndarray) -> float:
        return float(self.fn(np.asarray(theta, dtype=np.float64)))

    def batch(self, thetas: list[np.ndarray]) -> list[float]:
        return [self(t) for t in thetas]


def _rotation(dim: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def make_function(name: str, dim: int, cond: float = 1e3, seed: int = 0) -> TestFunction:
    """``name`` in sphere, ellipsoid (rotated, condition ``cond``, rotation from ``seed``), rosenbrock.

    Starts: sphere and ellipsoid at (1, ..., 1) (loss dim, resp. about dim: the curvatures are
    scaled to mean 1), Rosenbrock at 0 (loss dim − 1), its optimum at (1, ..., 1).
    """
    if dim < 2:
        raise ValueError(f"test functions need dim >= 2, got {dim}")
    if name == "sphere":
        return TestFunction(name, dim, lambda x: float(x @ x), np.ones(dim), lambda t: (t * t).sum())
    if name == "ellipsoid":
        rot = _rotation(dim, seed)
        w = cond ** (np.arange(dim) / (dim - 1))
        w = w / w.mean()  # mean curvature 1: the loss at x0 is about dim, as for the sphere

        def ellipsoid(x: np.ndarray) -> float:
            y = rot @ x
            return float(y @ (w * y))

        def torch_ellipsoid(t):  # noqa: ANN001, ANN202 - torch is imported by the caller
            import torch

            y = torch.as_tensor(rot, dtype=t.dtype) @ t
            return (torch.as_tensor(w, dtype=t.dtype) * y * y).sum()

        return TestFunction(name, dim, ellipsoid, np.ones(dim), torch_ellipsoid)
    if name == "rosenbrock":
        def rosenbrock(x: np.ndarray) -> float:
            return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))

        def torch_rosenbrock(t):  # noqa: ANN001, ANN202
            return (100.0 * (t[1:] - t[:-1] ** 2) ** 2 + (1.0 - t[:-1]) ** 2).sum()

        return TestFunction(name, dim, rosenbrock, np.zeros(dim), torch_rosenbrock)
    raise ValueError(f"unknown test function {name!r}; available: {', '.join(FUNCTIONS)}")
