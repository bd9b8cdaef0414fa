"""The one AUC of the project: the trapezoid area under a curve sampled on a
grid, divided by the grid's range (so a constant curve c has AUC c).

`trapezoid_weights(grid)` gives weights w with AUC = sum_j w_j f(grid_j):
the AUC is linear in the sampled values, so a profile's AUC is the mean of
its test points' per-point AUCs (what the paired bootstraps resample).

- `invariance_points`, `robustness_points`: the (n,) per-point AUCs of a
  profile's per-point outcomes (what figures and checks both read).
- `interval(points)`: one profile's AUC with its 95 % interval (normal,
  over test points); the report's comparisons between profiles resample
  the same per-point AUCs (`verify.stats`).
"""
from __future__ import annotations

import math

import numpy as np

from core.outcomes import correct_by_eps

Z95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975)


def trapezoid_weights(grid) -> np.ndarray:
    """(K,) weights of the normalised trapezoid rule on an increasing `grid`
    (a one-point grid weighs its value 1)."""
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or g.size < 1 or np.any(np.diff(g) <= 0):
        raise ValueError("`grid` must be a non-empty, strictly increasing sequence.")
    if g.size == 1:
        return np.ones(1)
    h = np.diff(g) / (2.0 * (g[-1] - g[0]))  # (K-1,)
    w = np.zeros(g.size)
    w[:-1] += h
    w[1:] += h
    return w


def auc(grid, values) -> np.ndarray:
    """Normalised AUC of `values` (K,) or of each column of (K, n) on `grid` (K,)."""
    v = np.asarray(values, dtype=np.float64)
    w = trapezoid_weights(grid)
    if v.shape[0] != w.size:
        raise ValueError(f"values must have one row per grid value ({w.size}), got {v.shape[0]}.")
    return np.tensordot(w, v, axes=(0, 0))


def per_point(grid, rows, name: str = "grid") -> np.ndarray:
    """(n,) per-point normalised AUCs of outcome rows (K, n) on `grid` (K >= 2
    increasing values); ValueError naming `name` otherwise."""
    grid = np.asarray(grid, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) <= 0):
        raise ValueError(f"`{name}` must be an increasing grid of at least 2 values.")
    if rows.ndim != 2 or rows.shape[0] != grid.size:
        raise ValueError(f"outcomes must have one row per `{name}` value "
                         f"({grid.size}), got shape {rows.shape}.")
    return auc(grid, rows)


def invariance_points(thetas, invariant) -> np.ndarray:
    """(n,) per-point contributions to the invariance-profile AUC.

    invariant: (n_thetas, n) bool. Their mean is the trapezoid area under the
    profile normalised by the theta range (the AUC is linear in the rates)."""
    inv = np.asarray(invariant, dtype=np.float64)
    if inv.ndim != 2:
        raise ValueError(f"`invariant` must be (n_thetas, n), got shape {inv.shape}.")
    return per_point(thetas, inv, "thetas")


def robustness_points(epsilons, broken_at) -> np.ndarray:
    """(n,) per-point contributions to the robustness-profile (accuracy) AUC:
    point i is correct at eps index j iff broken_at[i] > j."""
    eps = np.asarray(epsilons, dtype=np.float64)
    return per_point(eps, correct_by_eps(broken_at, eps.size), "epsilons")


def interval(points) -> tuple[float, float, float]:
    """(AUC, low, high): the mean of per-point AUCs and its normal 95 %
    interval over test points."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 1 or p.size < 1:
        raise ValueError("`points` must be a non-empty (n,) array of per-point AUCs.")
    mean = float(p.mean())
    sd = float(p.std(ddof=1)) if p.size > 1 else 0.0
    half = Z95 * sd / math.sqrt(p.size)
    return mean, mean - half, mean + half
