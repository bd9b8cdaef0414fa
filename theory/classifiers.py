"""Classifiers on D(p, d): the paper's f*, the x0 rule, the Bayes-optimal
clean rule, the exact frontier's rules, and small models (logistic
regression, a one-hidden-layer MLP) trained in numpy plainly, with
r-augmentation, or on A-attacked data.

A classifier maps x (n, 2d+1) to labels (n,) in {-1, +1}. Rules with a
closed form expose `exact(params) -> ExactAccuracy`; others return None.
Every rule here also reads x only through a linear map: `projection`
(2d+1, k) and `decide(x @ projection) -> labels`, so that Monte-Carlo can
score many rules, and the swapped and attacked views, with one product.
"""
from __future__ import annotations

import math
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

    @property
    def projection(self) -> np.ndarray:
        return np.asarray(self.w).reshape(-1, 1)                          # (2d+1, 1)

    def decide(self, proj: np.ndarray) -> np.ndarray:
        return np.where(proj[:, 0] + self.b >= 0, 1, -1).astype(np.int8)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.decide(distribution.matmul(x, self.projection.astype(x.dtype)))

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


def statistic_projection(dim: int) -> np.ndarray:
    """Columns (x0, z): x @ this is `distribution.sufficient_statistic(x)`."""
    d = (dim - 1) // 2
    out = np.zeros((dim, 2))
    out[0, 0] = 1.0
    out[1:, 1] = np.where(np.arange(2 * d) % 2 == 0, 1.0, -1.0) / math.sqrt(2 * d)
    return out                                                            # (2d+1, 2)


@dataclass(frozen=True, eq=False)
class IntervalRule:
    """Predict +1 iff z = sum_t (x_{2t-1} - x_{2t}) / sqrt(2d) lies in
    sets[x0] (x0 = +1 or -1): the form of every optimal rule."""

    name: str
    sets: dict[int, Intervals] = field(repr=False)
    dim: int | None = field(default=None, repr=False)   # 2d + 1, for `projection`

    @property
    def projection(self) -> np.ndarray | None:
        """(x0, z) as columns; None without `dim` (then only `__call__` applies)."""
        return None if self.dim is None else statistic_projection(self.dim)

    def decide(self, proj: np.ndarray) -> np.ndarray:
        x0, z = proj[:, 0].astype(np.float64), proj[:, 1].astype(np.float64)  # (n,), (n,)
        out = np.full(proj.shape[0], -1, dtype=np.int8)
        for sign in (1, -1):
            rows = np.sign(x0) == sign
            hit = np.zeros(proj.shape[0], dtype=bool)
            for lo, hi in self.sets[sign]:
                hit |= (z > lo) & (z < hi)
            out[rows & hit] = 1
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.decide(np.stack(distribution.sufficient_statistic(x), axis=1))

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
    return IntervalRule("bayes_clean", optimal_mixed_sets(params, (1.0, 0.0, 0.0)), params.dim)


def frontier_rules(params: ModelParams) -> tuple[IntervalRule, ...]:
    """Three rules on the exact frontier: best spatial accuracy, best
    adversarial accuracy, and the maximiser of the bound's left side."""
    eps = 1e-9                                     # tie-break toward the Pareto-better rule
    c = bound.coefficient(params.p)
    return (IntervalRule("frontier_spatial", optimal_sets(params, 1.0, eps), params.dim),
            IntervalRule("frontier_adversarial", optimal_sets(params, eps, 1.0), params.dim),
            IntervalRule("frontier_max_lhs", optimal_sets(params, 1.0, c), params.dim))


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


# --- models trained in numpy on samples of D(p, d) -------------------------

KINDS = ("logreg", "mlp")
MODES = ("plain", "r_aug", "adv")
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


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


@dataclass(frozen=True, eq=False)
class MLPRule:
    """A one-hidden-layer ReLU network, sign(w2 . relu(W1 x + b1) + b2)
    (ties to +1), evaluated in float32."""

    name: str
    w1: np.ndarray = field(repr=False)                 # (hidden, 2d+1)
    b1: np.ndarray = field(repr=False)                 # (hidden,)
    w2: np.ndarray = field(repr=False)                 # (hidden,)
    b2: float = 0.0

    @property
    def projection(self) -> np.ndarray:
        return self.w1.T                                                  # (2d+1, hidden)

    def decide(self, proj: np.ndarray) -> np.ndarray:
        hidden = np.maximum(proj + self.b1.astype(proj.dtype), 0)         # (n, hidden)
        score = distribution.matmul(hidden, self.w2.astype(proj.dtype)) + np.float32(self.b2)
        return np.where(score >= 0, 1, -1).astype(np.int8)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.decide(distribution.matmul(x, self.projection.astype(x.dtype)))


