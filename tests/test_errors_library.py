"""Promise 4 in the Python API (issue 12): every bad input gets a clear error naming what was typed.

One test per defect of the issue's adversarial pass; each failed on the code before the fix.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from blackbox_rp import Budget, InputSpec, Ledger
from blackbox_rp.data import DataError, load_image_folder, read_image
from blackbox_rp.exposure import ExposureError, TopK, parse_exposure
from blackbox_rp.optim import make
from blackbox_rp.optim.base import ConfigError
from blackbox_rp.oracle import InputError


# ------------------------------------------------------------------ ledger and budget
@pytest.mark.parametrize("phases", [("trian",), ()])
def test_a_budget_over_unknown_or_no_phases_is_refused(phases):
    with pytest.raises(ValueError, match="phase") as e:
        Budget(max_queries=5, phases=phases)
    msg = str(e.value)
    assert "train" in msg and "validation" in msg  # the accepted names are listed
    if phases:
        assert "'trian'" in msg and "did you mean 'train'" in msg


def test_a_budget_over_the_known_phases_still_limits_them():
    led = Ledger(Budget(max_queries=5, phases=("train", "baseline")))
    with pytest.raises(Exception, match="budget exhausted"):
        led.reserve_queries(100, phase="train")


def test_numpy_integers_are_budgets_and_query_counts():
    b = Budget(max_queries=np.int64(5), max_calls=np.int32(3))
    assert b.max_queries == 5 and type(b.max_queries) is int and type(b.max_calls) is int
    led = Ledger(b)
    r = led.reserve_queries(np.int64(4), phase="train")
    led.commit_queries(r, answered=np.int64(4))
    assert led.queries == 4


@pytest.mark.parametrize("n", [2.5, True, "3", None, -1])
def test_reserving_a_non_integer_number_of_queries_is_refused(n):
    led = Ledger()
    with pytest.raises(ValueError, match="queries"):
        led.reserve_queries(n, phase="train")
    assert led.snapshot()["total"]["queries"] == 0


@pytest.mark.parametrize("bad", [2.5, True, "5", -1, float("nan")])
def test_a_budget_of_a_non_integer_number_is_refused_naming_the_field(bad):
    with pytest.raises(ValueError, match="max_queries"):
        Budget(max_queries=bad)


def test_an_empty_phase_is_refused_not_turned_into_train():
    led = Ledger()
    for call in (lambda: led.reserve_queries(1, phase=""), lambda: led.charge_call(phase=""),
                 lambda: led.record_call_outcome(phase="")):
        with pytest.raises(ValueError, match="phase"):
            call()
    assert led.counts("train").queries == 0 and led.calls == 0


def test_ledger_of_a_number_says_to_wrap_it_in_a_budget():
    with pytest.raises(TypeError, match=r"Ledger\(Budget\(max_queries=5\)\)"):
        Ledger(5)


def test_a_ledger_of_a_list_of_non_budgets_names_them():
    with pytest.raises(TypeError, match="Budget"):
        Ledger([Budget(max_queries=3), "x"])


def test_a_journal_that_is_a_folder_is_a_journal_error_naming_it(tmp_path):
    from blackbox_rp.cache import Journal, JournalError

    with pytest.raises(JournalError, match="is a folder.*journal.sqlite"):
        Journal(tmp_path)


# ------------------------------------------------------------------ exposures
@pytest.mark.parametrize("spec", ["rounded-1", "top0", "rounded99", "top--3", "topk:", "top2.5", "rounded", "top٣"])
def test_bad_exposure_specs_name_what_was_typed_and_the_accepted_forms(spec):
    with pytest.raises(ValueError) as e:
        parse_exposure(spec)
    msg = str(e.value)
    assert repr(spec) in msg, msg
    assert "top<k>" in msg and "rounded<n>" in msg and "label" in msg
    assert "TopK.k" not in msg and "Rounded.decimals" not in msg  # no internal names


def test_good_exposure_specs_still_parse():
    assert [parse_exposure(s).key() for s in ("top5", "topk:3", "rounded2", "rounded:0", "probs", "label",
                                                "logits", "Top-5")] == [
        "top5", "top3", "rounded2", "rounded0", "probs", "label", "logits", "top5"]


def test_top_k_larger_than_the_model_classes_is_refused_when_the_oracle_is_built():
    from oracles import TorchOracle

    with pytest.raises(ExposureError) as e:
        TorchOracle("fmnist-cnn", exposure="top20")
    assert "top20" in str(e.value) and "10 classes" in str(e.value) and "top10" in str(e.value)
    assert TorchOracle("fmnist-cnn", exposure="top10").exposure == TopK(10)


# ------------------------------------------------------------------ input validation messages
SPEC = InputSpec(channels=3)


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.uint8, np.int32])
def test_wrong_numeric_dtypes_say_how_to_convert_not_half_precision(dtype):
    with pytest.raises(InputError) as e:
        SPEC.validate(np.zeros((2, 3, 8, 8), dtype=dtype))
    msg = str(e.value)
    assert "half precision" not in msg and str(np.dtype(dtype)) in msg and "astype(np.float32)" in msg


def test_string_arrays_say_inputs_must_be_numbers():
    with pytest.raises(InputError) as e:
        SPEC.validate(np.array([[["a"]]] * 3).reshape(1, 3, 1, 1))
    assert "half precision" not in str(e.value) and "number" in str(e.value)


def test_half_precision_is_still_refused_with_the_reason():
    with pytest.raises(InputError, match="half precision"):
        SPEC.validate(np.zeros((2, 3, 8, 8), dtype=np.float16))


def test_a_channel_mismatch_never_suggests_a_no_op_repeat():
    grey = InputSpec(channels=1)
    with pytest.raises(InputError) as e:
        grey.validate(np.zeros((2, 3, 8, 8), np.float32))
    assert "repeat(1" not in str(e.value) and "mean(axis=1, keepdims=True)" in str(e.value)
    with pytest.raises(InputError) as e:
        SPEC.validate(np.zeros((2, 1, 8, 8), np.float32))
    assert "x.repeat(3, axis=1)" in str(e.value)
    with pytest.raises(InputError) as e:
        SPEC.validate(np.zeros((2, 5, 8, 8), np.float32))
    assert "repeat" not in str(e.value) and "5 channels" in str(e.value)


def test_a_channels_last_array_gets_a_word_about_layout():
    with pytest.raises(InputError) as e:
        SPEC.validate(np.zeros((2, 64, 64, 3), np.float32))
    msg = str(e.value)
    assert "channels-last" in msg and "x.transpose(0, 3, 1, 2)" in msg and "repeat" not in msg


# ------------------------------------------------------------------ image files
def _png16(path, value: int, shape=(16, 16)) -> None:
    Image.fromarray(np.full(shape, value, dtype=np.uint16)).save(path)


def test_a_16_bit_png_is_rescaled_not_saturated(tmp_path):
    _png16(tmp_path / "mid.png", 32768)
    im = Image.open(tmp_path / "mid.png")
    assert im.mode.startswith("I")  # Pillow reads it as 16-bit: the case that used to saturate
    for mode in ("RGB", "L"):
        a = read_image(tmp_path / "mid.png", mode)
        assert a.dtype == np.float32 and a.min() == pytest.approx(0.5, abs=1e-3) and a.max() < 0.51
    a = read_image(tmp_path / "mid.png", "RGB", size=(8, 8))
    assert a.shape == (3, 8, 8) and a.mean() == pytest.approx(0.5, abs=1e-3)


def test_an_8_bit_png_reads_as_before(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(x).save(tmp_path / "a.png")
    a = read_image(tmp_path / "a.png", "RGB")
    np.testing.assert_array_equal(a, x.transpose(2, 0, 1).astype(np.float32) / 255.0)


def test_an_image_folder_of_16_bit_pngs_keeps_the_grey_levels(tmp_path):
    for cls, v in (("dark", 6553), ("light", 58981)):
        (tmp_path / cls).mkdir()
        for i in range(2):
            _png16(tmp_path / cls / f"{i}.png", v)
    d = load_image_folder(tmp_path)
    assert d.x.shape == (4, 1, 16, 16)
    np.testing.assert_allclose(d.x[d.y == 0].mean(), 0.1, atol=2e-3)
    np.testing.assert_allclose(d.x[d.y == 1].mean(), 0.9, atol=2e-3)


@pytest.mark.parametrize("content", [b"", b"this is not an image\n", b"\x89PNG\r\n\x1a\n broken"])
def test_a_file_that_is_not_an_image_is_one_clear_error(tmp_path, content):
    p = tmp_path / "x.png"
    p.write_bytes(content)
    with pytest.raises(DataError) as e:
        read_image(p, "RGB")
    assert str(p) in str(e.value) and ("empty" in str(e.value) or "not an image" in str(e.value))


# ------------------------------------------------------------------ optimizer parameters
@pytest.mark.parametrize("name,params,words", [
    ("spsa", {"q": True}, ["q", "integer", "True"]),
    ("zo-sgd", {"q": True}, ["q", "integer"]),
    ("spsa", {"alpha": "nan"}, ["alpha", "number", "'nan'"]),
    ("spsa", {"alpha": math.nan}, ["alpha", "nan"]),
    ("zo-adam", {"lr": math.nan}, ["lr", "nan"]),
    ("zo-sgd", {"estimator": "cge", "coords": 0}, ["coords", "list", "0"]),
    ("zo-sgd", {"estimator": "cge", "coords": [0.5, 1]}, ["coords", "integer"]),
    ("random", {"popsize": 2.5}, ["popsize", "integer", "2.5"]),
    ("cma", {"sigma0": [1]}, ["sigma0", "number"]),
    ("cma", {"diagonal": 1}, ["diagonal", "true or false"]),
    ("spsa", {"perturbation": 3}, ["perturbation", "rademacher"]),
])
def test_bad_optimizer_parameters_name_the_parameter(name, params, words):
    with pytest.raises(ConfigError) as e:
        make(name, 4, **params)
    msg = str(e.value)
    assert all(w in msg for w in words), msg
    assert "not supported between" not in msg and "not iterable" not in msg


def test_numpy_numbers_are_good_optimizer_parameters():
    opt = make("spsa", 4, q=np.int64(2), alpha=np.float32(0.5))
    assert opt.config.q == 2 and opt.config.alpha == 0.5


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_a_bad_seed_is_named_as_the_seed(seed):
    with pytest.raises(ConfigError, match="seed") as e:
        make("random", 3, seed=seed)
    assert repr(seed) in str(e.value)


def test_a_generator_or_none_is_still_a_seed():
    make("random", 3, seed=np.random.default_rng(0))
    make("random", 3, seed=None)
    make("random", 3, seed=np.int64(7))


def test_an_unknown_nevergrad_optimizer_lists_real_names():
    pytest.importorskip("nevergrad")
    with pytest.raises(ConfigError) as e:
        make("ng:Nope", 3)
    msg = str(e.value)
    assert "sorted(" not in msg and "OnePlusOne" in msg and "NGOpt" in msg and "'Nope'" in msg
