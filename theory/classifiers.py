"""Classifiers on D(p, d): the paper's f*, the x0 rule, the Bayes-optimal
clean rule, the exact frontier's rules, and small torch models trained
plainly, with r-augmentation, or on A-attacked data.

A classifier maps x (n, 2d+1) to labels (n,) in {-1, +1}. Rules with a
closed form expose `exact(params) -> ExactAccuracy`; others return None.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

from theory import bound, distribution
from theory.distribution import ModelParams
from theory.frontier import (ExactAccuracy, Intervals, combine, interval_accuracy,
                             optimal_mixed_sets, optimal_sets, x0_prob)


@dataclass(frozen=True, eq=False)
class LinearRule:
    """Predict sign(w . x + b) (ties to +1); exact accuracies in closed
    form because w . x given (y, x0) is normal."""

    name: str
    w: np.ndarray = field(repr=False)
    b: float = 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        score = x @ self.w.astype(x.dtype) + self.b                      # (n,)
        return np.where(score >= 0, 1, -1).astype(np.int8)

    def exact(self, params: ModelParams) -> ExactAccuracy:
        wg = np.asarray(self.w[1:], dtype=float)
        signs = np.where(np.arange(wg.size) % 2 == 0, 1.0, -1.0)
        drift = params.shift * float(wg @ signs)       # mean of w_g . g given y = +1, s = 1
        sd = float(np.linalg.norm(wg))

        def positive(mean: float) -> float:            # Pr[w . x + b >= 0]
            return float(ndtr(mean / sd)) if sd > 0 else float(mean >= 0)

        def acc(s: float) -> float:
            total = 0.0
            for y in (1, -1):
                for x0 in (1, -1):
                    up = positive(self.w[0] * x0 + self.b + y * s * drift)
                    total += x0_prob(x0, y, params.p) * (up if y == 1 else 1.0 - up)
            return 0.5 * total
        return combine(params, acc)


@dataclass(frozen=True, eq=False)
class IntervalRule:
    """Predict +1 iff z = sum_t (x_{2t-1} - x_{2t}) / sqrt(2d) lies in
    sets[x0] (x0 = +1 or -1): the form of every optimal rule."""

    name: str
    sets: dict[int, Intervals] = field(repr=False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x0, z = distribution.sufficient_statistic(x)                     # (n,), (n,)
        out = np.full(x.shape[0], -1, dtype=np.int8)
        for sign in (1, -1):
            rows = np.sign(x0) == sign
            hit = np.zeros(x.shape[0], dtype=bool)
            for lo, hi in self.sets[sign]:
                hit |= (z > lo) & (z < hi)
            out[rows & hit] = 1
        return out

    def exact(self, params: ModelParams) -> ExactAccuracy:
        return combine(params, lambda s: interval_accuracy(self.sets, params, s))


def f_star(d: int) -> LinearRule:
    """The paper's f*(x) = sign(sum_t x_{2t-1})."""
    w = np.zeros(2 * d + 1)
    w[1::2] = 1.0
    return LinearRule("f_star", w)


def x0_rule(d: int) -> LinearRule:
    """sign(x0): accuracy p under clean, swapped and attacked inputs alike."""
    w = np.zeros(2 * d + 1)
    w[0] = 1.0
    return LinearRule("x0", w)


def bayes_clean(params: ModelParams) -> IntervalRule:
    """The Bayes-optimal classifier for clean inputs."""
    return IntervalRule("bayes_clean", optimal_mixed_sets(params, (1.0, 0.0, 0.0)))


def frontier_rules(params: ModelParams) -> tuple[IntervalRule, ...]:
    """Three rules on the exact frontier: best spatial accuracy, best
    adversarial accuracy, and the maximiser of the bound's left side."""
    eps = 1e-9                                     # tie-break toward the Pareto-better rule
    return (IntervalRule("frontier_spatial", optimal_sets(params, 1.0, eps)),
            IntervalRule("frontier_adversarial", optimal_sets(params, eps, 1.0)),
            IntervalRule("frontier_max_lhs", optimal_sets(params, 1.0, bound.coefficient(params.p))))


