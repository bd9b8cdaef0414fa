"""L-inf attacks in pixel space: a threat model (`LinfBall`) plus one loop.

`pgd` and `fgsm` attack one batch at one eps (a float or one eps per sample).
`pgd_profile` attacks a whole eps grid as one batched computation over
(sample, eps) pairs, dropping a pair as soon as it is fooled.

Conventions (docs/ARCHITECTURE.md):
inputs and eps live in [0, 1] pixel space (normalisation is inside the
model), iterates are clamped to [0, 1], the default step size is
2.5 * eps / steps, the model runs in eval mode with parameter gradients off
during an attack and is restored afterwards. Losses are summed over the
batch, so each sample's gradient does not depend on the rest of the batch.

Devices: every attack computes on the model's device (`model_device`,
`empirics.inference`, which also owns `attack_mode` and `predict`) and
accepts inputs on any device; `pgd` and `fgsm` return on the input's device.
Inputs are validated once per call; the steps themselves read nothing back
to the host (on CUDA no step waits for the GPU), except where noted in
`pgd_profile`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from core.grids import check_grid
from empirics.inference import attack_mode, model_device, predict, to_device

LABELS = ("true", "pred")


# ---------------------------------------------------------------- threat model
@dataclass(frozen=True)
class LinfBall:
    """The set {x : |x - x0|_inf <= eps, 0 <= x <= 1}, one eps per sample."""

    x0: Tensor   # (B, C, H, W)
    eps: Tensor | float  # (B, 1, 1, 1), same dtype as x0; or one value for all

    def project(self, x: Tensor) -> Tensor:
        # Same operation order as torchattacks.PGD, so iterates agree bit for bit.
        delta = torch.clamp(x - self.x0, min=-self.eps, max=self.eps)
        return torch.clamp(self.x0 + delta, min=0.0, max=1.0)

    def random_perturb(self, generator: torch.Generator | None = None) -> Tensor:
        device = generator.device if generator is not None else self.x0.device
        u = to_device(torch.rand(self.x0.shape, generator=generator, device=device,
                                 dtype=self.x0.dtype), self.x0.device)  # (B, C, H, W)
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
def _per_sample(value, n: int, like: Tensor, name: str, validate: bool = True) -> Tensor:
    """A float or (n,) tensor as a float64 (n,) tensor on like's device,
    checked to lie in [0, 1] (a float on the host; a tensor with one
    read-back, skipped when `validate` is False)."""
    if not isinstance(value, (int, float)):
        t = torch.as_tensor(value).detach().to(torch.float64)
        t = to_device(t, like.device)
    else:
        v = float(value)
        if not 0 <= v <= 1:
            raise ValueError(f"`{name}` must lie in [0, 1] (pixel space).")
        return to_device(torch.full((n,), v, dtype=torch.float64), like.device)
    if t.dim() == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"`{name}` must be a float or a tensor of shape ({n},), got {tuple(t.shape)}.")
    if validate and not bool(((t >= 0) & (t <= 1)).all()):
        raise ValueError(f"`{name}` must lie in [0, 1] (pixel space).")
    return t


def laid_out(x: Tensor, memory_format: torch.memory_format) -> Tensor:
    """`x` (same values) in `memory_format`. For a one-channel batch, whose
    contiguous strides are ambiguous, channels-last strides are set
    explicitly so that convolutions see NHWC and keep it in their outputs."""
    if memory_format is torch.contiguous_format:
        return x
    if memory_format is not torch.channels_last or x.dim() != 4:
        raise ValueError(f"`memory_format` must be torch.contiguous_format or "
                         f"torch.channels_last (4-d input), got {memory_format}.")
    b, c, h, w = x.shape
    nhwc = (c * h * w, 1, w * c, c)
    if x.stride() == nhwc:
        return x
    return torch.empty_strided(x.shape, nhwc, dtype=x.dtype, device=x.device).copy_(x)  # (B, C, H, W)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _rounded(v: float, dtype: torch.dtype) -> float:
    """`v` rounded to `dtype`, as a Python float (exact), computed on the host."""
    return float(torch.tensor(v, dtype=torch.float64).to(dtype))


def _check_args(x: Tensor, steps: int, loss: str, labels: str, validate: bool = True) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"`steps` must be an integer >= 1, got {steps!r}.")
    if loss not in LOSSES:
        raise ValueError(f"`loss` must be one of {tuple(LOSSES)}, got {loss!r}.")
    if labels not in LABELS:
        raise ValueError(f"`labels` must be one of {LABELS}, got {labels!r}.")
    if x.dim() < 2 or x.numel() == 0:
        raise ValueError("`x` must be a non-empty batch (B, ...).")
    if validate and bool(((x < 0) | (x > 1)).any()):  # one read-back
        raise ValueError("`x` must lie in [0, 1] (pixel space).")


def _step_sizes(step_size, eps: Tensor, steps: int) -> Tensor:
    """Per-sample step sizes, float64: 2.5 * eps / steps unless given."""
    if step_size is None:
        return 2.5 * eps / steps
    if not isinstance(step_size, Tensor):
        if not float(step_size) >= 0:
            raise ValueError("`step_size` must be >= 0.")
        return to_device(torch.full(eps.shape, float(step_size), dtype=torch.float64), eps.device)
    t = to_device(step_size.detach().to(torch.float64), eps.device).expand(eps.shape)
    if bool((t < 0).any()):
        raise ValueError("`step_size` must be >= 0.")
    return t


def _targets(model: nn.Module, x: Tensor, y: Tensor | None, labels: str) -> Tensor:
    if labels == "pred":
        return predict(model, x)
    if y is None or y.shape != (len(x),):
        raise ValueError(f"`y` must be a tensor of shape ({len(x)},) when labels='true'.")
    return to_device(y, x.device)


# ---------------------------------------------------------------- attacks
def pgd(model: nn.Module, x: Tensor, y: Tensor | None, eps, steps: int = 40,
        step_size=None, random_start: bool = False,
        generator: torch.Generator | None = None, loss: str = "ce",
        labels: str = "true", early_stop: bool = False, validate: bool = True,
        memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """Projected gradient ascent on `loss` in the L-inf ball of radius `eps`.

    eps, step_size: a float or one value per sample, shape (B,).
    labels: "true" attacks `y`; "pred" attacks the model's clean predictions
    (y may then be None). early_stop: freeze a sample at the first iterate
    the model misclassifies (w.r.t. the attacked labels); the result then
    fools the model whenever any iterate did. Returns x_adv, shape of x, on
    x's device; the attack runs on the model's device. validate=False skips
    the checks that read data back from the device (x in [0, 1], tensor eps
    in [0, 1]), for callers that checked their data once (the training loop).
    memory_format: the layout of the model's input at every step
    (`torch.channels_last`: the convolutions run in NHWC, faster on a CPU;
    their float summation order differs, so the iterates may differ from the
    default's in the last bits). The default leaves the iterates as they are.
    """
    _check_args(x, steps, loss, labels, validate)
    home = x.device
    x = to_device(x, model_device(model, x.device))
    eps64 = _per_sample(eps, len(x), x, "eps", validate)  # (B,)
    alpha64 = _step_sizes(step_size, eps64, steps)  # (B,)
    view = (-1,) + (1,) * (x.dim() - 1)
    if _is_number(eps) and (step_size is None or _is_number(step_size)):
        # one eps for all: the same values (rounded to x's dtype) as Python
        # numbers, so the step and the projection are scalar operations
        a = 2.5 * float(eps) / steps if step_size is None else float(step_size)  # as _step_sizes
        ball = LinfBall(x.detach(), _rounded(float(eps), x.dtype))
        alpha = _rounded(a, x.dtype)
    else:
        ball = LinfBall(x.detach(), eps64.to(x.dtype).view(view))  # eps: (B, 1, 1, 1)
        alpha = alpha64.to(x.dtype).view(view)  # (B, 1, 1, 1)
    loss_fn = LOSSES[loss]
    with attack_mode(model):
        target = _targets(model, x, y, labels)  # (B,)
        x_adv = ball.random_perturb(generator) if random_start else ball.x0.clone()
        active = torch.ones(len(x), dtype=torch.bool, device=x.device)  # (B,)
        for _ in range(steps):
            x_adv = laid_out(x_adv, memory_format).requires_grad_(True)
            with torch.enable_grad():
                logits = model(x_adv)  # (B, K)
                grad, = torch.autograd.grad(loss_fn(logits, target).sum(), x_adv)
            x_adv = x_adv.detach()
            if early_stop:
                active &= logits.argmax(1) == target
            stepped = ball.step(x_adv, grad, alpha)
            x_adv = torch.where(active.view(view), stepped, x_adv) if early_stop else stepped
    return x_adv.to(home)


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


def pgd_profile(model: nn.Module, x: Tensor, y: Tensor, epsilons, steps: int = 40,
                step_size=None, random_start: bool = False,
                generator: torch.Generator | None = None, loss: str = "ce",
                batch_size: int = 500, progress: bool = False,
                compact: bool | None = None, sync_every: int = 8,
                compile: bool = False, lookahead: int | None = None) -> PGDProfileResult:
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

    The pool is a fixed set of rows on the model's device with an `active`
    mask; freeing and refilling rows are masked tensor operations, so a step
    reads nothing back to the host. compact (default: on CPU only) runs the
    model on the active rows alone, in the order they entered (fewer rows
    of work where the host waits anyway); without it every step runs on all
    rows, with static shapes, and the host checks for the end every
    `sync_every` steps. Which pairs run, and each pair's iterates, do not
    depend on either setting. With random_start the starts are drawn from
    `generator` for the entering pairs only, in their order of entry, which
    reads the number of entering pairs back once per refill.

    lookahead: pairs of one sample in the pool at once (default: 1 with
    compact; every eps otherwise; always 1 with random_start, whose draws
    follow the order of entry). Rows left free by the pairs of samples with
    none in flight go to the next eps of samples still under attack; such a
    pair is dropped when a smaller eps fools its sample. It runs the same
    pairs to the same iterates, and a sample's outcome is decided by its
    pairs up to its first fooled eps, which always run to the end, so the
    outcomes do not change; pair_steps counts the extra work. On a GPU the
    rows cost no time, and the chain of a sample no attack fools (every eps,
    one after the other) no longer sets the number of steps.

    compile: run the model through `torch.compile` (static shapes) on CUDA
    with the static pool, where the fixed shapes let it compile once; on
    the CPU, or with compact, it falls back to the eager model (compiling
    costs more there than it saves).
    """
    _check_args(x, steps, loss, "true")
    grid = check_grid(epsilons, "epsilons", 0.0, 1.0)
    if y is None or y.shape != (len(x),):
        raise ValueError(f"`y` must be a tensor of shape ({len(x)},).")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}.")
    if not isinstance(sync_every, int) or sync_every < 1:
        raise ValueError(f"`sync_every` must be an integer >= 1, got {sync_every!r}.")
    if lookahead is not None and (not isinstance(lookahead, int) or lookahead < 1):
        raise ValueError(f"`lookahead` must be an integer >= 1 or None, got {lookahead!r}.")
    device = model_device(model, x.device)
    x = to_device(x.detach(), device)
    if compact is None:
        compact = device.type == "cpu"
    if lookahead is None:
        lookahead = 1 if compact else len(grid)
    if random_start:
        lookahead = 1
    eps64 = to_device(torch.tensor(grid, dtype=torch.float64), device)  # (E,)
    alpha64 = _step_sizes(step_size, eps64, steps)  # (E,)
    with attack_mode(model):
        pred = predict(model, x, batch_size)  # (N,)
        grid_ = _Grid(x, pred, eps64.to(x.dtype), alpha64.to(x.dtype), steps, random_start,
                      LOSSES[loss])
        runner = model
        if compile and device.type == "cuda" and not compact:
            runner = torch.compile(model, dynamic=False)
        fooled_at, pair_steps = _attack_pairs(runner, grid_, generator, batch_size, progress,
                                              compact, sync_every, lookahead)
    broken_at = torch.where(pred == to_device(y, device), fooled_at, 0)  # (N,)
    return PGDProfileResult(grid, steps, tuple(broken_at.tolist()),
                            tuple(fooled_at.tolist()), pair_steps)


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

    def view(self, t: Tensor) -> Tensor:
        return t.view((-1,) + (1,) * (self.x.dim() - 1))  # (P, 1, 1, 1)

    def ball(self, i: Tensor, j: Tensor) -> LinfBall:
        return LinfBall(self.x[i], self.view(self.eps[j]))  # x0: (P, C, H, W)


