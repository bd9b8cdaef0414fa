"""Estimate intervals against independent formulas."""
import math

import pytest
from hypothesis import given, strategies as st
from scipy import stats

from core.estimate import Estimate


@given(n=st.integers(1, 5000), frac=st.floats(0, 1))
def test_wilson_matches_closed_form(n, frac):
    k = int(round(frac * n))
    est = Estimate.from_counts(k, n, method="wilson")
    # Wilson score interval written out (Wilson 1927), z for a 95 % level.
    z = stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert est.ci_low == pytest.approx(max(0.0, centre - half), abs=1e-9)
    assert est.ci_high == pytest.approx(min(1.0, centre + half), abs=1e-9)
    assert est.ci_low <= est.value <= est.ci_high


@given(n=st.integers(1, 2000), frac=st.floats(0, 1))
def test_clopper_pearson_matches_beta_quantiles(n, frac):
    k = int(round(frac * n))
    est = Estimate.from_counts(k, n, method="clopper-pearson")
    # Clopper-Pearson bounds are Beta quantiles (Clopper & Pearson 1934).
    lo = 0.0 if k == 0 else stats.beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else stats.beta.ppf(0.975, k + 1, n - k)
    assert est.ci_low == pytest.approx(lo, abs=1e-9)
    assert est.ci_high == pytest.approx(hi, abs=1e-9)


def test_round_trip_and_validation():
    est = Estimate.from_counts(37, 50)
    assert Estimate.from_dict(est.to_dict()) == est
    assert est.stderr == pytest.approx(math.sqrt(0.74 * 0.26 / 50))
    with pytest.raises(ValueError, match="`n`"):
        Estimate.from_counts(0, 0)
    with pytest.raises(ValueError, match="`successes`"):
        Estimate.from_counts(5, 4)
    with pytest.raises(ValueError, match="`method`"):
        Estimate.from_counts(1, 4, method="wald")