def exact_rules(params: ModelParams) -> tuple:
    """Every classifier with closed-form accuracies."""
    return (f_star(params.d), x0_rule(params.d), bayes_clean(params), *frontier_rules(params))


def exact_of(classifier, params: ModelParams) -> ExactAccuracy | None:
    """Closed-form accuracies when the classifier has them, else None."""
    method = getattr(classifier, "exact", None)
    return method(params) if callable(method) else None


def rule_summary(rule) -> str:
    """One line describing a rule (for tables)."""
    if isinstance(rule, IntervalRule):
        fmt = lambda iv: " u ".join(f"({lo:.3g}, {hi:.3g})" for lo, hi in iv) or "{}"
        return f"x0=+1: z in {fmt(rule.sets[1])}; x0=-1: z in {fmt(rule.sets[-1])}"
    if isinstance(rule, LinearRule):
        return f"sign(w.x + b), |w|={math.sqrt(float(rule.w @ rule.w)):.3g}"
    return type(rule).__name__


# --- models trained in torch on samples of D(p, d) -------------------------

KINDS = ("logreg", "mlp")
MODES = ("plain", "r_aug", "adv")


@dataclass(frozen=True)
class TrainSpec:
    """One trained classifier: model kind, training data mode (plain
    samples, r-augmented samples, or A-attacked samples), and budget."""

    kind: str
    mode: str
    n_train: int = 8192
    steps: int = 300
    batch_size: int = 512
    lr: float = 0.02
    hidden: int = 16
    seed: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}, got {self.kind!r}.")
        if self.mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {self.mode!r}.")

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.mode}"


@contextmanager
def _one_thread():
    """Run torch on one thread, then restore: these models are so small that
    a second thread only spins (and, on a shared machine, triples CPU time)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TorchClassifier:
    """A torch module returning one logit per row, used as a classifier."""

    def __init__(self, name: str, module):
        self.name, self.module = name, module

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch
        with torch.no_grad(), _one_thread():
            out = self.module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))  # (n, 1)
        return np.where(out.reshape(-1).numpy() >= 0, 1, -1).astype(np.int8)


def _build(spec: TrainSpec, dim: int):
    import torch.nn as nn
    if spec.kind == "logreg":
        return nn.Linear(dim, 1)
    return nn.Sequential(nn.Linear(dim, spec.hidden), nn.ReLU(), nn.Linear(spec.hidden, 1))


def _batch(spec: TrainSpec, params: ModelParams, x, y, rng):
    """One training batch in the spec's mode (numpy in, numpy out)."""
    idx = rng.integers(0, x.shape[0], spec.batch_size)
    xb, yb = x[idx], y[idx]                                             # (B, 2d+1), (B,)
    if spec.mode == "r_aug":
        xb = distribution.swap(xb, params, rng)
    elif spec.mode == "adv":
        xb = distribution.perturb(xb, yb, params)
    return xb, yb


def train(spec: TrainSpec, params: ModelParams):
    """Train with logistic loss and Adam on fresh samples of D(p, d); a
    logistic regression comes back as an exact `LinearRule`, an MLP as a
    `TorchClassifier`. Seeded; global torch RNG state is left untouched."""
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(spec.seed)
    x, y = distribution.sample(params, spec.n_train, rng)
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(spec.seed)
        model = _build(spec, params.dim)
        opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
        for _ in range(spec.steps):
            xb, yb = _batch(spec, params, x, y, rng)
            logit = model(torch.from_numpy(xb)).reshape(-1)                   # (B,)
            loss = F.softplus(-torch.from_numpy(yb.astype(np.float32)) * logit).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    if spec.kind == "logreg":
        w = model.weight.detach().double().numpy().reshape(-1)
        return LinearRule(spec.name, w, float(model.bias.detach()))
    return TorchClassifier(spec.name, model)


def trained_classifiers(params: ModelParams, seed: int = 0, **overrides) -> tuple:
    """Logistic regression and MLP, each trained in all three modes."""
    return tuple(train(TrainSpec(kind, mode, seed=seed + i, **overrides), params)
                 for i, (kind, mode) in enumerate((k, m) for k in KINDS for m in MODES))
