"""Input transformations: stated θ dimension, valid pixel range, one implementation, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blackbox_rp.transforms import TRANSFORMS, Transform, TransformError, make_transform

GREY = (1, 28, 28)
S = 96

# name, params, channels, θ dimension worked out by hand from the documented layouts
DIMS = [
    ("none", {}, 3, 0),
    ("pad", {}, 3, 3 * (96 * 96 - 56 * 56)),                      # frame pixels only: 18,240
    ("full", {}, 3, 3 * 96 * 96),                                  # all-ones mask: 27,648
    ("full", {"mask": "frame"}, 3, 3 * (96 * 96 - 56 * 56)),
    ("lowdim", {}, 3, 3 * 8 * 8),                                  # RESOURCES.md's 192-d prompt
    ("lowdim", {"low_res": (4, 6)}, 1, 1 * 4 * 6),
    ("coordinator", {}, 3, 16 * 8 * 4 * 4 + 8 + 3 * 8 * 3 * 3 + 3),  # deconv 2,056 + conv 219 = 2,275
    ("coordinator", {"enc_channels": 4, "hidden": 2}, 1, 4 * 2 * 16 + 2 + 1 * 2 * 9 + 1),
]


def _images(n: int = 5, shape=GREY, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


def test_registry_lists_every_builtin():
    assert sorted(TRANSFORMS) == ["coordinator", "discrete", "full", "lowdim", "none", "pad", "soft", "unet", "views"]


@pytest.mark.parametrize("name,params,channels,dim", DIMS)
def test_stated_dimension_and_output_shape(name, params, channels, dim):
    t = make_transform(name, in_shape=GREY, out_size=S, channels=channels, **params)
    assert t.dim == dim
    assert t.out_shape == (channels, S, S)
    theta = t.init_theta()
    assert theta.shape == (dim,) and theta.dtype == np.float64
    out = t(theta, _images())
    assert out.shape == (5, channels, S, S) and out.dtype == np.float32


@pytest.mark.parametrize("name,params,channels,dim", DIMS)
@pytest.mark.parametrize("fill", [1e3, -1e3, "random"])
def test_output_stays_in_unit_range_for_extreme_theta(name, params, channels, dim, fill):
    t = make_transform(name, in_shape=GREY, out_size=S, channels=channels, **params)
    theta = (np.random.default_rng(1).standard_normal(dim) * 1e3 if fill == "random"
             else np.full(dim, fill))
    for x in (_images(), np.zeros((2, *GREY), np.float32), np.ones((2, *GREY), np.float32)):
        out = t(theta, x)
        assert np.isfinite(out).all()
        assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("name,params,channels,dim", DIMS)
def test_numpy_path_is_the_torch_path(name, params, channels, dim):
    t = make_transform(name, in_shape=GREY, out_size=S, channels=channels, **params)
    theta = np.random.default_rng(2).standard_normal(dim) * 0.5
    x = _images()
    ours = t(theta, x)
    theirs = t.torch_forward(torch.tensor(theta, requires_grad=dim > 0), torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    # deterministic given θ and x
    np.testing.assert_array_equal(ours, t(theta, x))


@pytest.mark.parametrize("name,params,channels,dim", [d for d in DIMS if d[3] > 0])
def test_gradient_reaches_theta_and_matches_finite_differences(name, params, channels, dim):
    # grey canvas, half amplitude, mid-grey images: no pixel sits on a clamp kink, so the
    # function is smooth near θ₀ and float32 central differences are accurate
    t = make_transform(name, in_shape=GREY, out_size=S, channels=channels, background=0.5, scale=0.5, **params)
    rng = np.random.default_rng(3)
    theta0 = t.init_theta() + 0.1 * rng.standard_normal(dim)
    x = torch.from_numpy(0.25 + 0.5 * _images(3))
    target = torch.from_numpy(rng.random((3, channels, S, S)))

    def loss(th: torch.Tensor) -> torch.Tensor:
        return ((t.torch_forward(th, x).double() - target) ** 2).sum()

    th = torch.tensor(theta0, requires_grad=True)
    loss(th).backward()
    g = th.grad.numpy()
    assert np.isfinite(g).all() and np.abs(g).sum() > 0
    # directional derivative along a random unit direction, by central differences
    u = rng.standard_normal(dim)
    u /= np.linalg.norm(u)
    h = 5e-2
    with torch.no_grad():
        fd = (loss(torch.tensor(theta0 + h * u)) - loss(torch.tensor(theta0 - h * u))).item() / (2 * h)
    assert fd == pytest.approx(float(g @ u), rel=0.05, abs=1e-6)


@pytest.mark.parametrize("name,params,channels,dim", DIMS)
def test_initial_theta_gives_the_zero_shot_input(name, params, channels, dim):
    """θ₀ adds no prompt: reprogramming starts from exactly what `none` shows the model."""
    t = make_transform(name, in_shape=GREY, out_size=S, channels=channels, **params)
    base = make_transform("none", in_shape=GREY, out_size=S, channels=channels)
    x = _images()
    np.testing.assert_allclose(t(t.init_theta(), x), base(np.zeros(0), x), atol=1e-6)


def test_canvas_places_the_resized_image_in_the_centre():
    t = make_transform("none", in_shape=GREY, out_size=S, channels=3)
    x = np.ones((1, *GREY), np.float32)
    out = t(np.zeros(0), x)
    # 56 px image at offset (96 - 56) // 2 = 20; everything else is the black background
    assert t.image_size == 56 and t.offset == 20
    assert (out[0, :, 20:76, 20:76] == 1.0).all()
    assert out[0].sum() == pytest.approx(3 * 56 * 56)
    grey = make_transform("none", in_shape=GREY, out_size=S, channels=3, background=0.5)(np.zeros(0), x)
    assert grey[0, 0, 0, 0] == 0.5


def test_pad_prompt_changes_only_the_frame():
    t = make_transform("pad", in_shape=GREY, out_size=S, channels=3)
    x = _images(2)
    plain = make_transform("none", in_shape=GREY, out_size=S, channels=3)(np.zeros(0), x)
    out = t(np.full(t.dim, 0.5), x)
    inside = (slice(None), slice(None), slice(20, 76), slice(20, 76))
    np.testing.assert_array_equal(out[inside], plain[inside])
    # frame pixel = clamp(background 0 + 1 · tanh(0.5)) = 0.46211716
    assert out[0, 1, 0, 0] == pytest.approx(0.46211716, abs=1e-6)
    assert out[1, 2, 95, 50] == pytest.approx(0.46211716, abs=1e-6)


def test_lowdim_is_the_resources_recipe():
    """A constant small tensor upsamples to a constant: frame = tanh(c), image untouched; and with
    low_res = S the upsampling is the identity, so lowdim equals the full-resolution frame prompt."""
    x = _images(2)
    t = make_transform("lowdim", in_shape=GREY, out_size=S, channels=3)
    out = t(np.full(192, -0.3), x)
    assert out[0, 0, 5, 5] == 0.0  # black + tanh(-0.3) < 0, clamped
    out = t(np.full(192, 0.3), x)
    assert out[1, 2, 90, 3] == pytest.approx(np.tanh(0.3), abs=1e-6)
    big = make_transform("lowdim", in_shape=GREY, out_size=S, channels=3, low_res=(S, S))
    pad = make_transform("pad", in_shape=GREY, out_size=S, channels=3)
    theta_big = np.random.default_rng(4).standard_normal(big.dim)
    frame = np.ones((S, S), bool)
    frame[20:76, 20:76] = False
    theta_pad = theta_big.reshape(3, S, S)[:, frame].ravel()
    np.testing.assert_allclose(big(theta_big, x), pad(theta_pad, x), atol=1e-6)


def test_full_prompt_acts_on_the_image_too():
    t = make_transform("full", in_shape=GREY, out_size=S, channels=1)
    x = np.full((1, *GREY), 0.25, np.float32)
    out = t(np.full(t.dim, 0.2), x)
    assert out[0, 0, 48, 48] == pytest.approx(0.25 + np.tanh(0.2), abs=1e-6)
    assert out[0, 0, 0, 0] == pytest.approx(np.tanh(0.2), abs=1e-6)


def test_coordinator_prompt_depends_on_the_input_and_the_seed():
    t = make_transform("coordinator", in_shape=GREY, out_size=64, channels=3, seed=0, background=0.5,
                       scale=0.5)
    theta = t.init_theta() + 0.3 * np.random.default_rng(5).standard_normal(t.dim)
    a, b = _images(1, seed=6), _images(1, seed=7)
    base = make_transform("none", GREY, 64, background=0.5)
    prompt_a = t(theta, a) - base(np.zeros(0), a)
    prompt_b = t(theta, b) - base(np.zeros(0), b)
    # same θ, different images: different prompts (look at the frame, where the image does not enter)
    assert np.abs(prompt_a[0, :, :8] - prompt_b[0, :, :8]).max() > 1e-3
    other = make_transform("coordinator", in_shape=GREY, out_size=64, channels=3, seed=1, background=0.5,
                           scale=0.5)
    assert not np.allclose(t(theta, a), other(theta, a))
    again = make_transform("coordinator", in_shape=GREY, out_size=64, channels=3, seed=0, background=0.5,
                           scale=0.5)
    np.testing.assert_array_equal(t(theta, a), again(theta, a))
    np.testing.assert_array_equal(t.init_theta(), again.init_theta())


def test_channels_grey_repeated_and_rgb_to_grey_by_luma():
    x = _images(2)
    out = make_transform("none", in_shape=GREY, out_size=S, channels=3)(np.zeros(0), x)
    np.testing.assert_array_equal(out[:, 0], out[:, 1])
    np.testing.assert_array_equal(out[:, 0], out[:, 2])
    rgb = np.zeros((1, 3, 28, 28), np.float32)
    rgb[:, 1] = 1.0  # pure green
    grey = make_transform("none", in_shape=(3, 28, 28), out_size=28, channels=1, image_size=28)(np.zeros(0), rgb)
    assert grey.shape == (1, 1, 28, 28)
    np.testing.assert_allclose(grey, 0.587, atol=1e-6)


def test_output_is_accepted_by_a_real_oracle():
    from oracles import TorchOracle

    o = TorchOracle("fmnist-cnn", exposure="probs")
    t = make_transform("lowdim", in_shape=GREY, out_size=28, channels=1, low_res=(4, 4))
    r = o(t(np.full(t.dim, 1e3), _images(4)))
    assert len(r) == 4 and o.ledger.queries == 4


def test_bad_inputs_are_refused_with_a_message():
    t = make_transform("lowdim", in_shape=GREY, out_size=S)
    with pytest.raises(TransformError, match=r"θ of shape \(192,\)"):
        t(np.zeros(10), _images())
    with pytest.raises(TransformError, match=r"\(N, 1, 28, 28\)"):
        t(np.zeros(192), _images(shape=(1, 32, 32)))
    with pytest.raises(TransformError, match="255"):
        t(np.zeros(192), (_images() * 255).astype(np.uint8))
    with pytest.raises(TransformError, match="half precision"):
        t(np.zeros(192), _images().astype(np.float16))
    with pytest.raises(TransformError, match="NaN"):
        t(np.full(192, np.nan), _images())
    with pytest.raises(ValueError, match=r"unknown transform 'frame'.*available"):
        make_transform("frame", GREY, S)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['lowres'\]; accepted: .*low_res"):
        make_transform("lowdim", GREY, S, lowres=(4, 4))
    with pytest.raises(ValueError, match="does not fit"):
        make_transform("pad", GREY, S, image_size=100)
    with pytest.raises(ValueError, match="frame is empty"):
        make_transform("pad", GREY, S, image_size=S)
    with pytest.raises(ValueError, match="mask must be one of"):
        make_transform("full", GREY, S, mask="circle")
    with pytest.raises(ValueError, match="channels"):
        make_transform("none", (2, 28, 28), S, channels=3)


def test_a_new_transform_plugs_in_by_name():
    from blackbox_rp.transforms import register_transform
    from blackbox_rp.transforms.registry import TRANSFORMS as registry

    class Brighten(Transform):
        name = "test-brighten"

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.dim = 1

        def forward(self, theta, x):
            return torch.clamp(self.place(x) + torch.sigmoid(theta[0]), 0, 1)

    register_transform("test-brighten")(Brighten)
    try:
        t = make_transform("test-brighten", GREY, 28, channels=1, image_size=28)
        assert t(np.zeros(1), np.zeros((1, *GREY), np.float32))[0, 0, 0, 0] == pytest.approx(0.5)
        register_transform("test-brighten")(Brighten)  # the same class again (a module reload) is harmless
        with pytest.raises(ValueError, match="already registered to Brighten"):
            register_transform("test-brighten")(type("Other", (Brighten,), {}))
    finally:
        registry.pop("test-brighten")
