"""The ``unet`` transform (REFINE's input transformation): θ size, range, one implementation, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blackbox_rp.transforms import make_transform

GREY = (1, 28, 28)


def _w(c: int, w: int) -> int:
    """Weights of the documented layout: enc1 (w←c), enc2 (2w←w), bottleneck (2w←2w), dec2 (w←4w), out (c←2w)."""
    return sum(o * i * 9 + o for o, i in ((w, c), (2 * w, w), (2 * w, 2 * w), (w, 4 * w), (c, 2 * w)))


def _images(n: int = 4, shape=GREY, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


@pytest.mark.parametrize("params,channels,out_size,dim", [
    ({}, 1, 28, 6025),                       # the docstring's figure for a grey model
    ({}, 1, 28, _w(1, 8)),
    ({"width": 4}, 3, 32, _w(3, 4)),
    ({"subspace": 50}, 1, 28, 50),
])
def test_theta_size_and_output_shape(params, channels, out_size, dim):
    t = make_transform("unet", in_shape=GREY, out_size=out_size, channels=channels, image_size=28, **params)
    assert t.dim == dim and t.n_weights == _w(channels, params.get("width", 8))
    theta = t.init_theta()
    assert theta.shape == (dim,) and theta.dtype == np.float64
    out = t(theta, _images())
    assert out.shape == (4, channels, out_size, out_size) and out.dtype == np.float32


@pytest.mark.parametrize("subspace", [0, 40])
@pytest.mark.parametrize("scale", [1e3, 1.0])
def test_output_stays_in_unit_range(subspace, scale):
    t = make_transform("unet", in_shape=GREY, out_size=28, channels=1, image_size=28, subspace=subspace)
    theta = np.random.default_rng(1).standard_normal(t.dim) * scale
    for x in (_images(), np.zeros((2, *GREY), np.float32), np.ones((2, *GREY), np.float32)):
        out = t(theta, x)
        assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("subspace", [0, 40])
def test_numpy_path_is_the_torch_path(subspace):
    t = make_transform("unet", in_shape=GREY, out_size=32, channels=3, image_size=28, subspace=subspace)
    theta = t.init_theta() + 0.3 * np.random.default_rng(2).standard_normal(t.dim)
    x = _images()
    ours = t(theta, x)
    theirs = t.torch_forward(torch.tensor(theta, requires_grad=True), torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(ours, t(theta, x))


def test_theta0_is_grey_and_the_output_depends_on_the_input():
    """θ₀ (zero last layer) gives grey 0.5 everywhere; once the last layer moves, different images give
    different outputs (input-dependent, unlike an additive prompt) — and the same seed, the same start."""
    t = make_transform("unet", in_shape=GREY, out_size=28, channels=1, image_size=28)
    x = _images(2)
    np.testing.assert_allclose(t(t.init_theta(), x), 0.5, atol=1e-7)
    theta = t.init_theta()
    theta[-145:] = np.random.default_rng(5).standard_normal(145)  # output conv
    out = t(theta, x)
    assert np.abs(out[0] - out[1]).mean() > 1e-3
    t2 = make_transform("unet", in_shape=GREY, out_size=28, channels=1, image_size=28)
    np.testing.assert_array_equal(t2.init_theta(), t.init_theta())
    other = make_transform("unet", in_shape=GREY, out_size=28, channels=1, image_size=28, seed=1)
    assert not np.array_equal(other.init_theta(), t.init_theta())


@pytest.mark.parametrize("subspace", [0, 30])
def test_gradient_flows_from_theta0_and_matches_finite_differences(subspace):
    """Training starts at θ₀: the gradient there is non-zero; and it is the true derivative."""
    t = make_transform("unet", in_shape=GREY, out_size=28, channels=1, image_size=28, subspace=subspace)
    rng = np.random.default_rng(3)
    x = torch.from_numpy(_images(3))
    target = torch.from_numpy(rng.random((3, 1, 28, 28)))

    def loss(th: torch.Tensor) -> torch.Tensor:
        return ((t.torch_forward(th, x).double() - target) ** 2).sum()

    th = torch.tensor(t.init_theta(), requires_grad=True)
    loss(th).backward()
    assert np.isfinite(th.grad.numpy()).all() and th.grad.abs().sum() > 0
    theta0 = t.init_theta() + 0.05 * rng.standard_normal(t.dim)
    th = torch.tensor(theta0, requires_grad=True)
    loss(th).backward()
    g = th.grad.numpy()
    u = rng.standard_normal(t.dim)
    u /= np.linalg.norm(u)
    h = 1e-2
    with torch.no_grad():
        fd = (loss(torch.tensor(theta0 + h * u)) - loss(torch.tensor(theta0 - h * u))).item() / (2 * h)
    assert fd == pytest.approx(float(g @ u), rel=0.05, abs=1e-4)


@pytest.mark.parametrize("bad", [{"width": 0}, {"subspace": -1}, {"init_scale": -1.0}, {"skip_gain": 1.0}])
def test_bad_options_are_refused(bad):
    with pytest.raises(ValueError):
        make_transform("unet", in_shape=GREY, out_size=28, channels=1, image_size=28, **bad)
