"""L-inf attacks in pixel space: a threat model (`LinfBall`) plus one loop.

`pgd` and `fgsm` attack one batch at one eps (a float or one eps per sample).
`pgd_profile` attacks a whole eps grid as one batched computation over
(sample, eps) pairs, dropping a pair as soon as it is fooled.

Conventions (see docs/ARCHITECTURE.md and shared/reference/authors-code.md):
inputs and eps live in [0, 1] pixel space (normalisation is inside the
model), iterates are clamped to [0, 1], the default step size is
2.5 * eps / steps, the model runs in eval mode with parameter gradients off
during an attack and is restored afterwards. Losses are summed over the
batch, so each sample's gradient does not depend on the rest of the batch.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LABELS = ("true", "pred")


# ---------------------------------------------------------------- threat model
@dataclass(frozen=True)
class LinfBall:
    """The set {x : |x - x0|_inf <= eps, 0 <= x <= 1}, one eps per sample."""

    x0: Tensor   # (B, C, H, W)
    eps: Tensor  # (B, 1, 1, 1), same dtype as x0

    def project(self, x: Tensor) -> Tensor:
        # Same operation order as torchattacks.PGD, so iterates agree bit for bit.
        delta = torch.clamp(x - self.x0, min=-self.eps, max=self.eps)
        return torch.clamp(self.x0 + delta, min=0.0, max=1.0)

    def random_perturb(self, generator: torch.Generator | None = None) -> Tensor:
        device = generator.device if generator is not None else self.x0.device
        u = torch.rand(self.x0.shape, generator=generator, device=device,
                       dtype=self.x0.dtype).to(self.x0.device)  # (B, C, H, W)
        return self.project(self.x0 + (2 * u - 1) * self.eps)

    def step(self, x: Tensor, grad: Tensor, step_size: Tensor) -> Tensor:
        """Ascent step along sign(grad), then back into the ball."""
        return self.project(x + step_size * grad.sign())


# ---------------------------------------------------------------- losses
def _cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(logits, y, reduction="none")  # (B,)


def _margin(logits: Tensor, y: Tensor) -> Tensor:
    """Carlini-Wagner margin: best other logit minus the label's logit."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)  # (B,)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return others.amax(1) - z_y  # (B,)


LOSSES = {"ce": _cross_entropy, "margin": _margin}


