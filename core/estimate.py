"""Binomial proportion estimates with exact or score confidence intervals."""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

METHODS = ("wilson", "clopper-pearson")


@dataclass(frozen=True)
class Estimate:
    """A proportion `successes / n` with a two-sided confidence interval."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    successes: int

    @classmethod
    def from_counts(cls, successes: int, n: int, method: str = "wilson",
                    level: float = 0.95) -> "Estimate":
        successes, n = int(successes), int(n)
        if n < 1:
            raise ValueError("`n` must be a positive integer.")
        if not 0 <= successes <= n:
            raise ValueError("`successes` must lie in [0, n].")
        if not 0 < level < 1:
            raise ValueError("`level` must lie in (0, 1).")
        if method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}.")
        # scipy.stats.binomtest: Clopper-Pearson ("exact") and Wilson score.
        kind = "exact" if method == "clopper-pearson" else "wilson"
        ci = stats.binomtest(successes, n).proportion_ci(level, method=kind)
        return cls(successes / n, float(ci.low), float(ci.high), n, successes)

    @property
    def stderr(self) -> float:
        """Plug-in standard error sqrt(p (1 - p) / n)."""
        return math.sqrt(self.value * (1.0 - self.value) / self.n)

    def to_dict(self) -> dict:
        return {"estimate": self.value, "ci": [self.ci_low, self.ci_high],
                "n": self.n, "successes": self.successes}

    @classmethod
    def from_dict(cls, d: dict) -> "Estimate":
        return cls(float(d["estimate"]), float(d["ci"][0]), float(d["ci"][1]),
                   int(d["n"]), int(d["successes"]))