class _Pool:
    """A fixed number P of rows, each one (sample, eps) pair or free.

    Per row: sample i, eps index j, steps done k, entry number seq (the
    order in which pairs entered), active, iterate x_adv. Per sample (with
    one spare slot, N, that masked writes go to): next eps index, flying
    (its pairs in the pool, at most `lookahead`), fooled_at. Every update is
    a masked tensor operation.
    """

    def __init__(self, grid: _Grid, size: int, lookahead: int = 1):
        n, n_eps, dev = len(grid.x), len(grid.eps), grid.x.device
        self.grid, self.n, self.n_eps = grid, n, n_eps
        first = int((grid.eps <= 0).sum())  # an eps-0 ball holds only x: nothing to attack
        self.first = first
        long = dict(dtype=torch.long, device=dev)
        self.i = torch.zeros(size, **long)
        self.j = torch.zeros(size, **long)
        self.k = torch.zeros(size, **long)
        self.seq = torch.zeros(size, **long)
        self.active = torch.zeros(size, dtype=torch.bool, device=dev)
        self.x_adv = grid.x[:1].expand(size, *grid.x.shape[1:]).clone()  # (P, C, H, W)
        self.next_j = torch.full((n + 1,), first, **long)
        self.next_j[n] = n_eps
        self.flying = torch.zeros(n + 1, **long)
        self.lookahead = lookahead
        self.fooled_at = torch.full((n + 1,), n_eps, **long)
        self.entered = torch.zeros((), **long)      # pairs that entered so far
        self.pair_steps = torch.zeros((), **long)   # gradient evaluations run
        self.skipped = torch.zeros((), **long)      # pairs settled without running
        self.finished = torch.zeros((), **long)     # pairs that left the pool
        self.sample_ids = torch.arange(n, **long)

    def unfinished(self) -> Tensor:
        """() long: samples with a pair in the pool or still to run."""
        return ((self.flying[:-1] > 0) | (self.next_j[:-1] < self.n_eps)).sum()

    def refill(self, generator) -> None:
        """Skip every pending pair of a sample already fooled at a smaller eps
        (the smaller ball lies inside the larger one), then give free rows to
        ready samples, smallest pending eps first (then sample index): the
        r-th free row gets the r-th ready sample. No sample waits behind a
        busy one, so the pool stays full while there is work. Samples with
        fewer pairs in flight come first, so a sample gets a second pair only
        from rows no first pair wants."""
        n, next_j, flying = self.n, self.next_j[:-1], self.flying[:-1]
        settled = (self.fooled_at[:-1] <= next_j) & (next_j < self.n_eps)
        self.skipped += torch.where(settled, self.n_eps - next_j, 0).sum()
        next_j.masked_fill_(settled, self.n_eps)
        ready = (flying < self.lookahead) & (next_j < self.n_eps)  # (N,)
        tiers = (flying * self.n_eps + next_j) * n + self.sample_ids  # in flight, then eps-major
        key = torch.where(ready, tiers, (self.lookahead + 1) * self.n_eps * n)
        order = torch.argsort(key)  # (N,) ready samples first
        free = ~self.active  # (P,)
        rank = torch.cumsum(free, 0) - 1  # (P,) rank among free rows
        take = free & (rank < ready.sum())  # (P,)
        cand = order[rank.clamp(0, n - 1)]  # (P,)
        i_new = torch.where(take, cand, n)  # (P,) n: the spare slot
        j_new = self.next_j[i_new]
        self.i = torch.where(take, cand, self.i)
        self.j = torch.where(take, j_new, self.j)
        self.k = torch.where(take, 0, self.k)
        self.seq = torch.where(take, self.entered + rank, self.seq)
        self.entered += take.sum()
        self.active = self.active | take
        self.flying[i_new] += 1
        self.next_j[i_new] += 1
        self.next_j[n] = self.n_eps
        self.flying[n] = 0
        if self.grid.random_start:
            self._random_starts(take, generator)
        else:
            self.x_adv = torch.where(self.grid.view(take), self.grid.x[self.i], self.x_adv)

    def _random_starts(self, take: Tensor, generator) -> None:
        """Random starts for the entering rows, drawn in their order of entry."""
        rows = take.nonzero().squeeze(1)  # reads the count back
        if len(rows) == 0:
            return
        rows = rows[torch.argsort(self.seq[rows])]
        ball = self.grid.ball(self.i[rows], self.j[rows])
        self.x_adv[rows] = ball.random_perturb(generator)

    def leave(self, rows: Tensor, fooled: Tensor, done: Tensor) -> None:
        """Record the outcomes of `rows` ((R,) long, or None for all rows)."""
        i = self.i if rows is None else self.i[rows]
        j = self.j if rows is None else self.j[rows]
        n = self.n
        self.fooled_at.scatter_reduce_(0, torch.where(fooled, i, n), j, reduce="amin")
        self.fooled_at[n] = self.n_eps
        if rows is None:
            self.active = self.active & ~done
        else:
            self.active[rows[done]] = False
        self.flying.scatter_add_(0, torch.where(done, i, n), -done.long())
        self.finished += done.sum()
        if self.lookahead > 1:  # pairs above a fooled eps of their sample are dropped
            drop = self.active & (self.j > self.fooled_at[self.i])  # (P,)
            self.active = self.active & ~drop
            self.flying.scatter_add_(0, torch.where(drop, self.i, n), -drop.long())
            self.finished += drop.sum()
        self.flying[n] = 0


