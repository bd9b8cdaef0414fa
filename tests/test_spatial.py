"""Worst-of-k and grid rotation attacks (empirics.spatial)."""
import json

import pytest
import torch
import torchvision.transforms.functional as TF
from torch import nn
from torchvision.transforms import InterpolationMode

from empirics.profiles import invariance_profile
from empirics.rotation import random_angles
from empirics.spatial import (SpatialProfile, grid_angles, spatial_correct, spatial_profile,
                              worst_of_k_angles)


class Recorder(nn.Module):
    """Always predicts class 0 (so every image stays 'correct' and every
    rotation is tried) and keeps every input it sees."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        logits = torch.zeros(len(x), 3)
        logits[:, 0] = 1.0
        return logits + 0 * self.w


def small_cnn(seed=0, channels=1, classes=4):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 6 * 6, classes)).eval()


def images(n=40, seed=1, size=12):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=gen)


@pytest.mark.parametrize("interpolation,mode", [("nearest", InterpolationMode.NEAREST),
                                                ("bilinear", InterpolationMode.BILINEAR)])
def test_worst_of_k_rotations_are_torchvisions_pixel_for_pixel(interpolation, mode):
    x = images(6)
    rec = Recorder()
    k, theta = 4, 37.0
    correct = spatial_correct(rec, x, torch.zeros(6, dtype=torch.long), theta, "worst_of_k",
                              k=k, seed=3, interpolation=interpolation)
    assert correct.all()  # never wrong, so every one of the k rotations was tried
    angles = worst_of_k_angles(6, theta, k, seed=3)  # (k, n)
    seen = torch.cat(rec.seen)  # (k * n, C, H, W), row by row
    assert seen.shape[0] == k * 6
    for r in range(k):
        for i in range(6):
            want = TF.rotate(x[i], float(angles[r, i]), interpolation=mode)
            assert torch.equal(seen[r * 6 + i], want)


def test_grid_rotations_are_torchvisions_and_include_zero():
    x = images(3)
    rec = Recorder()
    spatial_correct(rec, x, torch.zeros(3, dtype=torch.long), 20.0, "grid", n_grid=7)
    seen = torch.cat(rec.seen)
    angles = grid_angles(20.0, 7)
    assert seen.shape[0] == 7 * 3
    for r, a in enumerate(angles.tolist()):
        for i in range(3):
            assert torch.equal(seen[r * 3 + i], TF.rotate(x[i], a, interpolation=InterpolationMode.NEAREST))
    assert torch.equal(seen[3 * 3: 3 * 3 + 3], x)  # the middle angle is exactly 0


def test_grid_angles_symmetric_with_zero_and_odd_count_required():
    g = grid_angles(30.0, 31)
    assert g.shape == (31,) and g[15] == 0 and g[0] == -30 and g[-1] == 30
    assert torch.equal(g, -g.flip(0))
    assert torch.all(g[1:] > g[:-1])
    with pytest.raises(ValueError, match="odd"):
        grid_angles(30.0, 30)


def test_first_worst_of_k_angle_is_the_invariance_profiles_angle():
    n, theta, seed = 50, 45.0, 7
    a = worst_of_k_angles(n, theta, 10, seed)
    assert a.shape == (10, n) and bool((a.abs() <= theta).all())
    assert torch.equal(a[0], random_angles(n, theta, torch.Generator().manual_seed(seed)))
    # the same draws, scaled, for another theta
    b = worst_of_k_angles(n, 90.0, 10, seed)
    assert torch.allclose(b, 2 * a, rtol=1e-6, atol=1e-5)


def test_spatial_attacks_never_beat_random_rotation_or_clean_per_point():
    model = small_cnn()
    x = images(60)
    with torch.no_grad():
        y = model(x).argmax(1)  # labels = clean predictions: clean accuracy 1
    thetas = (0.0, 30.0, 90.0, 180.0)
    inv = invariance_profile(model, x, y, thetas, seed=2, device="cpu")
    sp = spatial_profile(model, x, y, thetas, k=10, n_grid=31, seed=2)
    assert all(sp.clean_correct) and sp.clean_correct == inv.clean_correct
    for t in range(len(thetas)):
        for i in range(len(x)):
            assert sp.worst_of_k[t][i] <= inv.correct[t][i]
            assert sp.grid[t][i] <= sp.clean_correct[i]
    # theta = 0: every rotation is the identity
    assert all(sp.worst_of_k[0]) and all(sp.grid[0])
    # the attacks find something on an untrained model at 180 degrees
    assert sp.worst_of_k_accuracy[-1].value < inv.accuracy[-1].value + 1e-12
    assert sp.grid_accuracy[-1].value < 1.0


def test_spatial_profile_round_trips_through_json():
    model = small_cnn(1)
    x = images(20)
    y = torch.arange(20) % 4
    sp = spatial_profile(model, x, y, (0.0, 45.0), k=3, n_grid=5, seed=0)
    back = SpatialProfile.from_dict(json.loads(json.dumps(sp.to_dict())))
    assert back == sp
    assert back.worst_of_k_accuracy == sp.worst_of_k_accuracy


@pytest.mark.parametrize("kw,needle", [({"k": 0}, "`k`"), ({"n_grid": 4}, "odd"),
                                       ({"thetas": (30.0, 10.0)}, "increasing"),
                                       ({"thetas": (200.0,)}, "180")])
def test_bad_arguments_raise(kw, needle):
    args = {"thetas": (0.0, 10.0), **kw}
    with pytest.raises(ValueError, match=needle):
        spatial_profile(small_cnn(), images(4), torch.zeros(4, dtype=torch.long), **args)