# ---------------------------------------------------------------- helpers
@contextmanager
def attack_mode(model: nn.Module):
    """Eval mode and no parameter gradients inside; every module's training
    flag and every parameter's requires_grad restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


def _per_sample(value, n: int, like: Tensor, name: str) -> Tensor:
    """A float or (n,) tensor as a float64 (n,) tensor, checked to lie in [0, 1]."""
    t = torch.as_tensor(value, dtype=torch.float64, device=like.device)
    if t.dim() == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"`{name}` must be a float or a tensor of shape ({n},), got {tuple(t.shape)}.")
    if not bool(((t >= 0) & (t <= 1)).all()):
        raise ValueError(f"`{name}` must lie in [0, 1] (pixel space).")
    return t


def _check_args(x: Tensor, steps: int, loss: str, labels: str) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"`steps` must be an integer >= 1, got {steps!r}.")
    if loss not in LOSSES:
        raise ValueError(f"`loss` must be one of {tuple(LOSSES)}, got {loss!r}.")
    if labels not in LABELS:
        raise ValueError(f"`labels` must be one of {LABELS}, got {labels!r}.")
    if x.dim() < 2 or x.numel() == 0:
        raise ValueError("`x` must be a non-empty batch (B, ...).")
    if bool(x.min() < 0) or bool(x.max() > 1):
        raise ValueError("`x` must lie in [0, 1] (pixel space).")


def _step_sizes(step_size, eps: Tensor, steps: int) -> Tensor:
    """Per-sample step sizes, float64: 2.5 * eps / steps unless given."""
    if step_size is None:
        return 2.5 * eps / steps
    t = torch.as_tensor(step_size, dtype=torch.float64, device=eps.device).expand(eps.shape)
    if bool((t < 0).any()):
        raise ValueError("`step_size` must be >= 0.")
    return t


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """Argmax predictions in batches (the caller sets the model's mode)."""
    return torch.cat([model(x[i:i + batch_size]).argmax(1)
                      for i in range(0, len(x), batch_size)])  # (N,)


def _targets(model: nn.Module, x: Tensor, y: Tensor | None, labels: str) -> Tensor:
    if labels == "pred":
        return predict(model, x)
    if y is None or y.shape != (len(x),):
        raise ValueError(f"`y` must be a tensor of shape ({len(x)},) when labels='true'.")
    return y.to(x.device)


# ---------------------------------------------------------------- attacks
def pgd(model: nn.Module, x: Tensor, y: Tensor | None, eps, steps: int = 40,
        step_size=None, random_start: bool = False,
        generator: torch.Generator | None = None, loss: str = "ce",
        labels: str = "true", early_stop: bool = False) -> Tensor:
    """Projected gradient ascent on `loss` in the L-inf ball of radius `eps`.

    eps, step_size: a float or one value per sample, shape (B,).
    labels: "true" attacks `y`; "pred" attacks the model's clean predictions
    (y may then be None). early_stop: freeze a sample at the first iterate
    the model misclassifies (w.r.t. the attacked labels); the result then
    fools the model whenever any iterate did. Returns x_adv, shape of x.
    """
    _check_args(x, steps, loss, labels)
    eps64 = _per_sample(eps, len(x), x, "eps")  # (B,)
    alpha64 = _step_sizes(step_size, eps64, steps)  # (B,)
    view = (-1,) + (1,) * (x.dim() - 1)
    ball = LinfBall(x.detach(), eps64.to(x.dtype).view(view))  # eps: (B, 1, 1, 1)
    alpha = alpha64.to(x.dtype).view(view)  # (B, 1, 1, 1)
    loss_fn = LOSSES[loss]
    with attack_mode(model):
        target = _targets(model, x, y, labels)  # (B,)
        x_adv = ball.random_perturb(generator) if random_start else ball.x0.clone()
        active = torch.ones(len(x), dtype=torch.bool, device=x.device)  # (B,)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            with torch.enable_grad():
                logits = model(x_adv)  # (B, K)
                grad, = torch.autograd.grad(loss_fn(logits, target).sum(), x_adv)
            x_adv = x_adv.detach()
            if early_stop:
                active &= logits.argmax(1) == target
            stepped = ball.step(x_adv, grad, alpha)
            x_adv = torch.where(active.view(view), stepped, x_adv) if early_stop else stepped
    return x_adv


def fgsm(model: nn.Module, x: Tensor, y: Tensor | None, eps, loss: str = "ce",
         labels: str = "true") -> Tensor:
    """Fast gradient sign method: one step of size eps from x, clamped to [0, 1]."""
    return pgd(model, x, y, eps, steps=1, step_size=eps, loss=loss, labels=labels)


# ---------------------------------------------------------------- eps grid
@dataclass(frozen=True)
class PGDProfileResult:
    """Per-sample outcomes of `pgd_profile`; counts per eps are derived.

    broken_at[i]: index of the smallest eps at which sample i is
    misclassified (w.r.t. its true label), len(epsilons) if never.
    fooled_at[i]: the same against the model's clean prediction.
    pair_steps: gradient evaluations actually run, counted per pair (a full
    run of every pair costs len(x) * len(epsilons) * steps, as a loop of `pgd`
    calls does).
    """

    epsilons: tuple[float, ...]
    steps: int
    broken_at: tuple[int, ...]
    fooled_at: tuple[int, ...]
    pair_steps: int

    @property
    def n(self) -> int:
        return len(self.broken_at)

    @property
    def correct(self) -> tuple[int, ...]:
        """Number of samples still correctly classified at each eps."""
        return tuple(sum(b > j for b in self.broken_at) for j in range(len(self.epsilons)))

    @property
    def fooled(self) -> tuple[int, ...]:
        """Number of samples whose prediction the attack changed at each eps."""
        return tuple(sum(f <= j for f in self.fooled_at) for j in range(len(self.epsilons)))


def check_grid(values, name: str) -> tuple[float, ...]:
    """A non-empty, strictly increasing grid in [0, 1], as floats."""
    grid = tuple(float(v) for v in values)
    if not grid:
        raise ValueError(f"`{name}` must not be empty.")
    if any(not 0 <= v <= 1 for v in grid):
        raise ValueError(f"`{name}` must lie in [0, 1] (pixel space).")
    if any(b <= a for a, b in zip(grid, grid[1:])):
        raise ValueError(f"`{name}` must be strictly increasing.")
    return grid


def pgd_profile(model: nn.Module, x: Tensor, y: Tensor, epsilons, steps: int = 40,
                step_size=None, random_start: bool = False,
                generator: torch.Generator | None = None, loss: str = "ce",
                batch_size: int = 500, progress: bool = False) -> PGDProfileResult:
    """PGD over a whole eps grid as one batched computation.

    Every (sample, eps) pair is one row of a pool of at most `batch_size`
    rows, with its own eps and step size (a float, or None for
    2.5 * eps / steps). Pairs are queued smallest eps first, and a sample has
    at most one pair in the pool at a time. A pair leaves the pool as soon as
    an iterate changes the model's prediction, and pairs at larger eps of a
    sample already fooled at a smaller eps never run: the smaller ball lies
    inside the larger one, so counting the sample as fooled there is a valid,
    stronger attack. Freed rows are refilled from the queue, so the work
    done does not depend on `batch_size`.

    One attack per pair serves both metrics: it targets the model's clean
    prediction. For a correctly classified sample that is its true label, so
    accuracy and fooling coincide; a misclassified sample counts as wrong at
    every eps (x itself lies in every ball), and is attacked only so that its
    fooling rate, f(x + A(x)) != f(x), is measured.
    """
    _check_args(x, steps, loss, "true")
    grid = check_grid(epsilons, "epsilons")
    if y is None or y.shape != (len(x),):
        raise ValueError(f"`y` must be a tensor of shape ({len(x)},).")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}.")
    eps64 = torch.tensor(grid, dtype=torch.float64, device=x.device)  # (E,)
    alpha64 = _step_sizes(step_size, eps64, steps)  # (E,)
    with attack_mode(model):
        pred = predict(model, x, batch_size)  # (N,)
        fooled_at, pair_steps = _attack_pairs(
            model, x.detach(), pred, eps64.to(x.dtype), alpha64.to(x.dtype), steps,
            random_start, generator, LOSSES[loss], batch_size, progress)
    broken_at = torch.where(pred == y.to(x.device), fooled_at, 0)  # (N,)
    return PGDProfileResult(grid, steps, tuple(broken_at.tolist()),
                            tuple(fooled_at.tolist()), pair_steps)


