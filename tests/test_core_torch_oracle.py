"""TorchOracle: real bundled models, bad input refused clearly, eval mode enforced, all loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blackbox_rp import InputError, InputSpec
from blackbox_rp.data import DatasetUnavailable, load_fashion_mnist
from oracles import TorchOracle
from oracles.models import imagenet_class_names


@pytest.fixture(scope="module")
def effnet() -> TorchOracle:
    return TorchOracle.from_name("efficientnet-lite0", exposure="top5")


def _sample_photos(size: int = 224) -> np.ndarray:
    from PIL import Image
    from sklearn.datasets import load_sample_images

    imgs = load_sample_images().images  # china.jpg (a temple), flower.jpg (a daisy)
    x = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in imgs])
    return (x.astype(np.float32) / 255.0).transpose(0, 3, 1, 2)


def test_efficientnet_classifies_the_sklearn_sample_photos_sensibly(effnet):
    r = effnet(_sample_photos())
    names = effnet.class_names
    china_top5 = {names[i] for i in r.indices[0]}
    buildings = {"palace", "bell cote", "monastery", "castle", "church", "mosque", "stupa", "boathouse",
                 "dome", "pagoda", "triumphal arch", "cliff dwelling", "tile roof"}
    assert names[r.labels[0]] in buildings, f"china.jpg classified as {names[r.labels[0]]}"
    assert len(china_top5 & buildings) >= 3, china_top5
    assert names[r.labels[1]] == "daisy"
    assert r.scores[1, 0] > r.scores[1, 1]


def test_imagenet_names_are_complete_and_distinct():
    names = imagenet_class_names()
    assert len(names) == len(set(names)) == 1000
    assert names[0] == "tench" and names[985] == "daisy" and names[999] == "toilet tissue"


def test_smaller_canvas_works_and_logits_are_float32(effnet):
    o = effnet.with_exposure("logits")
    r = o(_sample_photos(96))
    assert r.scores.dtype == np.float32 and r.scores.shape == (2, 1000)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((3, 32, 32), np.float32), r"add the batch axis"),
    (np.zeros((1, 1, 32, 32), np.float32), r"got 1 channels.*repeat"),
    (np.zeros((1, 3, 32, 32), np.uint8), r"dtype uint8.*/ 255"),
    (np.zeros((1, 3, 32, 32), np.float16), r"half precision is refused"),
    (np.full((1, 3, 32, 32), 2.0, np.float32), r"takes \[0, 1\]"),
    (np.zeros((1, 3, 8, 8), np.float32), r"at least 32 px"),
    ([[1.0, 2.0]], r"got list"),
])
def test_bad_inputs_are_refused_before_any_query(effnet, bad, match):
    before = effnet.ledger.snapshot()
    with pytest.raises(InputError, match=match):
        effnet(bad)
    assert effnet.ledger.snapshot() == before


def test_nan_is_refused_naming_the_row(effnet):
    x = np.zeros((4, 3, 32, 32), np.float32)
    x[2, 0, 5, 5] = np.nan
    with pytest.raises(InputError, match="1 row.*row 2"):
        effnet(x)


def test_eval_mode_is_enforced():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(12, 3)).train()
    o = TorchOracle(net, input_spec=InputSpec(channels=3, height=2, width=2))
    assert not o.module.training
    x = np.random.default_rng(0).random((8, 3, 2, 2), dtype=np.float32)
    o.module.train()  # someone flips it back: the oracle still answers deterministically
    np.testing.assert_array_equal(o.forward(x), o.forward(x))
    assert o.num_classes == 3


def test_torchscript_file_and_factory_spec(tmp_path):
    from oracles.models.small_cnn import load_pretrained

    path = tmp_path / "cnn.pt"
    torch.jit.save(torch.jit.script(load_pretrained()), path)
    ts = TorchOracle(str(path), input_spec=InputSpec(channels=1, height=28, width=28))
    fac = TorchOracle("oracles.models.small_cnn:load_pretrained", input_spec=InputSpec(channels=1, height=28, width=28))
    x = np.random.default_rng(1).random((5, 1, 28, 28), dtype=np.float32)
    assert ts.num_classes == fac.num_classes == 10
    np.testing.assert_allclose(ts(x).scores, fac(x).scores, rtol=1e-5, atol=1e-6)
    assert ts.identity.split("@")[1] == fac.identity.split("@")[1], "same weights, same journal identity digest"


@pytest.mark.parametrize("spec,match", [("no-such-model", "neither a bundled model"),
                                        ("os:getcwd", "returned str"),
                                        ("nosuchpkg.x:f", "cannot import")])
def test_bad_model_specs_say_what_is_accepted(spec, match):
    with pytest.raises((ValueError, TypeError), match=match):
        TorchOracle(spec)


def test_half_precision_compute_is_refused():
    with pytest.raises(ValueError, match="half precision"):
        TorchOracle("fmnist-cnn", dtype="float16")


def test_fmnist_cnn_reaches_its_documented_accuracy():
    try:
        te = load_fashion_mnist("test")
    except DatasetUnavailable as e:
        pytest.skip(str(e))
    o = TorchOracle("fmnist-cnn", exposure="label", max_batch=2000)
    acc = float((o(te.x).labels == te.y).mean())
    assert acc >= 0.86, acc
    assert o.ledger.calls == 5 and o.ledger.queries == 10000
