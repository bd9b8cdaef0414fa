"""Paired bootstrap intervals for trends and differences across models.

Every model of a sweep is evaluated on the same test points with the same
seeded angles, so a per-test-point outcome array `values` of shape
(M models, S seeds, n points) carries the pairing. One bootstrap replicate
draws the test points (and, when S > 1, the seeds) with replacement, the
same draw for all M models, and recomputes each model's mean. Statistics of
the M means (rank correlation with a design variable, differences between
models) are then read off the replicates; intervals are percentile
intervals. A statistic that is linear in the per-point outcomes (an AUC, an
accuracy) is a mean of per-point contributions, which is what makes the
replicates cheap: a (R, n) weight matrix times the (M, S, n) array.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sstats

VERDICTS = ("HOLDS", "FAILS", "INCONCLUSIVE")


@dataclass(frozen=True)
class Interval:
    """A point statistic with a two-sided percentile bootstrap interval."""

    statistic: float
    ci_low: float
    ci_high: float
    level: float
    n_resamples: int

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)

    def to_dict(self) -> dict:
        return {"statistic": self.statistic, "ci": [self.ci_low, self.ci_high],
                "level": self.level, "n_resamples": self.n_resamples}

    @classmethod
    def from_dict(cls, d: dict) -> "Interval":
        return cls(float(d["statistic"]), float(d["ci"][0]), float(d["ci"][1]),
                   float(d["level"]), int(d["n_resamples"]))


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"`level` must lie in (0, 1), got {level}.")
    return level


def _check_resamples(n_resamples: int) -> int:
    if int(n_resamples) != n_resamples or n_resamples < 10:
        raise ValueError(f"`n_resamples` must be an integer >= 10, got {n_resamples}.")
    return int(n_resamples)


def as_outcomes(values, name: str = "values") -> np.ndarray:
    """Coerce per-point outcomes to float64 (M, S, n); (M, n) gets S = 1."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, None, :]  # (M, 1, n)
    if arr.ndim != 3 or min(arr.shape) < 1:
        raise ValueError(f"`{name}` must have shape (models, [seeds,] points), "
                         f"got {np.shape(values)}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite.")
    return arr


