"""Sampler for D(p, d), the swap r and the attack A."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from theory import distribution as dist
from theory.distribution import ModelParams


@pytest.mark.parametrize("kwargs, name", [
    ({"p": 0.4, "d": 3}, "p"), ({"p": 1.0, "d": 3}, "p"), ({"p": math.nan, "d": 3}, "p"),
    ({"p": 0.7, "d": 0}, "d"), ({"p": 0.7, "d": 2.5}, "d"), ({"p": 0.7, "d": 3, "q": 1.5}, "q"),
    ({"p": 0.7, "d": 3, "eta": -1}, "eta"), ({"p": 0.7, "d": 3, "mu": -1}, "mu"),
    ({"p": 0.7, "d": 3, "mu": math.inf}, "mu")])
def test_bad_params_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        ModelParams(**kwargs)


@settings(max_examples=10, deadline=None)
@given(p=st.floats(0.5, 0.99), d=st.integers(1, 64), seed=st.integers(0, 2**31))
def test_sample_moments(p, d, seed):
    params = ModelParams(p, d)
    x, y = dist.sample(params, 20_000, np.random.default_rng(seed))
    assert x.shape == (20_000, 2 * d + 1) and set(np.unique(y)) <= {-1, 1}
    assert set(np.unique(x[:, 0])) <= {-1.0, 1.0}
    # Pr[X0 = Y] = p; binomial standard error sqrt(p(1-p)/n).
    agree = np.mean(x[:, 0] == y)
    assert abs(agree - p) <= 5 * math.sqrt(p * (1 - p) / len(y)) + 1e-12
    # y * x_{2t-1} has mean mu/sqrt(d), y * x_{2t} mean -mu/sqrt(d), each with variance 1;
    # pooled over n*d draws the standard error is 1/sqrt(n d).
    se = 1 / math.sqrt(len(y) * d)
    assert abs(np.mean(y[:, None] * x[:, 1::2]) - params.shift) <= 5 * se
    assert abs(np.mean(y[:, None] * x[:, 2::2]) + params.shift) <= 5 * se


def test_stream_is_reproducible_and_sized():
    params = ModelParams(0.7, 5)
    a = list(dist.stream(params, 10_001, seed=3, chunk_size=4096))
    b = list(dist.stream(params, 10_001, seed=3, chunk_size=4096))
    assert [len(y) for _, y, _ in a] == [4096, 4096, 1809]
    assert all(np.array_equal(xa, xb) for (xa, _, _), (xb, _, _) in zip(a, b))
    c = next(dist.stream(params, 10, seed=4))
    assert not np.array_equal(a[0][0][:10], c[0])


def test_attack_norm_and_swap_are_exact():
    params = ModelParams(0.7, 9, mu=3.0, eta=1.0)
    x, y = dist.sample(params, 100, np.random.default_rng(0), dtype=np.float64)
    a = dist.attack(x, y, params)
    assert np.all(a[:, 0] == 0)
    # Paper: ||A(x)||_inf = 6 / sqrt(d) for every x.
    assert np.allclose(np.abs(a[:, 1:]), 6 / math.sqrt(9))
    always = ModelParams(0.7, 9, q=1.0)
    xs = dist.swap(x, always, np.random.default_rng(1))
    assert np.array_equal(xs[:, 1::2], x[:, 2::2]) and np.array_equal(xs[:, 2::2], x[:, 1::2])
    assert np.array_equal(dist.swap(x, ModelParams(0.7, 9, q=0.0), np.random.default_rng(1)), x)


def _swapped_vs_attacked(params, seed, n=20_000):
    rng = np.random.default_rng(seed)
    x1, _ = dist.sample(params, n, rng, dtype=np.float64)
    x2, y2 = dist.sample(params, n, rng, dtype=np.float64)
    always = ModelParams(params.p, params.d, params.mu, params.eta, q=1.0)
    return dist.swap(x1, always, rng), dist.perturb(x2, y2, params)


def test_swapped_and_attacked_samples_pass_two_sample_test():
    # Paper, proof of Theorem 1: at eta = 1, r(X) (when it swaps) has the law of X + A(X).
    # Two-sample KS tests at level 1e-3 on the sufficient statistic z, on x_1 and on a fixed
    # random projection (Bonferroni over three tests: false alarm <= 3e-3 for this seed).
    params = ModelParams(0.7, 16)
    a, b = _swapped_vs_attacked(params, seed=11)
    proj = np.random.default_rng(5).standard_normal(params.dim)
    for fa, fb in ((dist.sufficient_statistic(a)[1], dist.sufficient_statistic(b)[1]),
                   (a[:, 1], b[:, 1]), (a @ proj, b @ proj)):
        assert stats.ks_2samp(fa, fb).pvalue > 1e-3


def test_two_sample_test_rejects_when_eta_is_not_one():
    # Negative control: at eta = 1/2, X + A(X) has z | y ~ N(0, 1), far from N(-sqrt(2) mu y, 1).
    a, b = _swapped_vs_attacked(ModelParams(0.7, 16, eta=0.5), seed=12)
    za, zb = dist.sufficient_statistic(a)[1], dist.sufficient_statistic(b)[1]
    assert stats.ks_2samp(za, zb).pvalue < 1e-6


@pytest.mark.parametrize("cond, factor", [("clean", 1.0), ("swapped", -1.0), ("attacked", -1.0)])
def test_sufficient_statistic_law(cond, factor):
    # z | y ~ N(sqrt(2) mu y s, 1) with s = 1, -1, 1 - 2 eta (= -1 at eta = 1); SE 1/sqrt(n).
    params = ModelParams(0.6, 25, q=1.0)
    rng = np.random.default_rng(2)
    x, y = dist.sample(params, 40_000, rng, dtype=np.float64)
    if cond == "swapped":
        x = dist.swap(x, params, rng)
    elif cond == "attacked":
        x = dist.perturb(x, y, params)
    z = dist.sufficient_statistic(x)[1] * y
    assert abs(z.mean() - factor * math.sqrt(2) * params.mu) <= 5 / math.sqrt(len(z))
    assert abs(z.var() - 1) <= 5 * math.sqrt(2 / len(z))