@dataclass
class _Pool:
    """The (sample, eps) pairs under attack: sample i, eps index j, steps done k."""

    i: Tensor      # (P,)
    j: Tensor      # (P,)
    k: Tensor      # (P,)
    x_adv: Tensor  # (P, C, H, W)

    def keep(self, mask: Tensor) -> "_Pool":
        return _Pool(self.i[mask], self.j[mask], self.k[mask], self.x_adv[mask])

    def extend(self, other: "_Pool") -> "_Pool":
        return _Pool(*(torch.cat([a, b]) for a, b in
                       zip((self.i, self.j, self.k, self.x_adv),
                           (other.i, other.j, other.k, other.x_adv))))


@dataclass(frozen=True)
class _Grid:
    """The attack's fixed inputs, shared by every step of the pool."""

    x: Tensor        # (N, C, H, W) clean images
    target: Tensor   # (N,) clean predictions
    eps: Tensor      # (E,)
    alpha: Tensor    # (E,) step sizes
    steps: int
    random_start: bool
    loss_fn: object

    def ball(self, i: Tensor, j: Tensor) -> LinfBall:
        view = (-1,) + (1,) * (self.x.dim() - 1)
        return LinfBall(self.x[i], self.eps[j].view(view))  # x0: (P, C, H, W)


@dataclass
class _Schedule:
    """Per sample: the next eps index to attack and whether a pair is in flight."""

    next_j: Tensor  # (N,) long
    busy: Tensor    # (N,) bool
    n_eps: int

    def settle(self, fooled_at: Tensor) -> int:
        """Skip every pending pair of a sample already fooled at a smaller eps
        (the smaller ball lies inside the larger one); return how many."""
        settled = ~self.busy & (fooled_at <= self.next_j) & (self.next_j < self.n_eps)
        skipped = int((self.n_eps - self.next_j[settled]).sum())
        self.next_j[settled] = self.n_eps
        return skipped