def _gradient(model: nn.Module, grid: _Grid, x_adv: Tensor, target: Tensor):
    """(logits, input gradient of the summed loss) at x_adv."""
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_adv)  # (P, K)
        grad, = torch.autograd.grad(grid.loss_fn(logits, target).sum(), x_adv)
    return logits.detach(), grad


def _step_compact(model: nn.Module, pool: _Pool) -> None:
    """One PGD step on the active rows only, in order of entry; the final
    iterate of a pair gets a forward pass of its own."""
    grid = pool.grid
    rows = pool.active.nonzero().squeeze(1)
    rows = rows[torch.argsort(pool.seq[rows])]  # (R,)
    i, j, k = pool.i[rows], pool.j[rows], pool.k[rows] + 1
    target = grid.target[i]  # (R,)
    x_rows = pool.x_adv[rows]  # (R, C, H, W)
    logits, grad = _gradient(model, grid, x_rows, target)
    fooled = logits.argmax(1) != target  # (R,)
    if not grid.random_start:
        fooled &= k > 1  # iterate 0 is x, whose prediction is the target
    pool.pair_steps += len(rows)
    x_new = grid.ball(i, j).step(x_rows, grad, grid.view(grid.alpha[j]))
    pool.x_adv[rows] = x_new
    pool.k[rows] = k
    last = ~fooled & (k == grid.steps)  # the final iterate needs a forward pass only
    if bool(last.any()):
        with torch.no_grad():
            fooled[last] = model(x_new[last]).argmax(1) != target[last]
    pool.leave(rows, fooled, fooled | last)


