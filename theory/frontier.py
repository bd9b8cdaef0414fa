"""The exact set of achievable (spatial, adversarial) accuracy pairs.

Every classifier's three accuracies (clean, spatial, adversarial) are matched
by a randomised rule g(x0, z) in [0, 1] on the sufficient statistic
z = sum_t (x_{2t-1} - x_{2t}) / sqrt(2d), whose law given y is N(s m y, 1)
with m = sqrt(2) mu and s = 1 (clean), -1 (swapped), 1 - 2 eta (attacked);
the 2d - 1 Gaussian directions orthogonal to z have a y-free law under all
three. Accuracies are linear in g, so the achievable set is convex and its
support point in a direction (a, b) is the deterministic rule
g = [sum of weighted normal densities > 0], a union of z-intervals for each
x0, whose accuracies are sums of normal CDFs.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize
from scipy.special import ndtr

from theory import bound
from theory.distribution import ModelParams

Intervals = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class ExactAccuracy:
    """Exact accuracies of one classifier and its bound left side."""

    clean: float
    spatial: float
    adversarial: float
    lhs: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ExactAccuracy":
        return cls(**{k: float(d[k]) for k in ("clean", "spatial", "adversarial", "lhs")})


def combine(params: ModelParams, acc) -> ExactAccuracy:
    """Mix per-shift accuracies `acc(s)` into clean / spatial / adversarial."""
    clean, swapped, attacked = acc(1.0), acc(-1.0), acc(1.0 - 2.0 * params.eta)
    spatial = (1.0 - params.q) * clean + params.q * swapped
    return ExactAccuracy(clean, spatial, attacked, bound.lhs(spatial, attacked, params.p))


def x0_prob(x0: int, y: int, p: float) -> float:
    """Pr[X0 = x0 | Y = y]."""
    return p if x0 == y else 1.0 - p


def mass(intervals: Intervals, mean: float) -> float:
    """Pr[N(mean, 1) in the union of disjoint intervals]."""
    return float(sum(ndtr(hi - mean) - ndtr(lo - mean) for lo, hi in intervals))


def interval_accuracy(sets: dict[int, Intervals], params: ModelParams, s: float) -> float:
    """Accuracy of 'predict +1 iff z in sets[x0]' when z | y ~ N(s m y, 1)."""
    m = math.sqrt(2.0) * params.mu
    total = 0.0
    for x0 in (1, -1):
        total += x0_prob(x0, 1, params.p) * mass(sets[x0], s * m)
        total += x0_prob(x0, -1, params.p) * (1.0 - mass(sets[x0], -s * m))
    return 0.5 * total


def _mixture(params: ModelParams, x0: int, weights: tuple[float, float, float]
             ) -> tuple[np.ndarray, np.ndarray]:
    """Means and weights of the normal densities whose weighted sum is the
    gain, from predicting +1 at (x0, z), in w_clean * clean + w_swapped *
    swapped + w_attacked * adversarial accuracy."""
    m = math.sqrt(2.0) * params.mu
    terms: dict[float, float] = {}
    for w, s in zip(weights, (1.0, -1.0, 1.0 - 2.0 * params.eta)):
        for y in (1, -1):
            key = round(s * m * y, 12)
            terms[key] = terms.get(key, 0.0) + y * w * x0_prob(x0, y, params.p)
    keep = {k: v for k, v in terms.items() if abs(v) > 1e-14}
    return np.array(list(keep), dtype=float), np.array(list(keep.values()), dtype=float)


def _scaled(z, means: np.ndarray, weights: np.ndarray):
    """Sign-preserving rescaling of sum_k w_k phi(z - mu_k) (no underflow)."""
    z = np.atleast_1d(np.asarray(z, dtype=float))
    expo = np.log(np.abs(weights))[None, :] - 0.5 * (z[:, None] - means[None, :]) ** 2  # (G, K)
    return (np.sign(weights)[None, :] * np.exp(expo - expo.max(axis=1, keepdims=True))).sum(axis=1)


def positive_set(means: np.ndarray, weights: np.ndarray, step: float = 0.005) -> Intervals:
    """{z : sum_k w_k phi(z - mu_k) > 0} as disjoint intervals. Roots are
    bracketed on a grid over [min mu - 12, max mu + 12] and refined with
    brentq; beyond the grid the sign is the edge's (mass < 1e-30)."""
    if len(weights) == 0:
        return ()
    lo, hi = means.min() - 12.0, means.max() + 12.0
    grid = np.linspace(lo, hi, int((hi - lo) / step) + 2)
    sign = _scaled(grid, means, weights) > 0                        # (G,)
    flips = np.flatnonzero(sign[1:] != sign[:-1])
    f = lambda t: float(_scaled(t, means, weights)[0])
    roots = [optimize.brentq(f, grid[i], grid[i + 1], xtol=1e-13) for i in flips]
    edges = [-math.inf, *roots, math.inf]
    inside = [bool(sign[0]) != (k % 2 == 1) for k in range(len(edges) - 1)]  # flips alternate
    return tuple((edges[k], edges[k + 1]) for k in range(len(edges) - 1) if inside[k])


