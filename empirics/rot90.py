"""The Sec. 1.1 corollary as a measurement: attack x and rot90(x) with the same PGD.

For a model f with f(Tx) = f(x) for the permutation T = rot90, the gradient
at Tx is T applied to the gradient at x, so PGD from Tx (random start off)
produces exactly T of the perturbation it produces from x, and the fooling
rates on {Tx} and {x} coincide. `rot90_attack_outcome` runs the attack both
ways in float64 (so "float precision" means ~1e-16, and a sign flip of a
gradient component would show as a perturbation gap of a whole step) and
returns per-point outcomes (stored by the pipeline, judged by
`verify.checks.corollary_check`).

Floating point breaks the correspondence in one place: a max over values
that are exactly tied in exact arithmetic (the constant black background of
MNIST, pixels clamped to 0) but computed with different rounding for x and
rot90(x) (the rotated filters sum in another order) picks a different
argmax, so the gradient, and PGD's sign step, go elsewhere. `interior`
gives images on which no such ties arise.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.outcomes import bits, unbits
from empirics.attacks import pgd
from empirics.inference import model_device, predict


@dataclass(frozen=True)
class RotationAttackOutcome:
    """Per-point PGD outcomes on x and on rot90(x), k quarter turns.

    fooled, fooled_rot: (n,) bool, prediction after the attack differs from
    the clean prediction (on x, resp. on rot90(x)); max_gap: max over points
    and pixels of |rot90^-k(delta_rot) - delta|; logit_gap: max |f(rot90 x) -
    f(x)| over the clean logits (the model's own invariance error)."""

    fooled: np.ndarray
    fooled_rot: np.ndarray
    max_gap: float
    logit_gap: float
    eps: tuple[float, ...]
    steps: int
    k: int
    dtype: str

    def details(self) -> dict:
        return {"eps": list(self.eps), "steps": self.steps, "quarter_turns": self.k,
                "dtype": self.dtype, "logit_gap": self.logit_gap,
                "attack": "PGD, random start off, labels = clean predictions"}

    def to_dict(self) -> dict:
        return {"kind": "rot90_attack", **self.details(), "max_gap": self.max_gap,
                "fooled": bits(self.fooled), "fooled_rot": bits(self.fooled_rot)}

    @classmethod
    def from_dict(cls, d: dict) -> "RotationAttackOutcome":
        return cls(np.array(unbits(d["fooled"])), np.array(unbits(d["fooled_rot"])),
                   float(d["max_gap"]), float(d["logit_gap"]), tuple(float(e) for e in d["eps"]),
                   int(d["steps"]), int(d["quarter_turns"]), str(d["dtype"]))


def _rot(x: torch.Tensor, k: int) -> torch.Tensor:
    return torch.rot90(x, k, dims=(2, 3))  # (B, C, W, H)


def _eps_per_point(eps, n: int) -> tuple[tuple[float, ...], torch.Tensor]:
    grid = tuple(float(e) for e in (eps if isinstance(eps, (list, tuple)) else (eps,)))
    if not grid or any(not 0 < e <= 1 for e in grid):
        raise ValueError(f"`eps` must be a radius or radii in (0, 1], got {eps}.")
    return grid, torch.tensor(grid, dtype=torch.float64)[torch.arange(n) % len(grid)]  # (N,)


def rot90_attack_outcome(model: nn.Module, images: torch.Tensor, eps,
                         steps: int = 40, k: int = 1, batch_size: int = 250,
                         dtype: torch.dtype = torch.float64) -> RotationAttackOutcome:
    """Attack `images` (N, C, H, W) in [0, 1] and their rot90^k with the same
    PGD (no random start, against clean predictions) on a `dtype` copy of
    `model` (the model itself is not changed). `eps`: one radius, or several
    assigned to the points in turn (point i gets eps[i % len(eps)])."""
    if images.dim() != 4 or images.shape[2] != images.shape[3]:
        raise ValueError(f"`images` must be (N, C, s, s) square images, got {tuple(images.shape)}.")
    grid, eps_all = _eps_per_point(eps, len(images))  # (N,)
    if k % 4 == 0:
        raise ValueError(f"`k` must not be a multiple of 4, got {k}.")
    device = model_device(model)
    net = copy.deepcopy(model).to(dtype).eval()
    fooled, fooled_rot, gap, logit_gap = [], [], 0.0, 0.0
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device=device, dtype=dtype)  # (B, C, s, s)
        xr = _rot(x, k)  # (B, C, s, s)
        with torch.no_grad():
            logits, logits_r = net(x), net(xr)  # (B, K)
        logit_gap = max(logit_gap, float((logits_r - logits).abs().max()))
        e = eps_all[i:i + batch_size].to(device)  # (B,)
        adv = pgd(net, x, None, e, steps=steps, labels="pred")  # (B, C, s, s)
        adv_r = pgd(net, xr, None, e, steps=steps, labels="pred")  # (B, C, s, s)
        gap = max(gap, float((_rot(adv_r - xr, -k) - (adv - x)).abs().max()))
        with torch.no_grad():
            fooled.append((predict(net, adv) != logits.argmax(1)).cpu())
            fooled_rot.append((predict(net, adv_r) != logits_r.argmax(1)).cpu())
    return RotationAttackOutcome(torch.cat(fooled).numpy(), torch.cat(fooled_rot).numpy(),
                                 gap, logit_gap, grid, int(steps), int(k), str(dtype))


def interior(images: torch.Tensor, low: float = 0.25, high: float = 0.75,
             noise: float = 1 / 255, seed: int = 0) -> torch.Tensor:
    """images mapped affinely into [low, high] plus uniform noise of +-noise
    (float64). No two pixels are then exactly equal and, for eps <= low -
    noise, PGD never reaches the [0, 1] clamp, so no exactly tied values
    arise for a max layer to break by rounding: the setting in which the
    corollary's gradient correspondence can hold to float precision."""
    if not 0 <= low - noise < high + noise <= 1:
        raise ValueError("`low`, `high` and `noise` must keep pixels in [0, 1].")
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(images.shape, generator=gen, dtype=torch.float64)  # (N, C, H, W)
    return low + (high - low) * images.double() + noise * (2 * u - 1)