def percentile_interval(replicates, level: float = 0.95) -> tuple[float, float]:
    """Equal-tailed percentile interval of bootstrap replicates (NaNs dropped)."""
    level = _check_level(level)
    reps = np.asarray(replicates, dtype=np.float64).ravel()
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return (math.nan, math.nan)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def _resample_weights(size: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(R, size) bootstrap weights: multinomial counts / size, rows sum to 1."""
    counts = rng.multinomial(size, np.full(size, 1.0 / size), size=n_resamples)  # (R, size)
    return counts / size


def bootstrap_means(values, n_resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """(R, M) replicate means of (M, S, n) outcomes, paired across models.

    Each replicate resamples the n points and the S seeds with replacement,
    the same draw for every model."""
    arr = as_outcomes(values)
    n_resamples = _check_resamples(n_resamples)
    rng = np.random.default_rng(seed)
    _, n_seeds, n_points = arr.shape
    w_points = _resample_weights(n_points, n_resamples, rng)  # (R, n)
    per_seed = np.einsum("msn,rn->rms", arr, w_points)  # (R, M, S)
    if n_seeds == 1:
        return per_seed[:, :, 0]  # (R, M)
    w_seeds = _resample_weights(n_seeds, n_resamples, rng)  # (R, S)
    return np.einsum("rms,rs->rm", per_seed, w_seeds)  # (R, M)


def point_means(values) -> np.ndarray:
    """(M,) means of (M, S, n) outcomes over seeds and points."""
    return as_outcomes(values).mean(axis=(1, 2))


def rank_correlation(x, y) -> np.ndarray:
    """Spearman's rho between x (M,) and each row of y (..., M).

    Ties get average ranks. A row with no spread (all models equal) has no
    trend and gets rho = 0 rather than NaN."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.size < 3:
        raise ValueError(f"`x` must be a 1-D array of at least 3 values, got shape {x.shape}.")
    if y.shape[-1] != x.size:
        raise ValueError(f"`y` must end in {x.size} models, got shape {y.shape}.")
    rx = sstats.rankdata(x)
    rx = (rx - rx.mean()) / np.linalg.norm(rx - rx.mean())
    ry = sstats.rankdata(y, axis=-1)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(ry, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ry @ rx) / norm
    return np.where(norm > 0, rho, 0.0)


@dataclass(frozen=True)
class Trend:
    """Rank correlation of per-model means with a design variable `x`, the
    extreme-to-extreme difference (model at max x minus model at min x), and
    the per-model means, each with a paired percentile bootstrap interval."""

    x: tuple[float, ...]
    rho: Interval
    effect: Interval
    means: tuple[Interval, ...]

    def to_dict(self) -> dict:
        return {"x": list(self.x), "rho": self.rho.to_dict(),
                "effect": self.effect.to_dict(),
                "means": [m.to_dict() for m in self.means]}


def _interval(stat: float, reps: np.ndarray, level: float) -> Interval:
    lo, hi = percentile_interval(reps, level)
    return Interval(float(stat), lo, hi, level, int(np.asarray(reps).shape[0]))


def trend(x, values, n_resamples: int = 2000, seed: int = 0,
          level: float = 0.95) -> Trend:
    """Bootstrap the trend of per-model mean outcomes along `x`.

    x: (M,) design variable (training rotation, training eps), M >= 3.
    values: (M, S, n) or (M, n) per-point outcomes (e.g. per-point AUC
    contributions), paired across models."""
    arr = as_outcomes(values)
    x = _design(x, arr.shape[0])
    level = _check_level(level)
    return _trend_of(x, point_means(arr), bootstrap_means(arr, n_resamples, seed), level)


def _design(x, n_models: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size != n_models:
        raise ValueError(f"`x` must have one value per model ({n_models}), got {x.shape}.")
    return x


def _trend_of(x: np.ndarray, means: np.ndarray, reps: np.ndarray, level: float) -> Trend:
    """Trend of per-model statistics `means` (M,) with replicates `reps` (R, M)."""
    hi_i, lo_i = int(np.argmax(x)), int(np.argmin(x))
    rho = _interval(float(rank_correlation(x, means)), rank_correlation(x, reps), level)
    effect = _interval(means[hi_i] - means[lo_i], reps[:, hi_i] - reps[:, lo_i], level)
    per_model = tuple(_interval(means[m], reps[:, m], level) for m in range(means.shape[0]))
    return Trend(tuple(float(v) for v in x), rho, effect, per_model)


def trend_ratio(x, num, den, n_resamples: int = 2000, seed: int = 0,
                level: float = 0.95) -> Trend:
    """`trend` of the per-model ratio mean(num) / mean(den) (e.g. robustness
    AUC relative to clean accuracy). num, den: (M, S, n) or (M, n) per-point
    outcomes; every bootstrap replicate divides the means of one and the same
    resample of points and seeds, so the denominator's noise is in the interval."""
    a, b = as_outcomes(num), as_outcomes(den)
    if a.shape != b.shape:
        raise ValueError(f"`num` and `den` must have the same shape, got {a.shape} and {b.shape}.")
    x = _design(x, a.shape[0])
    level = _check_level(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = bootstrap_means(a, n_resamples, seed) / bootstrap_means(b, n_resamples, seed)
        means = point_means(a) / point_means(b)  # (M,)
    return _trend_of(x, means, reps, level)


def paired_difference(a, b, n_resamples: int = 2000, seed: int = 0,
                      level: float = 0.95) -> Interval:
    """mean(a) - mean(b) for paired per-point outcomes a, b of shape (S, n)
    or (n,), with a paired percentile bootstrap interval."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"`a` and `b` must have the same shape, got {a.shape} and {b.shape}.")
    if a.ndim == 1:
        a, b = a[None, :], b[None, :]  # (1, n)
    level = _check_level(level)
    reps = bootstrap_means(np.stack([a, b]), n_resamples, seed)  # (R, 2)
    stat = float(a.mean() - b.mean())
    return _interval(stat, reps[:, 0] - reps[:, 1], level)


def direction_verdict(ci_low: float, ci_high: float, direction: int) -> str:
    """HOLDS if the interval excludes 0 on the claimed side (`direction` +1:
    positive, -1: negative), FAILS if it excludes 0 on the other side,
    INCONCLUSIVE otherwise (including NaN bounds)."""
    if direction not in (1, -1):
        raise ValueError(f"`direction` must be +1 or -1, got {direction}.")
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return "INCONCLUSIVE"
    lo, hi = direction * ci_low, direction * ci_high
    lo, hi = min(lo, hi), max(lo, hi)
    if lo > 0:
        return "HOLDS"
    if hi < 0:
        return "FAILS"
    return "INCONCLUSIVE"


def threshold_verdict(ci_low: float, ci_high: float, threshold: float,
                      claim: str) -> str:
    """Verdict on "value < threshold" (claim="below") or "value > threshold"
    (claim="above"): HOLDS when the whole interval is on the claimed side,
    FAILS when it is wholly on the other side, else INCONCLUSIVE."""
    if claim not in ("below", "above"):
        raise ValueError(f"`claim` must be 'below' or 'above', got {claim!r}.")
    direction = 1 if claim == "above" else -1
    return direction_verdict(ci_low - threshold, ci_high - threshold, direction)