def _step_static(model: nn.Module, pool: _Pool) -> None:
    """One step on every row, static shapes, no read-back. A row at k ==
    steps only checks its final iterate (its gradient is not used)."""
    grid = pool.grid
    target = grid.target[pool.i]  # (P,)
    logits, grad = _gradient(model, grid, pool.x_adv, target)
    fooled = pool.active & (logits.argmax(1) != target)  # (P,)
    if not grid.random_start:
        fooled &= pool.k > 0  # iterate 0 is x, whose prediction is the target
    last = pool.active & (pool.k == grid.steps)
    stepping = pool.active & ~fooled & ~last  # (P,)
    pool.pair_steps += (pool.active & (pool.k < grid.steps)).sum()
    x_new = grid.ball(pool.i, pool.j).step(pool.x_adv, grad, grid.view(grid.alpha[pool.j]))
    pool.x_adv = torch.where(grid.view(stepping), x_new, pool.x_adv)
    pool.k = pool.k + stepping.long()
    pool.leave(None, fooled, fooled | last)


def _attack_pairs(model, grid: _Grid, generator, batch_size: int, progress: bool,
                  compact: bool, sync_every: int, lookahead: int = 1) -> tuple[Tensor, int]:
    """Run the pair pool to exhaustion; return (fooled_at (N,), pair_steps)."""

    n = len(grid.x)
    pool = _Pool(grid, min(batch_size, n * lookahead), lookahead)
    total = n * (pool.n_eps - pool.first)
    bar = tqdm(total=total, desc="pgd pairs", disable=not progress, leave=False)
    step = _step_compact if compact else _step_static
    k = 0
    while True:
        if k % (1 if compact else sync_every) == 0:
            if int(pool.unfinished()) == 0:  # the one read-back per `sync_every` steps
                break
            if progress:  # tqdm redraws at its own pace
                bar.update(int(pool.finished + pool.skipped) - bar.n)
        pool.refill(generator)
        step(model, pool)
        k += 1
    bar.close()
    return pool.fooled_at[:-1], int(pool.pair_steps)
