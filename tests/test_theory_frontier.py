"""The exact achievable set of (spatial, adversarial) accuracies."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import integrate, stats

from theory import bound, classifiers, frontier as fr
from theory.distribution import ModelParams


@settings(max_examples=12, deadline=None)
@given(p=st.floats(0.5, 0.99), mu=st.floats(0.2, 5.0), d=st.integers(1, 256))
def test_exact_frontier_never_exceeds_the_bound(p, mu, d):
    # Theorem 1 holds for every mu at eta = 1, q = 1/2; exactness to float rounding.
    front = fr.frontier(ModelParams(p, d, mu=mu), n_lambda=21, n_region=24)
    assert front.max_lhs <= front.rhs + 1e-9
    assert all(bound.lhs(s, a, p) <= front.rhs + 1e-9 for s, a in front.points)
    assert front.min_lhs <= front.max_lhs


def test_theorem_is_tight_at_the_paper_parameters():
    # The x0 rule has all three accuracies equal to p, so it sits on the bound line.
    front = fr.frontier(ModelParams(0.7, 100))
    assert math.isclose(front.max_lhs, front.rhs, rel_tol=1e-12)
    assert front.min_lhs > front.rhs - 1e-4         # the whole frontier lies on the line


def test_bound_fails_for_general_parameters():
    # Away from eta = 1, q = 1/2 the paper's proof does not apply; here its bound is false.
    front = fr.frontier(ModelParams(0.7, 100, mu=1.0, eta=0.3, q=0.2), n_lambda=21)
    assert not front.bound_holds and front.max_lhs > front.rhs + 0.05


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), p=st.floats(0.5, 0.95), eta=st.floats(0, 1.5),
       q=st.floats(0, 1))
def test_no_linear_rule_beats_the_support_point(seed, p, eta, q):
    # Support-function property: for every classifier, spatial + c * adv <= max over the set.
    params = ModelParams(p, 6, eta=eta, q=q)
    rng = np.random.default_rng(seed)
    rule = classifiers.LinearRule("r", rng.standard_normal(13), float(rng.standard_normal()))
    best = fr.support_point(params, 1.0, bound.coefficient(p))
    assert rule.exact(params).lhs <= best.lhs + 1e-9


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), s=st.sampled_from([1.0, -1.0, 0.3]))
def test_interval_accuracy_matches_numerical_integration(seed, s):
    # Independent oracle: integrate the normal density over the intervals with quad.
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.uniform(-4, 4, 4))
    sets = {1: ((-math.inf, cuts[0]), (cuts[1], cuts[2])), -1: ((cuts[3], math.inf),)}
    params = ModelParams(0.8, 4, mu=1.3)
    m = math.sqrt(2) * params.mu

    def prob(iv, mean):
        return sum(integrate.quad(stats.norm(mean).pdf, lo, hi)[0] for lo, hi in iv)
    want = 0.5 * (0.8 * prob(sets[1], s * m) + 0.2 * prob(sets[-1], s * m)
                  + 0.2 * (1 - prob(sets[1], -s * m)) + 0.8 * (1 - prob(sets[-1], -s * m)))
    assert math.isclose(fr.interval_accuracy(sets, params, s), want, abs_tol=1e-8)


def test_f_star_closed_form():
    # Sum_t X_{2t-1} | y ~ N(mu y sqrt(d), d): clean Phi(mu), swapped Phi(-mu),
    # attacked Phi(mu (1 - 2 eta)).
    params = ModelParams(0.7, 30, mu=1.7, eta=0.6, q=0.25)
    ex = classifiers.f_star(30).exact(params)
    phi = stats.norm.cdf
    assert math.isclose(ex.clean, phi(1.7), rel_tol=1e-12)
    assert math.isclose(ex.spatial, 0.75 * phi(1.7) + 0.25 * phi(-1.7), rel_tol=1e-12)
    assert math.isclose(ex.adversarial, phi(1.7 * (1 - 1.2)), rel_tol=1e-12)


def test_bayes_clean_threshold():
    # Likelihood ratio: predict +1 iff x0 log(p/(1-p)) + 2 sqrt(2) mu z > 0.
    params = ModelParams(0.7, 10)
    t = math.log(0.7 / 0.3) / (2 * math.sqrt(2) * 3.0)
    sets = classifiers.bayes_clean(params).sets
    assert sets[1][0][0] == pytest.approx(-t, abs=1e-9) and sets[1][0][1] == math.inf
    assert sets[-1][0][0] == pytest.approx(t, abs=1e-9)


def test_positive_set_handles_several_roots():
    # phi(z) - 0.5 phi(z - 2) - 0.5 phi(z + 2) is positive on one interval around 0.
    means, weights = np.array([0.0, 2.0, -2.0]), np.array([1.0, -0.5, -0.5])
    (lo, hi), = fr.positive_set(means, weights)
    f = lambda z: stats.norm.pdf(z) - 0.5 * stats.norm.pdf(z - 2) - 0.5 * stats.norm.pdf(z + 2)
    assert f(lo) == pytest.approx(0, abs=1e-12) and f(hi) == pytest.approx(0, abs=1e-12)
    assert lo == pytest.approx(-hi) and f(0) > 0
