"""Paired bootstrap, rank correlation and verdict rules of verify.stats."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sstats

from verify import stats


def test_percentile_interval_of_a_known_grid():
    # Replicates 0, 0.001, ..., 1: the 5 % and 95 % quantiles are 0.05 and 0.95
    # by definition of numpy's linear quantile.
    lo, hi = stats.percentile_interval(np.arange(1001) / 1000, level=0.9)
    assert lo == pytest.approx(0.05) and hi == pytest.approx(0.95)


def test_percentile_interval_drops_nan_and_handles_all_nan():
    assert stats.percentile_interval([np.nan, 1.0, 1.0]) == (1.0, 1.0)
    lo, hi = stats.percentile_interval([np.nan, np.nan])
    assert math.isnan(lo) and math.isnan(hi)


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), m=st.integers(3, 8))
def test_rank_correlation_matches_scipy_spearman(seed, m):
    # Independent oracle: scipy.stats.spearmanr, row by row, ties included.
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, m).astype(float) + np.arange(m) * 0.5
    y = rng.integers(0, 3, (5, m)).astype(float)
    got = stats.rank_correlation(x, y)
    for row, rho in zip(y, got):
        want = sstats.spearmanr(x, row).statistic
        assert rho == pytest.approx(0.0 if np.isnan(want) else want, abs=1e-12)


def test_rank_correlation_of_constant_row_is_zero():
    assert stats.rank_correlation([0, 1, 2], [[5.0, 5.0, 5.0]])[0] == 0.0


def test_bootstrap_is_paired_across_models():
    # Two models with identical per-point outcomes must have identical
    # replicates: the same resample is used for every model.
    rng = np.random.default_rng(0)
    v = rng.random(100)
    reps = stats.bootstrap_means(np.stack([v, v, 1 - v]), n_resamples=200, seed=1)
    assert reps.shape == (200, 3)
    assert np.array_equal(reps[:, 0], reps[:, 1])
    np.testing.assert_allclose(reps[:, 0] + reps[:, 2], 1.0, atol=1e-12)


def test_seed_resampling_reproduces_the_seed_variance():
    # Outcomes constant within a seed: all variation is between seeds, and the
    # bootstrap variance of the mean over S resampled seeds is the population
    # variance (ddof=0) over S. With R = 4000 the relative SE of a standard
    # deviation estimate is about 1/sqrt(2R) ~ 1.1 %, so 6 % is > 5 SE.
    offsets = np.array([0.1, 0.5, 0.2, 0.9, 0.4])
    values = np.repeat(offsets[None, :, None], 50, axis=2)  # (1, 5, 50)
    reps = stats.bootstrap_means(values, n_resamples=4000, seed=3)
    want = offsets.std() / math.sqrt(offsets.size)
    assert reps[:, 0].std() == pytest.approx(want, rel=0.06)


def test_effect_interval_coverage_and_null_rho_rate():
    # 150 synthetic sweeps of 4 models whose outcomes are Bernoulli(0.6)
    # independently of the design variable. The effect interval (difference
    # of two means) must cover the true value 0 about 95 % of the time, and
    # the rho interval must exclude 0 about 5 % of the time (its nominal
    # level). Binomial SE of a rate near 0.05 over 150 runs is 0.018;
    # 4 SE = 0.07 allows the percentile bootstrap's small-sample slack.
    rng = np.random.default_rng(11)
    runs, covered, rejected = 150, 0, 0
    for r in range(runs):
        v = rng.random((4, 200)) < 0.6
        t = stats.trend(np.arange(4), v, n_resamples=400, seed=r)
        covered += t.effect.ci_low <= 0.0 <= t.effect.ci_high
        rejected += t.rho.ci_low > 0 or t.rho.ci_high < 0
    assert covered / runs >= 0.95 - 0.07
    assert rejected / runs <= 0.05 + 0.07


def test_trend_of_a_clear_monotone_sweep():
    # Means 0.1, 0.4, 0.7, 0.95 with 500 points: every replicate keeps the
    # order (gaps are > 10 binomial SEs), so rho is exactly 1 with CI [1, 1].
    rng = np.random.default_rng(5)
    p = np.array([0.1, 0.4, 0.7, 0.95])
    v = rng.random((4, 500)) < p[:, None]
    t = stats.trend([0, 60, 120, 180], v, n_resamples=300, seed=0)
    assert t.rho.statistic == 1.0 and t.rho.ci == (1.0, 1.0)
    assert 0.75 < t.effect.ci_low < t.effect.statistic < t.effect.ci_high < 0.95
    assert len(t.means) == 4


def test_paired_difference_uses_the_pairing():
    # b = a + 0.01 exactly: every replicate difference is -0.01.
    a = np.linspace(0, 1, 50)
    d = stats.paired_difference(a, a + 0.01, n_resamples=100)
    assert d.statistic == pytest.approx(-0.01)
    assert d.ci_low == pytest.approx(-0.01) and d.ci_high == pytest.approx(-0.01)


@pytest.mark.parametrize("lo, hi, direction, want", [
    (0.1, 0.5, 1, "HOLDS"), (-0.5, -0.1, 1, "FAILS"), (-0.1, 0.2, 1, "INCONCLUSIVE"),
    (-0.5, -0.1, -1, "HOLDS"), (0.1, 0.5, -1, "FAILS"), (math.nan, 1.0, 1, "INCONCLUSIVE"),
    (0.0, 0.5, 1, "INCONCLUSIVE"),
])
def test_direction_verdict(lo, hi, direction, want):
    assert stats.direction_verdict(lo, hi, direction) == want


@pytest.mark.parametrize("lo, hi, claim, want", [
    (0.3, 0.45, "below", "HOLDS"), (0.55, 0.7, "below", "FAILS"),
    (0.45, 0.55, "below", "INCONCLUSIVE"), (0.85, 0.9, "above", "HOLDS"),
    (0.6, 0.79, "above", "FAILS"),
])
def test_threshold_verdict(lo, hi, claim, want):
    assert stats.threshold_verdict(lo, hi, 0.5 if claim == "below" else 0.8, claim) == want


@pytest.mark.parametrize("call, arg", [
    (lambda: stats.bootstrap_means(np.zeros((2, 3)), n_resamples=5), "n_resamples"),
    (lambda: stats.percentile_interval([1.0], level=1.5), "level"),
    (lambda: stats.trend([0, 1], np.zeros((3, 4))), "x"),
    (lambda: stats.as_outcomes(np.zeros(4)), "values"),
    (lambda: stats.direction_verdict(0, 1, 0), "direction"),
    (lambda: stats.rank_correlation([0, 1], [[1, 2]]), "x"),
])
def test_bad_arguments_are_named(call, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        call()


def test_trend_ratio_divides_out_a_denominator_that_carries_the_trend():
    # robustness exactly half of clean correctness on every point, clean accuracy
    # falling along x: the plain trend falls (rho -1), the ratio has none
    rng = np.random.default_rng(0)
    clean = np.stack([rng.random(400) < p for p in (0.9, 0.8, 0.7, 0.6)]).astype(float)  # (4, n)
    robust = 0.5 * clean
    x = [0, 60, 120, 180]
    assert stats.trend(x, robust, n_resamples=200).rho.statistic == -1.0
    ratio = stats.trend_ratio(x, robust, clean, n_resamples=200)
    assert ratio.rho.statistic == 0.0 and ratio.effect.statistic == 0.0
    assert all(m.statistic == 0.5 and m.ci_low == m.ci_high == 0.5 for m in ratio.means)
    # by hand: per-model mean(num) / mean(den)
    num = rng.random((4, 400))
    got = stats.trend_ratio(x, num, clean, n_resamples=50)
    want = num.mean(axis=1) / clean.mean(axis=1)
    assert np.allclose([m.statistic for m in got.means], want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        stats.trend_ratio(x, num, clean[:, :10])
