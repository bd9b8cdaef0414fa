"""Tests for empirics.profiles: invariance and robustness profiles."""
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms.functional import rotate as tv_rotate

from core import auc
from empirics.attacks import pgd_profile, predict
from empirics.profiles import (InvarianceProfile, RobustnessProfile, invariance_profile,
                               robustness_profile)

CPU = torch.device("cpu")
THETAS = (0.0, 15.0, 45.0, 90.0, 180.0)
EPS = (0.0, 0.01, 0.03, 0.1)


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 4, 7, 7)
        nn.Flatten(), nn.Linear(196, 10))


def digits(n: int, seed: int):
    """(n, 1, 14, 14) images with a bright off-centre blob, so that rotation
    changes them, and random labels."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.rand(n, 1, 14, 14, generator=g)
    x[:, :, 2:6, 3:9] += 0.6
    y = torch.randint(0, 10, (n,), generator=g)
    return x.clamp(0, 1), y


class Constant(nn.Module):
    """Ignores its input: the same logits for every image."""

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.arange(10.0))

    def forward(self, x):
        return self.logits.expand(len(x), 10)  # (B, 10)


# ---------------------------------------------------------------- invariance
def test_invariance_is_one_at_theta_zero_and_accuracy_is_clean():
    model, (x, y) = small_cnn(), digits(40, 0)
    prof = invariance_profile(model, x, y, THETAS, device=CPU)
    assert prof.invariance[0].value == 1.0
    assert prof.accuracy[0] == prof.clean_accuracy
    assert prof.clean_accuracy.successes == int((predict(model, x) == y).sum())
    assert min(e.value for e in prof.invariance[1:]) < 1.0  # rotation does change things


def test_a_model_that_ignores_its_input_is_invariant_everywhere():
    x, y = digits(30, 1)
    prof = invariance_profile(Constant(), x, y, THETAS, device=CPU)
    assert all(e.value == 1.0 for e in prof.invariance)
    assert prof.auc() == 1.0


def test_invariance_matches_torchvision_rotation_per_image():
    # Independent oracle: torchvision's own rotate, one image at a time, at the
    # documented angles u_i * theta with u = 2 * rand(n, seed) - 1.
    model, (x, y) = small_cnn(1), digits(12, 2)
    theta, seed = 60.0, 5
    prof = invariance_profile(model, x, y, [theta], seed=seed, device=CPU)
    u = 2 * torch.rand(12, generator=torch.Generator().manual_seed(seed)) - 1
    rotated = torch.stack([tv_rotate(x[i], float(u[i] * theta), InterpolationMode.NEAREST)
                           for i in range(12)])  # (12, 1, 14, 14)
    pred = predict(model, rotated)
    assert prof.invariant[0] == tuple((pred == predict(model, x)).tolist())
    assert prof.correct[0] == tuple((pred == y).tolist())


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_invariance_seeds_reproduce(seed):
    model, (x, y) = small_cnn(), digits(20, 3)
    a = invariance_profile(model, x, y, THETAS, seed=seed, device=CPU)
    assert invariance_profile(model, x, y, THETAS, seed=seed, batch_size=7, device=CPU) == a


def test_model_mode_restored_and_deterministic_despite_dropout():
    model = nn.Sequential(small_cnn(), nn.Dropout(0.9)).train()
    x, y = digits(20, 4)
    a = invariance_profile(model, x, y, THETAS, device=CPU)
    b = robustness_profile(model, x, y, EPS, steps=3, device=CPU)
    assert model.training and model[1].training
    assert a == invariance_profile(model, x, y, THETAS, device=CPU)
    assert b == robustness_profile(model, x, y, EPS, steps=3, device=CPU)
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


# ---------------------------------------------------------------- robustness
def test_robustness_profile_is_pgd_profile_on_rotated_images():
    model, (x, y) = small_cnn(2), digits(24, 5)
    y[::3] = predict(model, x)[::3]  # some correct points
    prof = robustness_profile(model, x, y, EPS, steps=5, device=CPU)
    direct = pgd_profile(model, x, y, EPS, steps=5)
    assert (prof.broken_at, prof.fooled_at) == (direct.broken_at, direct.fooled_at)
    assert prof.accuracy[0].successes == int((predict(model, x) == y).sum())
    assert prof.fooling_rate[0].value == 0.0
    # Rotated test data: the same angles torchvision gets, drawn as documented.
    b, seed = 30.0, 2
    rot = robustness_profile(model, x, y, EPS, steps=5, test_rotation=b, seed=seed, device=CPU)
    u = 2 * torch.rand(24, generator=torch.Generator().manual_seed(seed)) - 1
    xr = torch.stack([tv_rotate(x[i], float(u[i] * b), InterpolationMode.NEAREST)
                      for i in range(24)])  # (24, 1, 14, 14)
    direct = pgd_profile(model, xr, y, EPS, steps=5)
    assert (rot.broken_at, rot.fooled_at) == (direct.broken_at, direct.fooled_at)
    assert rot.test_rotation == b and rot.seed == seed


def test_robustness_with_random_start_reproduces():
    model, (x, y) = small_cnn(), digits(16, 6)
    run = lambda: robustness_profile(model, x, y, EPS, steps=3, seed=4,  # noqa: E731
                                     random_start=True, device=CPU)
    assert run() == run()


# ---------------------------------------------------------------- results
outcomes = st.integers(1, 30).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=3, max_size=3),
    st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=3, max_size=3),
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.lists(st.integers(0, 4), min_size=n, max_size=n),
    st.lists(st.integers(0, 4), min_size=n, max_size=n)))


@settings(max_examples=25, deadline=None)
@given(data=outcomes, seed=st.integers(0, 2**31 - 1))
def test_profiles_round_trip_through_json(data, seed):
    inv_rows, cor_rows, clean, broken, fooled = data
    inv = InvarianceProfile((0.0, 30.0, 90.0), tuple(map(tuple, inv_rows)),
                            tuple(map(tuple, cor_rows)), tuple(clean), seed)
    rob = RobustnessProfile((0.0, 0.1, 0.2, 0.3), tuple(broken), tuple(fooled), 15.0, 40, seed)
    inv2 = InvarianceProfile.from_dict(json.loads(json.dumps(inv.to_dict())))
    rob2 = RobustnessProfile.from_dict(json.loads(json.dumps(rob.to_dict())))
    assert inv2 == inv and rob2 == rob
    assert inv2.invariance == inv.invariance and rob2.fooling_rate == rob.fooling_rate


def test_rates_auc_and_accessors_by_hand():
    # Four points broken at eps index 0, 1, 2, never (3): accuracy 3/4, 2/4, 1/4.
    rob = RobustnessProfile((0.0, 0.1, 0.3), (0, 1, 2, 3), (3, 1, 1, 2), 0.0, 40, 0)
    assert [e.successes for e in rob.accuracy] == [3, 2, 1]
    assert [e.successes for e in rob.fooling_rate] == [0, 2, 3]
    # Trapezoid by hand: (0.1 * (0.75 + 0.5) / 2 + 0.2 * (0.5 + 0.25) / 2) / 0.3.
    assert rob.auc() == pytest.approx((0.0625 + 0.075) / 0.3, rel=1e-12)
    assert rob.at(0.1).accuracy.value == 0.5 and rob.at(0.1).fooling_rate.value == 0.5
    with pytest.raises(ValueError, match="`eps`"):
        rob.at(0.2)
    # The Wilson interval comes from core.estimate.
    assert rob.accuracy[0].ci_low < 0.75 < rob.accuracy[0].ci_high


def test_auc_agrees_with_the_mean_of_per_point_aucs():
    # a profile's AUC from its rates = the mean of its test points' AUCs
    # (core.auc's per-point route, which figures and checks read)
    rob = RobustnessProfile((0.0, 0.05, 0.2, 0.5), (0, 4, 2, 1, 3, 4, 4), (4,) * 7, 0.0, 40, 0)
    assert rob.auc() == pytest.approx(auc.robustness_points(rob.epsilons, rob.broken_at).mean())
    inv = InvarianceProfile((0.0, 60.0, 180.0), ((1, 1, 1), (1, 0, 1), (0, 0, 1)),
                            ((1, 1, 0),) * 3, (1, 1, 0), 0)
    assert inv.auc() == pytest.approx(auc.invariance_points(inv.thetas, inv.invariant).mean())


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, name", [
    ({"thetas": [0, 200]}, "thetas"), ({"thetas": [30, 0]}, "thetas"), ({"thetas": []}, "thetas"),
    ({"labels": torch.zeros(3, dtype=torch.long)}, "labels"), ({"batch_size": 0}, "batch_size"),
])
def test_invariance_profile_rejects_bad_arguments(kwargs, name):
    x, y = digits(4, 0)
    args = {"images": x, "labels": y, "thetas": THETAS, "device": CPU, **kwargs}
    with pytest.raises(ValueError, match=f"`{name}`"):
        invariance_profile(small_cnn(), **args)


@pytest.mark.parametrize("kwargs, name", [
    ({"epsilons": [0, 2]}, "epsilons"), ({"steps": 0}, "steps"),
    ({"test_rotation": float("nan")}, "test_rotation"),
])
def test_robustness_profile_rejects_bad_arguments(kwargs, name):
    x, y = digits(4, 0)
    args = {"images": x, "labels": y, "epsilons": EPS, "device": CPU, **kwargs}
    with pytest.raises(ValueError, match=f"`{name}`"):
        robustness_profile(small_cnn(), **args)


def test_profile_rejects_inconsistent_outcomes():
    with pytest.raises(ValueError, match="`fooled_at`"):
        RobustnessProfile((0.0, 0.1), (0, 1), (0,), 0.0, 40, 0)
    with pytest.raises(ValueError, match="`broken_at`"):
        RobustnessProfile((0.0, 0.1), (0, 3), (0, 0), 0.0, 40, 0)
    with pytest.raises(ValueError, match="`invariant`"):
        InvarianceProfile((0.0,), ((True,), (True,)), ((True,),), (True,), 0)


def test_profiles_run_on_the_models_device_unless_told():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    x = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(2))
    own = robustness_profile(model, x, y, [0.0, 0.1], steps=3, test_rotation=20.0)
    told = robustness_profile(model, x, y, [0.0, 0.1], steps=3, test_rotation=20.0, device="cpu")
    assert (own.broken_at, own.fooled_at) == (told.broken_at, told.fooled_at)
    inv = invariance_profile(model, x, y, [0.0, 45.0])
    assert inv.invariant == invariance_profile(model, x, y, [0.0, 45.0], device="cpu").invariant
    assert all(inv.invariant[0])  # theta 0: every prediction kept
