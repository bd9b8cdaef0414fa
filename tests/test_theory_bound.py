"""Theorem 1's bound and the sympy check of each proof step."""
import math

import numpy as np
import sympy as sp
from hypothesis import given, settings, strategies as st
from scipy import stats

from theory import bound, classifiers, distribution
from theory.distribution import ModelParams


@settings(max_examples=4, deadline=None)
@given(p=st.floats(0.5, 0.99), d=st.integers(1, 256))
def test_every_proof_step_passes_at_paper_parameters(p, d):
    steps = bound.proof_steps(ModelParams(p, d))
    assert [s.name for s in steps] == ["a_swap_equals_attack", "b_weighted_step",
                                       "c_rearrangement", "d_corollary",
                                       "e_f_star_accuracy", "f_attack_norm"]
    assert all(s.passed for s in steps), [s for s in steps if not s.passed]
    assert bound.theorem_applies(steps)


def test_steps_fail_where_the_proof_does_not_apply():
    by_name = lambda prm: {s.name: s.passed for s in bound.proof_steps(prm)}
    eta = by_name(ModelParams(0.7, 10, eta=0.5))
    assert not eta["a_swap_equals_attack"] and not eta["b_weighted_step"]
    q = by_name(ModelParams(0.7, 10, q=0.3))
    assert q["a_swap_equals_attack"] and not q["c_rearrangement"]
    assert not bound.theorem_applies(bound.proof_steps(ModelParams(0.7, 10, q=0.3)))


@settings(max_examples=25, deadline=None)
@given(p=st.floats(0.5, 0.999))
def test_bound_line_passes_through_the_corner(p):
    # Corollary: spatial = adversarial = p lies exactly on the bound line.
    assert math.isclose(bound.lhs(p, p, p), bound.rhs(p), rel_tol=1e-12)
    assert bound.coefficient(p) >= 0


def test_phi3_sympy_closed_form_and_monte_carlo_agree():
    # sympy: Phi(3) = (1 + erf(3/sqrt(2)))/2 to 30 digits; scipy: norm.cdf(3).
    symbolic = float(sp.N((1 + sp.erf(3 / sp.sqrt(2))) / 2, 30))
    closed = stats.norm.cdf(3.0)
    assert math.isclose(symbolic, closed, rel_tol=1e-14) and closed > 0.99
    params = ModelParams(0.7, 100)
    assert math.isclose(classifiers.f_star(100).exact(params).clean, closed, rel_tol=1e-12)
    step = bound.step_e(params)
    assert step.passed and "0.998650" in step.statement
    # Monte-Carlo accuracy of f*(x) = sign(sum_t x_{2t-1}); tolerance 5 binomial SEs.
    x, y = distribution.sample(params, 200_000, np.random.default_rng(0))
    acc = np.mean(classifiers.f_star(100)(x) == y)
    assert abs(acc - closed) <= 5 * math.sqrt(closed * (1 - closed) / len(y))
