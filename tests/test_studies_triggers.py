"""Triggers put exactly the stated pixels in place; poisoning poisons the stated rows at the stated rate."""

import numpy as np
import pytest

from blackbox_rp.data import Dataset
from blackbox_rp.studies.poisoning import poison
from blackbox_rp.studies.triggers import BadNets, Blended, SampleNoise, compose, make_trigger, parse_trigger


def _images(n=4, c=1, h=28, w=28, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w), dtype=np.float32)


@pytest.mark.parametrize("position, rows, cols", [
    ("bottom-right", slice(24, 27), slice(24, 27)),
    ("top-left", slice(1, 4), slice(1, 4)),
    ("bottom-left", slice(24, 27), slice(1, 4)),
    ((5, 7), slice(5, 8), slice(7, 10)),
])
def test_badnets_sets_exactly_the_patch(position, rows, cols):
    x = _images(c=3)
    out = BadNets(size=3, position=position, margin=1)(x)
    assert (out[:, :, rows, cols] == 1.0).all()
    outside = np.ones(x.shape, dtype=bool)
    outside[:, :, rows, cols] = False
    assert np.array_equal(out[outside], x[outside])  # nothing else moved
    assert np.array_equal(BadNets(size=3, position=position).mask(28, 28)[rows, cols], np.ones((3, 3), bool))
    assert BadNets(size=3, position=position).mask(28, 28).sum() == 9
    assert not np.shares_memory(out, x)


def test_badnets_patterns_and_errors():
    x = np.zeros((1, 1, 10, 10), np.float32)
    cb = BadNets(size=4, position="top-left", margin=0, pattern="checkerboard")(x)[0, 0, :4, :4]
    assert cb.tolist() == [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]]
    r1 = BadNets(size=4, pattern="random", seed=3).patch()
    assert np.array_equal(r1, BadNets(size=4, pattern="random", seed=3).patch()) and set(np.unique(r1)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="does not fit"):
        BadNets(size=12)(x)
    with pytest.raises(ValueError, match="position"):
        BadNets(position="middle")
    with pytest.raises(ValueError, match="float32"):
        BadNets()(x.astype(np.float64))


def test_blended_is_the_stated_mixture():
    x = _images()
    t = Blended(alpha=0.25, seed=7)
    pat = np.random.default_rng(7).random((1, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(t(x), 0.75 * x + 0.25 * pat[None], rtol=0, atol=1e-6)
    assert np.array_equal(t.pattern((1, 28, 28)), pat)
    with pytest.raises(ValueError, match="alpha"):
        Blended(alpha=0.0)


def test_sample_noise_is_per_sample_deterministic_and_bounded():
    x = np.full((3, 1, 8, 8), 0.5, np.float32)
    x[1] = 0.4  # a different image
    t = SampleNoise(eps=0.05, seed=1)
    out = t(x)
    np.testing.assert_allclose(np.abs(out - x), 0.05, atol=1e-6)  # every pixel moves by exactly eps (no clipping here)
    assert np.array_equal(out[0] - x[0], out[2] - x[2])        # same image, same trigger
    assert not np.array_equal(np.sign(out[0] - x[0]), np.sign(out[1] - x[1]))  # another image, another trigger
    assert np.array_equal(t(x), out)
    assert not np.array_equal(SampleNoise(eps=0.05, seed=2)(x), out)


def test_compose_applies_in_order_and_parsing():
    x = np.zeros((2, 1, 28, 28), np.float32)
    b, bl = BadNets(size=2), Blended(alpha=0.5)
    np.testing.assert_array_equal(compose(b, bl)(x), bl(b(x)))
    assert not np.array_equal(compose(b, bl)(x), compose(bl, b)(x))
    t = parse_trigger("badnets:size=4,position=top-left")
    assert t == BadNets(size=4, position="top-left")
    assert make_trigger("blended", alpha=0.1) == Blended(alpha=0.1)
    with pytest.raises(ValueError, match="accepted"):
        make_trigger("badnets", colour="red")
    with pytest.raises(ValueError, match="available"):
        parse_trigger("wanet")


def test_poison_rate_target_and_rows():
    y = np.arange(100) % 10
    d = Dataset(np.zeros((100, 1, 8, 8), np.float32), y, tuple("abcdefghij"))
    p = poison(d, BadNets(size=2, margin=0), rate=0.2, target=3, seed=5)
    assert len(p.indices) == 20 and (d.y[p.indices] != 3).all()
    assert (p.data.y[p.indices] == 3).all()
    assert (p.data.x[p.indices][:, 0, 6:8, 6:8] == 1).all()
    rest = np.setdiff1d(np.arange(100), p.indices)
    assert np.array_equal(p.data.x[rest], d.x[rest]) and np.array_equal(p.data.y[rest], d.y[rest])
    assert np.array_equal(poison(d, BadNets(size=2), 0.2, 3, seed=5).indices, p.indices)  # seeded
    assert d.x.max() == 0  # the original is untouched
    with pytest.raises(ValueError, match="only 90"):
        poison(d, BadNets(), rate=0.95, target=3)