def optimal_sets(params: ModelParams, a: float, b: float) -> dict[int, Intervals]:
    """The deterministic rule maximising a * spatial + b * adversarial."""
    return optimal_mixed_sets(params, (a * (1 - params.q), a * params.q, b))


def optimal_mixed_sets(params: ModelParams, weights: tuple[float, float, float]
                       ) -> dict[int, Intervals]:
    """The rule maximising a weighted sum of clean, swapped-only and
    attacked accuracy; (1, 0, 0) is the Bayes-optimal clean classifier."""
    return {x0: positive_set(*_mixture(params, x0, weights)) for x0 in (1, -1)}


def support_point(params: ModelParams, a: float, b: float) -> ExactAccuracy:
    sets = optimal_sets(params, a, b)
    return combine(params, lambda s: interval_accuracy(sets, params, s))


@dataclass(frozen=True)
class Frontier:
    """The Pareto frontier (spatial, adversarial) of all classifiers, the
    boundary of the whole achievable region, and the bound's left side."""

    points: tuple[tuple[float, float], ...]
    region: tuple[tuple[float, float], ...]
    max_lhs: float
    min_lhs: float
    rhs: float
    coefficient: float

    @property
    def bound_holds(self) -> bool:
        """The paper's inequality holds for every classifier (exactly)."""
        return self.max_lhs <= self.rhs + 1e-9

    @property
    def slack(self) -> float:
        """rhs - max_lhs: zero when the bound is attained."""
        return self.rhs - self.max_lhs

    def to_dict(self) -> dict:
        return {"points": [list(pt) for pt in self.points], "max_lhs": self.max_lhs,
                "min_lhs": self.min_lhs, "rhs": self.rhs, "coefficient": self.coefficient,
                "bound_holds": self.bound_holds, "slack": self.slack,
                "region": [list(pt) for pt in self.region]}

    @classmethod
    def from_dict(cls, d: dict) -> "Frontier":
        pts = lambda key: tuple((float(s), float(a)) for s, a in d.get(key, []))
        return cls(pts("points"), pts("region"), float(d["max_lhs"]), float(d["min_lhs"]),
                   float(d["rhs"]), float(d["coefficient"]))


def _dedupe(points):
    out = []
    for pt in points:
        if not out or max(abs(pt[0] - out[-1][0]), abs(pt[1] - out[-1][1])) > 1e-12:
            out.append(pt)
    return tuple(out)


def frontier(params: ModelParams, n_lambda: int = 101, n_region: int = 180) -> Frontier:
    """Trace the frontier by maximising lam * spatial + (1 - lam) * adversarial
    for lam in [0, 1] (endpoints nudged by 1e-9 to break ties toward the
    Pareto-better rule) and the region by every direction of the circle."""
    lams = np.linspace(1e-9, 1 - 1e-9, n_lambda)
    pts = [support_point(params, lam, 1 - lam) for lam in lams]
    points = _dedupe((e.spatial, e.adversarial) for e in pts)
    angles = np.linspace(0.0, 2 * math.pi, n_region, endpoint=False) + 1e-7
    region = _dedupe((e.spatial, e.adversarial) for e in
                     (support_point(params, math.cos(t), math.sin(t)) for t in angles))
    c = bound.coefficient(params.p)
    best = support_point(params, 1.0, c)          # argmax of the left side
    lhs_values = [bound.lhs(s, a, params.p) for s, a in points]
    return Frontier(points, region, max(best.lhs, *lhs_values), min(lhs_values),
                    bound.rhs(params.p), c)