def _uniform_init(rng: np.random.RandomState, shape: tuple, fan_in: int) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) in float32 from 24-bit draws of
    MT19937 seeded as `init_genrand(seed)`: the same numbers, in the same
    order, as torch's default `nn.Linear` initialisation after
    `torch.manual_seed(seed)` (up to one float32 rounding)."""
    bound_ = math.sqrt(3.0) * math.sqrt(2.0 / (1.0 + 5.0)) / math.sqrt(fan_in)
    raw = rng.randint(0, 2**32, size=int(np.prod(shape)), dtype=np.uint32)
    unit = (raw & np.uint32((1 << 24) - 1)).astype(np.float32) * np.float32(2.0 ** -24)
    return (unit * np.float32(2 * bound_) - np.float32(bound_)).reshape(shape)


def _init(spec: TrainSpec, dim: int) -> list[np.ndarray]:
    """Initial parameters: weight then bias of each layer, as torch draws them."""
    rng = np.random.RandomState(spec.seed & 0xFFFFFFFF)    # torch keeps the low 32 bits too
    if spec.kind == "logreg":
        return [_uniform_init(rng, (1, dim), dim), _uniform_init(rng, (1,), dim)]
    h = spec.hidden
    return [_uniform_init(rng, (h, dim), dim), _uniform_init(rng, (h,), dim),
            _uniform_init(rng, (1, h), h), _uniform_init(rng, (1,), h)]


def _loss_grads(spec: TrainSpec, theta: list[np.ndarray], xb: np.ndarray, yb: np.ndarray
                ) -> list[np.ndarray]:
    """Gradients of mean softplus(-y * logit) with respect to `theta`."""
    y = yb.astype(np.float32)                                            # (B,)
    if spec.kind == "logreg":
        w, b = theta
        logit = xb @ w[0] + b[0]                                         # (B,)
    else:
        w1, b1, w2, b2 = theta
        pre = distribution.matmul(xb, w1.T) + b1                         # (B, h)
        hidden = np.maximum(pre, 0)
        logit = hidden @ w2[0] + b2[0]                                   # (B,)
    # d/dlogit softplus(-y logit) = -y sigmoid(-y logit)
    g = (-y * (0.5 * (1 + np.tanh(-0.5 * y * logit)))) / np.float32(xb.shape[0])  # (B,)
    if spec.kind == "logreg":
        return [(g @ xb)[None, :], np.array([g.sum()], dtype=np.float32)]
    dh = np.where(pre > 0, g[:, None] * w2[0][None, :], np.float32(0))   # (B, h)
    return [distribution.matmul(dh.T, xb), dh.sum(axis=0), (g @ hidden)[None, :],
            np.array([g.sum()], dtype=np.float32)]


def _adam(spec: TrainSpec, theta: list[np.ndarray], grads_of) -> list[np.ndarray]:
    """`spec.steps` steps of Adam (Kingma and Ba; betas 0.9, 0.999, eps 1e-8,
    torch's update order), float32 throughout."""
    (b1, b2), lr = ADAM_BETAS, spec.lr
    m = [np.zeros_like(t) for t in theta]
    v = [np.zeros_like(t) for t in theta]
    for step in range(1, spec.steps + 1):
        grads = grads_of(theta)
        c1, c2 = 1 - b1 ** step, math.sqrt(1 - b2 ** step)
        for t, g, mt, vt in zip(theta, grads, m, v):
            mt += np.float32(1 - b1) * (g - mt)
            vt *= np.float32(b2)
            vt += np.float32(1 - b2) * g * g
            t -= np.float32(lr / c1) * mt / (np.sqrt(vt) / np.float32(c2) + np.float32(ADAM_EPS))
    return theta


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
    """Minimise the logistic loss with Adam on minibatches drawn from
    `n_train` samples of D(p, d) (in the spec's mode), in numpy. A logistic regression comes
    back as an exact `LinearRule`, an MLP as an `MLPRule`. Seeded: `seed`
    fixes the training set, the batches and the initial weights."""
    rng = np.random.default_rng(spec.seed)
    x, y = distribution.sample(params, spec.n_train, rng)

    def grads_of(theta):
        xb, yb = _batch(spec, params, x, y, rng)
        return _loss_grads(spec, theta, xb, yb)

    theta = _adam(spec, _init(spec, params.dim), grads_of)
    if spec.kind == "logreg":
        w, b = theta
        return LinearRule(spec.name, w[0].astype(np.float64), float(b[0]))
    w1, b1, w2, b2 = theta
    return MLPRule(spec.name, w1, b1, w2[0], float(b2[0]))


def trained_classifiers(params: ModelParams, seed: int = 0, **overrides) -> tuple:
    """Logistic regression and MLP, each trained in all three modes."""
    return tuple(train(TrainSpec(kind, mode, seed=seed + i, **overrides), params)
                 for i, (kind, mode) in enumerate((k, m) for k in KINDS for m in MODES))
