"""Tests for empirics.rotation: torchvision is the independent per-image oracle."""
import math

import pytest
import torch
import torchvision.transforms.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.transforms import InterpolationMode

from empirics.rotation import _exact_quarter_turns, _masked_quarter_turns, random_angles, rotate

MODES = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR}


def _reference(images, angles, mode):
    """torchvision.transforms.functional.rotate, one image at a time (the oracle)."""
    return torch.stack([TF.rotate(img, float(a), interpolation=MODES[mode])
                        for img, a in zip(images, angles)])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 6),
       h=st.integers(2, 20), w=st.integers(2, 20), channels=st.sampled_from([1, 3]),
       quarter=st.booleans())
def test_matches_torchvision_per_image(seed, batch, h, w, channels, quarter):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, channels, h, w, generator=g)
    angles = torch.rand(batch, generator=g) * 720 - 360  # (B,) degrees in [-360, 360)
    if quarter:  # mix in exact multiples of 90 degrees
        angles[0] = 90.0 * torch.randint(-4, 5, (), generator=g)
    for mode in MODES:
        got, want = rotate(images, angles, mode), _reference(images, angles, mode)
        if mode == "nearest":
            # nearest: same grid, same rounding -> identical pixels
            assert torch.equal(got, want)
        else:
            # bilinear: the grid agrees to a few float32 ulp (cos/sin evaluated
            # by torch instead of math; rot90 used at multiples of 90), pixel
            # values are in [0, 1], so 1e-5 is ~100 ulp of headroom
            assert (got - want).abs().max() <= 1e-5


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("k", [-4, -3, -2, -1, 0, 1, 2, 3, 4, 5])
def test_quarter_turns_equal_rot90(k, mode):
    images = torch.rand(3, 2, 11, 11, generator=torch.Generator().manual_seed(k + 10))
    assert torch.equal(rotate(images, 90.0 * k, mode), torch.rot90(images, k, dims=(2, 3)))


def test_positive_angle_is_counter_clockwise():
    # a single bright pixel right of the centre goes to the top after +90 degrees
    img = torch.zeros(1, 1, 5, 5)
    img[0, 0, 2, 4] = 1.0
    out = rotate(img, 90.0)
    assert out[0, 0, 0, 2] == 1.0 and out.sum() == 1.0


@pytest.mark.parametrize("mode", list(MODES))
def test_zero_fill_in_corners(mode):
    # at 45 degrees the source of each output corner lies outside the image
    images = torch.ones(2, 1, 28, 28)
    out = rotate(images, torch.tensor([45.0, -45.0]), mode)
    for i, j in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:
        assert (out[:, :, i, j] == 0).all()
    assert (out[:, :, 14, 14] == 1).all()  # the centre keeps its value


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(2, 8))
def test_batch_equals_one_by_one(seed, batch):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 1, 28, 28, generator=g)
    angles = random_angles(batch, 180.0, generator=g)
    for mode in MODES:
        together = rotate(images, angles, mode)
        alone = torch.cat([rotate(images[i:i + 1], angles[i:i + 1], mode) for i in range(batch)])
        assert torch.equal(together, alone)


def test_gradients_flow_through_rotation():
    # rotation sits inside training graphs; every source pixel that lands inside
    # the image gets gradient (a quarter turn is a permutation: all 64 pixels)
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    rotate(x, torch.tensor([90.0, 30.0]), "bilinear").sum().backward()
    assert torch.allclose(x.grad[0].sum(), torch.tensor(64.0))
    assert x.grad[1].sum() > 0


def test_float_angle_is_applied_to_all():
    images = torch.rand(4, 1, 9, 9, generator=torch.Generator().manual_seed(0))
    assert torch.equal(rotate(images, 30.0), rotate(images, torch.full((4,), 30.0)))


def test_non_square_quarter_turn_follows_torchvision():
    # on non-square images the output keeps (H, W): content is cropped, not transposed
    images = torch.rand(2, 1, 6, 10, generator=torch.Generator().manual_seed(1))
    got = rotate(images, 90.0)
    assert got.shape == images.shape
    assert torch.equal(got, _reference(images, [90.0, 90.0], "nearest"))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 2000),
       theta=st.floats(0.0, 360.0, allow_nan=False))
def test_random_angles_in_range_and_seeded(seed, n, theta):
    a = random_angles(n, theta, torch.Generator().manual_seed(seed))
    b = random_angles(n, theta, torch.Generator().manual_seed(seed))
    assert a.shape == (n,) and torch.equal(a, b)
    assert (a.abs() <= theta).all()


def test_random_angles_uniform_mean_and_spread():
    # Uniform[-t, t]: mean 0, sd t/sqrt(3); sample mean within 5 standard errors
    n, theta = 20000, 90.0
    a = random_angles(n, theta, torch.Generator().manual_seed(0)).double()
    sd = theta / math.sqrt(3)
    assert abs(a.mean().item()) <= 5 * sd / math.sqrt(n)
    # var of the sample variance of U[-t,t]: (mu4 - sd^4)/n with mu4 = t^4/5
    se_var = math.sqrt((theta**4 / 5 - sd**4) / n)
    assert abs(a.var().item() - sd**2) <= 5 * se_var


@pytest.mark.parametrize("kwargs, name", [
    (dict(images=torch.rand(2, 1, 4, 4), angles_deg=0.0, interpolation="cubic"), "interpolation"),
    (dict(images=torch.rand(1, 4, 4), angles_deg=0.0), "images"),
    (dict(images=torch.zeros(2, 1, 4, 4, dtype=torch.uint8), angles_deg=0.0), "images"),
    (dict(images=torch.rand(2, 1, 4, 4), angles_deg=torch.zeros(3)), "angles_deg"),
    (dict(images=torch.rand(2, 1, 4, 4), angles_deg=float("nan")), "angles_deg"),
    (dict(images=torch.rand(2, 1, 4, 4), angles_deg="10"), "angles_deg"),
])
def test_rotate_validates(kwargs, name):
    with pytest.raises(ValueError, match=name):
        rotate(**kwargs)


@pytest.mark.parametrize("n, theta, name", [(-1, 10.0, "n"), (3, -1.0, "theta"),
                                            (3, float("inf"), "theta")])
def test_random_angles_validates(n, theta, name):
    with pytest.raises(ValueError, match=name):
        random_angles(n, theta)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_masked_quarter_turns_equal_the_indexed_ones(mode):
    # the device path (mask, no read-back) and the host path (index) agree bit for bit
    g = torch.Generator().manual_seed(0)
    images = torch.rand(12, 2, 9, 9, generator=g)
    angles = torch.tensor([0.0, 90, -90, 180, 270, 360, -450, 30, 45.5, 89.999, -180, 720],
                          dtype=torch.float64)
    base = torch.rand(12, 2, 9, 9, generator=g)
    indexed = base.clone()
    _exact_quarter_turns(images, angles, indexed)
    masked = _masked_quarter_turns(images, angles, base)
    assert torch.equal(masked, indexed)
    assert torch.equal(masked[7:10], base[7:10])  # other angles untouched
    assert torch.equal(rotate(images, angles.float(), mode)[:7],
                       torch.stack([torch.rot90(im, k, dims=(1, 2)) for im, k in
                                    zip(images[:7], (0, 1, 3, 2, 3, 0, 3))]))


def test_one_quarter_turn_for_all_skips_resampling_but_not_gradients():
    x = torch.rand(3, 1, 6, 6, requires_grad=True)
    out = rotate(x, torch.full((3,), 90.0))
    assert torch.equal(out, torch.rot90(x, 1, dims=(2, 3)))
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