def _refill(pool: _Pool, grid: _Grid, sched: _Schedule, fooled_at: Tensor, size: int,
            generator) -> tuple[_Pool, int]:
    """Top the pool up to `size` pairs; return (pool, pairs skipped). Each
    sample has at most one pair in flight, so its smaller eps are settled
    before its larger ones; among free samples the smallest pending eps goes
    first. No sample waits behind a busy one, so the pool stays full while
    there is work."""
    skipped = sched.settle(fooled_at)
    free = size - len(pool.i)
    ready = (~sched.busy & (sched.next_j < sched.n_eps)).nonzero().squeeze(1)  # (R,)
    if free <= 0 or len(ready) == 0:
        return pool, skipped
    order = torch.argsort(sched.next_j[ready] * len(grid.x) + ready)  # eps-major
    i = ready[order[:free]]  # (F,)
    j = sched.next_j[i].clone()  # (F,)
    sched.busy[i] = True
    sched.next_j[i] += 1
    ball = grid.ball(i, j)
    x0 = ball.random_perturb(generator) if grid.random_start else ball.x0.clone()
    return pool.extend(_Pool(i, j, torch.zeros_like(i), x0)), skipped


def _step(model: nn.Module, pool: _Pool, grid: _Grid) -> tuple[Tensor, Tensor]:
    """One PGD step for every pair in the pool (updated in place); returns
    (fooled, done), both (P,) bool: done = fooled or last iterate checked."""
    target = grid.target[pool.i]  # (P,)
    x_adv = pool.x_adv.requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_adv)  # (P, K)
        grad, = torch.autograd.grad(grid.loss_fn(logits, target).sum(), x_adv)
    fooled = logits.argmax(1) != target  # (P,)
    if not grid.random_start:
        fooled &= pool.k > 0  # iterate 0 is x, whose prediction is the target
    alpha = grid.alpha[pool.j].view((-1,) + (1,) * (x_adv.dim() - 1))  # (P, 1, 1, 1)
    pool.x_adv = grid.ball(pool.i, pool.j).step(x_adv.detach(), grad, alpha)
    pool.k = pool.k + 1
    last = ~fooled & (pool.k == grid.steps)  # the final iterate needs a forward pass only
    if bool(last.any()):
        with torch.no_grad():
            fooled[last] = model(pool.x_adv[last]).argmax(1) != target[last]
    return fooled, fooled | last


def _attack_pairs(model, x, target, eps, alpha, steps, random_start, generator,
                  loss_fn, batch_size, progress):
    """Run the pair pool to exhaustion; return (fooled_at (N,), pair_steps)."""
    from tqdm import tqdm

    grid = _Grid(x, target, eps, alpha, steps, random_start, loss_fn)
    n, n_eps = len(x), len(eps)
    fooled_at = torch.full((n,), n_eps, dtype=torch.long, device=x.device)  # (N,)
    first = int((eps <= 0).sum())  # an eps-0 ball holds only x: nothing to attack
    sched = _Schedule(torch.full((n,), first, dtype=torch.long, device=x.device),
                      torch.zeros(n, dtype=torch.bool, device=x.device), n_eps)
    pool = _Pool(sched.next_j[:0], sched.next_j[:0], sched.next_j[:0], x[:0])
    pair_steps = 0
    bar = tqdm(total=n * (n_eps - first), desc="pgd pairs", disable=not progress, leave=False)
    while True:
        pool, skipped = _refill(pool, grid, sched, fooled_at, batch_size, generator)
        bar.update(skipped)
        if len(pool.i) == 0:
            break
        pair_steps += len(pool.i)
        fooled, done = _step(model, pool, grid)
        fooled_at.scatter_reduce_(0, pool.i[fooled], pool.j[fooled], reduce="amin")
        sched.busy[pool.i[done]] = False
        bar.update(int(done.sum()))
        pool = pool.keep(~done)
    bar.close()
    return fooled_at, pair_steps
