"""The one AUC of the project: the trapezoid area under a curve sampled on a
grid, divided by the grid's range (so a constant curve c has AUC c).

`trapezoid_weights(grid)` gives weights w with AUC = sum_j w_j f(grid_j):
the AUC is linear in the sampled values, so a profile's AUC is the mean of
its test points' per-point AUCs (what the paired bootstraps resample).
"""
from __future__ import annotations

import numpy as np


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
