"""The peer of the training benchmarks: `empirics.train.train`'s computation
written as a plain PyTorch loop, the way a researcher would write it.

A for loop over index batches of the data tensors (no DataLoader), the
model as built (NCHW, parameters requiring gradients throughout), a
straightforward PGD (x_adv.requires_grad, a backward pass through the whole
model, sign step, projection in torchattacks' operation order), then
cross-entropy, `zero_grad`, `backward`, `opt.step()`. The attack's gradient
is taken in one of the two ways PGD is commonly written (`GRADS`):
"backward" (advertorch's `perturb_iterative`: `loss.backward()`, then
`x_adv.grad`; the parameters' gradients are computed too and thrown away by
`zero_grad`) or "autograd" (torchattacks' PGD: `torch.autograd.grad(loss,
x_adv)`, which computes the input's gradient only). It draws its
randomness from the same seeded streams as `train()` (data order, attack
starts, the per-epoch global seed of dropout) and uses `train()`'s model and
optimizer, so with the same config it must reach the same weights:
tests/test_train_speed.py holds it to that, which is what makes the
benchmarks' ratios a like-for-like comparison.

Supports what the benchmarks time: no rotation, crops or schedules; PGD at
the config's eps with its steps, step size and random start.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from empirics.attacks import laid_out  # noqa: E402
from empirics.train import TrainConfig, build, make_optimizer  # noqa: E402
from empirics.train.loop import _seed, make_generators, seeded_global_rng  # noqa: E402


GRADS = ("backward", "autograd")


def plain_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
              alpha: float, start: torch.Generator | None, grad: str = "backward",
              memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """PGD as it is usually written (torchattacks' PGD, with the start drawn as
    x + (2u - 1) eps and projected)."""
    x_adv = x.clone()
    if start is not None:
        u = torch.rand(x.shape, generator=start).to(x.device)
        x_adv = x + (2 * u - 1) * eps
        x_adv = torch.clamp(x + torch.clamp(x_adv - x, -eps, eps), 0, 1)
    for _ in range(steps):
        x_adv = laid_out(x_adv, memory_format).requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y, reduction="sum")
        if grad == "backward":
            loss.backward()
            g = x_adv.grad
        else:
            g, = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + alpha * g.sign()
        x_adv = torch.clamp(x + torch.clamp(x_adv - x, -eps, eps), 0, 1)
    return x_adv


def plain_train(config: TrainConfig, x_all: torch.Tensor, y_all: torch.Tensor,
                grad: str = "backward",
                memory_format: torch.memory_format = torch.contiguous_format,
                device: str | torch.device = "cpu") -> tuple[nn.Module, float]:
    """Train `config` on (x_all, y_all) on `device`, the attack's gradient
    taken as `grad` says (one of `GRADS`), the model's inputs laid out in
    `memory_format` (channels-last: an informational variant, not the peer);
    (the trained model, seconds in the loop)."""
    if grad not in GRADS:
        raise ValueError(f"`grad` must be one of {GRADS}, got {grad!r}")
    if config.train_rotation or config.curriculum or config.random_crop or config.hflip:
        raise ValueError("the plain loop has no rotation, crops or curriculum")
    if config.lr_schedule != "step" or config.adv_warmup or config.lr_milestones:
        raise ValueError("the plain loop has no lr schedule or eps warm-up")
    device = torch.device(device)
    x_all, y_all = x_all.to(device), y_all.to(device)
    model = build(config).to(device)
    opt = make_optimizer(config, model)
    gens = make_generators(config.seed)
    eps, steps = config.adv_eps, config.adv_steps
    alpha = config.adv_step_size if config.adv_step_size is not None else 2.5 * eps / steps
    n = len(y_all)
    _sync(device)
    start_time = time.perf_counter()
    for epoch in range(config.epochs):
        with seeded_global_rng(device, _seed(config.seed, 100, epoch)):
            order = torch.randperm(n, generator=gens["order"]).to(device)
            for start in range(0, n, config.batch_size):
                idx = order[start:start + config.batch_size]
                x, y = x_all[idx], y_all[idx]
                if eps > 0:
                    model.eval()
                    x = plain_pgd(model, x, y, eps, steps, alpha,
                                  gens["attack"] if config.adv_random_start else None, grad,
                                  memory_format)
                    model.train()
                loss = F.cross_entropy(model(laid_out(x, memory_format)), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    _sync(device)
    return model, time.perf_counter() - start_time


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
