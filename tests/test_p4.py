"""Tests for the P4 layers: exact rot90 equivariance and GrouPy's filter semantics."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from empirics.models.p4 import (GroupMaxPool, GroupSpatialMaxPool2d, P4ConvP4, P4ConvZ2,
                                equivariance_error, group_max_pool, p4_act)

# float64 forward passes: the equivariance error is a sum of rounding errors
# of O(fan_in) terms, so 1e-10 is far above float64 noise (~1e-15) and far
# below any real symmetry violation (O(1) for random weights).
TOL64 = 1e-10


def _seeded(seed):
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), cin=st.integers(1, 3), cout=st.integers(1, 3),
       k=st.sampled_from([1, 3, 5]), size=st.integers(5, 12))
def test_p4convz2_equivariant(seed, cin, cout, k, size):
    g = _seeded(seed)
    layer = P4ConvZ2(cin, cout, k, padding=k // 2).double()
    x = torch.randn(2, cin, size, size, generator=g, dtype=torch.float64)
    assert layer(x).shape == (2, cout, 4, size, size)
    assert equivariance_error(layer, x) < TOL64


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), cin=st.integers(1, 3), cout=st.integers(1, 3),
       k=st.sampled_from([1, 3]), size=st.integers(4, 10))
def test_p4convp4_equivariant(seed, cin, cout, k, size):
    g = _seeded(seed)
    layer = P4ConvP4(cin, cout, k).double()
    x = torch.randn(2, cin, 4, size, size, generator=g, dtype=torch.float64)
    assert layer(x).shape == (2, cout, 4, size - k + 1, size - k + 1)
    assert equivariance_error(layer, x) < TOL64


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_direction_of_the_orientation_shift(k):
    # out(T_k x)[:, :, r] = rot90^k(out(x)[:, :, r - k]): checked explicitly per k
    g = _seeded(k)
    layer = P4ConvZ2(2, 3, 3).double()
    x = torch.randn(1, 2, 9, 9, generator=g, dtype=torch.float64)
    y, y_rot = layer(x), layer(torch.rot90(x, k, dims=(2, 3)))
    for r in range(4):
        want = torch.rot90(y[:, :, (r - k) % 4], k, dims=(2, 3))
        assert (y_rot[:, :, r] - want).abs().max() < TOL64
    # the opposite shift is wrong for k = 1, 3 (guards against a sign slip)
    if k in (1, 3):
        wrong = torch.rot90(torch.roll(y, -k, dims=2), k, dims=(3, 4))
        assert (y_rot - wrong).abs().max() > 1e-3


def test_float32_equivariance_of_a_stack():
    # float32: rounding differs between rotated and unrotated sums; 1e-5 is
    # ~100 float32 ulp of activations of order 1
    torch.manual_seed(0)
    net = nn.Sequential(P4ConvZ2(1, 4, 3), nn.ReLU(), P4ConvP4(4, 4, 3), nn.ReLU(),
                        GroupSpatialMaxPool2d(2, 2), P4ConvP4(4, 2, 3))
    x = torch.rand(4, 1, 14, 14)
    assert equivariance_error(net, x) < 1e-5
    assert equivariance_error(nn.Sequential(net, GroupMaxPool()), x) < 1e-5


def test_p4convz2_matches_four_rotated_convolutions():
    # independent oracle: one conv2d per orientation with torch.rot90 of the filter
    torch.manual_seed(1)
    layer = P4ConvZ2(2, 3, 3, stride=1, padding=1).double()
    x = torch.randn(2, 2, 7, 7, dtype=torch.float64)
    want = torch.stack([F.conv2d(x, torch.rot90(layer.weight, r, dims=(2, 3)), layer.bias, padding=1)
                        for r in range(4)], dim=2)  # (B, O, 4, H, W)
    assert torch.allclose(layer(x), want, atol=1e-12)


def _explicit_group_correlation(layer, x):
    """Independent oracle: the group correlation as a sum over input orientations s,
    [x * psi](r) = sum_s x_s * rot90^r(psi_{(s - r) mod 4}) + b."""
    w = layer.weight  # (O, C, 4, k, k)
    return torch.stack([
        sum(F.conv2d(x[:, :, s], torch.rot90(w[:, :, (s - r) % 4], r, dims=(2, 3))) for s in range(4))
        + layer.bias.view(1, -1, 1, 1)
        for r in range(4)], dim=2)  # (B, O, 4, H', W')


def test_p4convp4_matches_explicit_group_correlation():
    torch.manual_seed(2)
    layer = P4ConvP4(2, 3, 3).double()
    x = torch.randn(2, 2, 4, 8, 8, dtype=torch.float64)
    assert torch.allclose(layer(x), _explicit_group_correlation(layer, x), atol=1e-12)


def test_bias_is_shared_across_orientations():
    layer = P4ConvP4(1, 2, 3)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(torch.tensor([1.5, -2.0]))
    y = layer(torch.randn(1, 1, 4, 5, 5))
    assert torch.equal(y[0, 0], torch.full((4, 3, 3), 1.5))
    assert torch.equal(y[0, 1], torch.full((4, 3, 3), -2.0))
    assert P4ConvZ2(1, 2, 3, bias=False).bias is None


@pytest.mark.parametrize("cls, cin, fan_in", [(P4ConvZ2, 8, 8 * 9), (P4ConvP4, 8, 8 * 4 * 9)])
def test_he_init_uses_group_fan_in(cls, cin, fan_in):
    # GrouPy: N(0, sqrt(2 / (in * |H| * k * k))); sample sd of 64*fan_in
    # normal weights is within 5 standard errors sd/sqrt(2n) of the target
    torch.manual_seed(3)
    w = cls(cin, 64, 3).weight.detach().double()
    target = math.sqrt(2.0 / fan_in)
    assert abs(w.std().item() - target) <= 5 * target / math.sqrt(2 * w.numel())


def test_group_spatial_max_pool_per_orientation():
    x = torch.randn(2, 3, 4, 6, 6)
    y = GroupSpatialMaxPool2d(2, 2)(x)
    assert y.shape == (2, 3, 4, 3, 3)
    for r in range(4):
        assert torch.equal(y[:, :, r], F.max_pool2d(x[:, :, r], 2, 2))


def test_group_max_pool_is_max_over_orientations():
    x = torch.randn(2, 3, 4, 5, 5)
    assert torch.equal(group_max_pool(x), torch.maximum(torch.maximum(x[:, :, 0], x[:, :, 1]),
                                                         torch.maximum(x[:, :, 2], x[:, :, 3])))


def test_p4_act_is_a_group_action():
    # T_1 applied four times is the identity; T_1 T_1 = T_2
    x = torch.randn(1, 2, 4, 5, 5)
    y = x
    for _ in range(4):
        y = p4_act(y, 1)
    assert torch.equal(y, x)
    assert torch.equal(p4_act(p4_act(x, 1), 1), p4_act(x, 2))


def test_equivariance_error_detects_a_broken_layer():
    # a plain conv is not P4-equivariant on a lifted map; the check must see it
    torch.manual_seed(4)
    conv = nn.Conv2d(1, 1, 3)
    assert equivariance_error(conv, torch.randn(1, 1, 8, 8)) > 1e-3


def test_equivariance_error_restores_training_mode():
    net = nn.Sequential(P4ConvZ2(1, 2, 3), nn.Dropout(0.5))
    net.train()
    equivariance_error(net, torch.rand(1, 1, 6, 6))
    assert net.training


@pytest.mark.parametrize("kwargs, name", [
    (dict(in_channels=0, out_channels=1, kernel_size=3), "in_channels"),
    (dict(in_channels=1, out_channels=1, kernel_size=0), "kernel_size"),
    (dict(in_channels=1, out_channels=1, kernel_size=3, stride=0), "stride"),
    (dict(in_channels=1, out_channels=1, kernel_size=3, padding=-1), "padding"),
])
def test_layers_validate(kwargs, name):
    with pytest.raises(ValueError, match=name):
        P4ConvP4(**kwargs)


def test_wrong_input_rank_is_rejected():
    with pytest.raises(ValueError, match="P4ConvP4"):
        P4ConvP4(1, 1, 3)(torch.randn(1, 1, 5, 5))
    with pytest.raises(ValueError, match="P4ConvZ2"):
        P4ConvZ2(1, 1, 3)(torch.randn(1, 1, 4, 5, 5))


def test_cached_filter_bank_follows_weight_updates():
    # gradient-free forwards reuse the bank; in-place updates and dtype moves must invalidate it
    torch.manual_seed(5)
    layer = P4ConvP4(2, 2, 3)
    x = torch.randn(1, 2, 4, 6, 6)
    with torch.no_grad():
        layer(x)
        layer.weight.mul_(2.0)
        after = layer(x)
        assert torch.allclose(after, _explicit_group_correlation(layer, x), atol=1e-5)
        layer.double()
        x64 = x.double()
        assert torch.allclose(layer(x64), _explicit_group_correlation(layer, x64), atol=1e-12)
    # with gradients enabled the bank is rebuilt and gradients reach the weight
    layer(x64).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
