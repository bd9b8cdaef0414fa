"""Monte-Carlo accuracies (clean, spatial, adversarial) and the bound's left
side for any classifier, streamed over chunks of D(p, d) so memory stays at
one chunk for any n. All classifiers passed together see the same samples.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
from tqdm import tqdm

from theory import bound, distribution
from theory.distribution import DEFAULT_CHUNK, ModelParams
from core.estimate import Estimate


@dataclass(frozen=True)
class LhsEstimate:
    """The bound's left side spatial + c * adversarial with a conservative
    interval: the sum of the two binomial intervals, each at level
    1 - (1 - level) / 2 (Bonferroni, valid under any dependence)."""

    value: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict:
        return {"estimate": self.value, "ci": [self.ci_low, self.ci_high], "n": self.n}

    @classmethod
    def from_dict(cls, d: dict) -> "LhsEstimate":
        return cls(float(d["estimate"]), float(d["ci"][0]), float(d["ci"][1]), int(d["n"]))


@dataclass(frozen=True)
class Accuracies:
    """Monte-Carlo accuracies of one classifier on n samples."""

    clean: Estimate
    spatial: Estimate
    adversarial: Estimate
    lhs: LhsEstimate

    def to_dict(self) -> dict:
        return {k: getattr(self, k).to_dict() for k in ("clean", "spatial", "adversarial", "lhs")}

    @classmethod
    def from_dict(cls, d: dict) -> "Accuracies":
        return cls(*(Estimate.from_dict(d[k]) for k in ("clean", "spatial", "adversarial")),
                   LhsEstimate.from_dict(d["lhs"]))

    def violates(self, rhs: float) -> bool:
        """The left side's interval lies wholly above the bound."""
        return self.lhs.ci_low > rhs


def as_predictor(classifier) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy callable (x (n, 2d+1) -> labels (n,) in {-1, +1}); a torch
    module returning one logit per row (or a score (n,)) is wrapped."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(classifier, torch.nn.Module):
        def predict(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                out = classifier(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
            return np.where(out.reshape(x.shape[0], -1)[:, 0].numpy() >= 0, 1, -1)
        return predict
    if not callable(classifier):
        raise TypeError("`classifier` must be callable (numpy array -> labels) or a torch module.")
    return classifier


def _correct(predict, x: np.ndarray, y: np.ndarray) -> int:
    labels = np.asarray(predict(x)).reshape(-1)                          # (n,)
    if labels.shape[0] != y.shape[0]:
        raise ValueError(f"`classifier` returned {labels.shape[0]} labels for {y.shape[0]} rows.")
    return int(np.count_nonzero(labels == y))


def _accuracies(counts: np.ndarray, n: int, p: float, method: str, level: float) -> Accuracies:
    clean, spatial, adv = (Estimate.from_counts(int(k), n, method, level) for k in counts)
    half = 1 - (1 - level) / 2
    s2, a2 = (Estimate.from_counts(int(k), n, method, half) for k in counts[1:])
    c = bound.coefficient(p)
    lhs = LhsEstimate(bound.lhs(spatial.value, adv.value, p), s2.ci_low + c * a2.ci_low,
                      s2.ci_high + c * a2.ci_high, n)
    return Accuracies(clean, spatial, adv, lhs)


def _projected(classifier) -> bool:
    """The classifier reads x only through `x @ classifier.projection`."""
    return (callable(getattr(classifier, "decide", None))
            and getattr(classifier, "projection", None) is not None)


class _Projections:
    """The projections of several rules side by side, (2d+1, K) float32
    (identical ones stored once), and each rule's columns."""

    def __init__(self, rules: Mapping[str, object], params: ModelParams):
        blocks, where, seen, width = [], {}, {}, 0
        for name, rule in rules.items():
            m = np.asarray(rule.projection, dtype=np.float32)
            if m.shape[0] != params.dim:
                raise ValueError(f"`{name}` projects {m.shape[0]} coordinates, D(p, d) has {params.dim}.")
            key = (m.shape, m.tobytes())
            if key not in seen:
                seen[key] = slice(width, width + m.shape[1])
                blocks.append(m)
                width += m.shape[1]
            where[name] = seen[key]
        self.rules, self.where = rules, where
        self.clean = np.concatenate(blocks, axis=1) if blocks else np.zeros((params.dim, 0), np.float32)
        self.swapped = self.clean[distribution.pair_swap_index(params.dim)]   # rows of r(x) . M
        self.shift = distribution.attack_direction(params) @ self.clean       # (K,): A(x) . M at y = +1

    def counts(self, x: np.ndarray, y: np.ndarray, swapped: np.ndarray) -> dict[str, list[int]]:
        """Correct predictions of each rule on x, r(x) and x + A(x)."""
        clean = distribution.matmul(x, self.clean)                        # (m, K)
        spatial = clean.copy()
        rows = np.flatnonzero(swapped)
        spatial[rows] = distribution.matmul(x[rows], self.swapped)
        attacked = clean + y[:, None].astype(np.float32) * self.shift[None, :]
        return {name: [int(np.count_nonzero(rule.decide(v[:, self.where[name]]) == y))
                       for v in (clean, spatial, attacked)]
                for name, rule in self.rules.items()}


def _views(x: np.ndarray, y: np.ndarray, swapped: np.ndarray, params: ModelParams):
    """x, r(x) (the rows in `swapped` have every pair exchanged) and x + A(x)."""
    out = x.copy()
    rows = np.flatnonzero(swapped)
    out[rows] = x[rows][:, distribution.pair_swap_index(x.shape[1])]
    return x, out, distribution.perturb(x, y, params)


def estimate_many(classifiers: Mapping[str, object], params: ModelParams, n: int,
                  seed: int = 0, chunk_size: int = DEFAULT_CHUNK, method: str = "wilson",
                  level: float = 0.95, progress: bool = False) -> dict[str, Accuracies]:
    """Accuracies of every classifier on the same n streamed samples: clean
    X, r(X) (fresh swap per row) and X + A(X). Rules with a `projection`
    (every rule in `theory.classifiers`) are scored together from one
    product per chunk (r and A act linearly); any other callable or torch
    module sees the three views themselves."""
    projected = _Projections({k: c for k, c in classifiers.items() if _projected(c)}, params)
    predictors = {name: as_predictor(c) for name, c in classifiers.items()
                  if name not in projected.rules}
    counts = {name: np.zeros(3, dtype=np.int64) for name in classifiers}
    chunks = distribution.stream(params, n, seed, chunk_size)
    if progress:
        chunks = tqdm(chunks, total=-(-n // chunk_size), desc="monte-carlo", unit="chunk",
                      leave=False, file=sys.stderr)
    for x, y, rng in chunks:
        swapped = distribution.swap_rows(x.shape[0], params, rng)
        if projected.rules:
            for name, k in projected.counts(x, y, swapped).items():
                counts[name] += k
        if predictors:
            views = _views(x, y, swapped, params)
            for name, predict in predictors.items():
                counts[name] += [_correct(predict, v, y) for v in views]
    return {name: _accuracies(k, n, params.p, method, level) for name, k in counts.items()}


def estimate(classifier, params: ModelParams, n: int, seed: int = 0, **kwargs) -> Accuracies:
    """Accuracies of one classifier (see `estimate_many`)."""
    return estimate_many({"f": classifier}, params, n, seed, **kwargs)["f"]
