"""Theorem 1 of the paper: the bound and a symbolic check of each proof step.

For every classifier f on D(p, d) with the paper's r and A,
    Pr[f(rX) = Y] + (2p - 1) / (2 (1 - p)) * Pr[f(X + A) = Y] <= p / (2 (1 - p)),
and so both accuracies >= 1 - delta forces 1 - delta <= p (the corollary).
`proof_steps(params)` re-derives each step with sympy at the given
(mu, eta, q) and says which hold; away from (mu, eta, q) = (3, 1, 1/2)
steps (a)-(c) fail and the theorem no longer applies.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import sympy as sp
from sympy.stats import P, Normal

from theory.distribution import ModelParams


def coefficient(p: float) -> float:
    """(2p - 1) / (2 (1 - p)), the weight of adversarial accuracy."""
    return (2 * p - 1) / (2 * (1 - p))


def rhs(p: float) -> float:
    """p / (2 (1 - p)), the bound's right side."""
    return p / (2 * (1 - p))


def lhs(spatial: float, adversarial: float, p: float) -> float:
    """The bound's left side for a classifier's two accuracies."""
    return spatial + coefficient(p) * adversarial


@dataclass(frozen=True)
class ProofStep:
    """One step of the proof: what it claims, the sympy residual that must
    vanish (or be >= 0 where stated) at the given parameters, the verdict."""

    name: str
    statement: str
    residual: str
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ProofStep":
        return cls(str(d["name"]), str(d["statement"]), str(d["residual"]), bool(d["passed"]))


def _symbols():
    p = sp.Symbol("p", positive=True)
    d = sp.Symbol("d", positive=True, integer=True)
    y = sp.Symbol("y", nonzero=True)
    return sp, p, d, y


def _subs(params: ModelParams):
    return {sp.Symbol("mu"): sp.nsimplify(params.mu), sp.Symbol("eta"): sp.nsimplify(params.eta),
            sp.Symbol("q"): sp.nsimplify(params.q)}


def step_a(params: ModelParams) -> ProofStep:
    """(a) r(X), when it swaps, has the law of X + A(X): one pair's means and
    covariance, G_y being Gaussian so these two determine the law."""
    sp, p, d, y = _symbols()
    mu, eta = sp.symbols("mu eta")
    mean = sp.Matrix([mu * y / sp.sqrt(d), -mu * y / sp.sqrt(d)])
    swap = sp.Matrix([[0, 1], [1, 0]])
    shift = sp.Matrix([-2 * eta * mu * y / sp.sqrt(d), 2 * eta * mu * y / sp.sqrt(d)])
    mean_res = (swap * mean - (mean + shift)).subs(_subs(params)).applyfunc(sp.simplify)
    cov_res = swap * sp.eye(2) * swap.T - sp.eye(2)     # A is constant given y
    ok = mean_res.is_zero_matrix and cov_res.is_zero_matrix
    return ProofStep("a_swap_equals_attack",
                     "r(X) with the swap has the law of X + A(X) (pair means and covariance)",
                     f"mean {list(mean_res)}, cov {list(cov_res)}", bool(ok))


def step_b(params: ModelParams) -> ProofStep:
    """(b) Pr[f(X+A) != Y] >= (1-p)/p Pr[f(X) = Y]. With u_y = Pr[f(y, G_-y)
    = -y], v_y = Pr[f(-y, G_-y) = -y] the two sides differ by
    (2p - 1)/(2p) (u_1 + u_-1) >= 0; this needs X + A to carry G_y to G_-y."""
    sp, p, d, y = _symbols()
    u1, um, v1, vm = sp.symbols("u1 um v1 vm", nonnegative=True)
    left = sp.Rational(1, 2) * (p * u1 + (1 - p) * v1 + p * um + (1 - p) * vm)
    right = (1 - p) / (2 * p) * ((1 - p) * u1 + p * v1 + (1 - p) * um + p * vm)
    gap = sp.simplify(left - right - (2 * p - 1) / (2 * p) * (u1 + um))
    weight = sp.nsimplify(params.p)
    nonneg = bool(((2 * p - 1) / (2 * p)).subs(p, weight) >= 0)
    mu, eta = sp.symbols("mu eta")
    carry = sp.simplify((mu * y * (1 - 2 * eta) / sp.sqrt(d) - (-mu * y / sp.sqrt(d))).subs(_subs(params)))
    ok = gap == 0 and nonneg and carry == 0
    return ProofStep("b_weighted_step",
                     "Pr[f(X+A)!=Y] - (1-p)/p Pr[f(X)=Y] = (2p-1)/(2p)(u_1+u_-1) >= 0",
                     f"gap {gap}, weight (2p-1)/(2p) >= 0: {nonneg}, mean(X+A|y) - mean(G_-y) {carry}",
                     bool(ok))


def step_c(params: ModelParams) -> ProofStep:
    """(c) spatial = (1-q) clean + q adv and clean <= p (1 - adv) / (1 - p)
    rearrange to spatial + c adv <= p / (2(1-p)) for every adv in [0, 1]."""
    sp, p, d, y = _symbols()
    a, q = sp.Symbol("a"), sp.Symbol("q")
    clean_max = p * (1 - a) / (1 - p)
    spatial = (1 - q) * clean_max + q * a
    c = (2 * p - 1) / (2 * (1 - p))
    excess = sp.simplify((spatial + c * a - p / (2 * (1 - p))).subs(q, sp.nsimplify(params.q)))
    pv = sp.nsimplify(params.p)
    at = [excess.subs({p: pv, a: v}) for v in (0, 1)]       # linear in a: ends suffice
    ok = all(sp.simplify(v) <= 0 for v in at) and params.eta == 1.0
    return ProofStep("c_rearrangement",
                     "(1-q) p(1-a)/(1-p) + q a + c a - p/(2(1-p)) <= 0 on a in [0,1]",
                     f"excess {excess} (at a=0,1: {[sp.nsimplify(v) for v in at]})",
                     bool(ok))


def step_d(params: ModelParams) -> ProofStep:
    """(d) both accuracies >= 1 - delta implies (1 - delta)(1 + c) <= rhs,
    i.e. 1 - delta <= rhs / (1 + c) = p."""
    sp, p, d, y = _symbols()
    c = (2 * p - 1) / (2 * (1 - p))
    res = sp.simplify(p / (2 * (1 - p)) / (1 + c) - p)
    return ProofStep("d_corollary", "rhs / (1 + c) = p, so 1 - delta <= p",
                     str(res), bool(res == 0))


def step_e(params: ModelParams) -> ProofStep:
    """(e) Pr[f*(X) = Y] = Phi(mu): sum_t X_{2t-1} | Y=1 ~ N(mu sqrt(d), d);
    at mu = 3 this is Phi(3) > 0.99."""
    sp, p, d, y = _symbols()
    mu = sp.Symbol("mu", positive=True)
    s = Normal("S", mu * sp.sqrt(d), sp.sqrt(d))
    acc = sp.simplify(P(s > 0))
    phi = (1 + sp.erf(mu / sp.sqrt(2))) / 2
    res = sp.simplify((acc - phi).rewrite(sp.erf))
    value = phi.subs(mu, sp.nsimplify(params.mu))
    ok = res == 0 and (params.mu != 3.0 or sp.N(value, 30) > sp.Rational(99, 100))
    return ProofStep("e_f_star_accuracy", f"Pr[f*(X)=Y] = Phi(mu) = {float(sp.N(value, 20)):.6f}",
                     str(res), bool(ok))


def step_f(params: ModelParams) -> ProofStep:
    """(f) ||A(x)||_inf = 2 eta mu / sqrt(d), the paper's 6 / sqrt(d) at
    mu = 3, eta = 1 (the statement says which)."""
    sp, p, d, y = _symbols()
    mu, eta = sp.symbols("mu eta", nonnegative=True)
    coords = [sp.Abs(sign * 2 * eta * mu * lab / sp.sqrt(d)) for sign in (-1, 1) for lab in (-1, 1)]
    norm = sp.Max(*coords)
    at = {mu: sp.nsimplify(params.mu), eta: sp.nsimplify(params.eta)}
    res = sp.simplify((norm - 2 * eta * mu / sp.sqrt(d)).subs(at))
    paper = sp.simplify(norm.subs(at) - 6 / sp.sqrt(d)) == 0
    return ProofStep("f_attack_norm",
                     f"||A(x)||_inf = 2 eta mu/sqrt(d) = {norm.subs(at)}"
                     f" ({'equals' if paper else 'differs from'} the paper's 6/sqrt(d))",
                     str(res), bool(res == 0))


STEPS = (step_a, step_b, step_c, step_d, step_e, step_f)
# The bound itself rests on (a)-(d); (e) and (f) are the paper's side facts.
BOUND_STEPS = ("a_swap_equals_attack", "b_weighted_step", "c_rearrangement", "d_corollary")


def proof_steps(params: ModelParams) -> tuple[ProofStep, ...]:
    """Every step of the paper's proof, checked with sympy at `params`."""
    return tuple(step(params) for step in STEPS)


def theorem_applies(steps: tuple[ProofStep, ...]) -> bool:
    """True when every step the bound rests on holds at these parameters."""
    return all(s.passed for s in steps if s.name in BOUND_STEPS)
