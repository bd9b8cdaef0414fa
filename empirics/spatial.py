"""Spatial (rotation) attacks, per image, next to the random-rotation profile.

As in the spatial-robustness literature (Engstrom et al., ICML 2019), for a
budget theta an image counts as robust only if the model is correct on
every rotation the attack tries:

- worst-of-k: k angles uniform in [-theta, theta], drawn per image. The
  first of the k is the very angle the invariance profile
  (`empirics.profiles.invariance_profile`, same seed) uses, so per image
  worst-of-k accuracy is never above the random-rotation accuracy.
- grid: `n_grid` (odd) equally spaced angles theta * j / m, j = -m .. m
  (m = (n_grid - 1) / 2), which include 0, so per image grid accuracy is
  never above clean accuracy.

Angles are u * theta with draws u in [-1, 1] that do not depend on theta,
so the same rotations, scaled, serve every theta and every model. Every
rotation is `empirics.rotation.rotate`, pixel-identical to torchvision's.
An image found wrong at one angle is not rotated further.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor, nn
from tqdm import tqdm

from core.estimate import Estimate
from core.grids import check_grid
from core.outcomes import bits, unbits
from empirics.inference import attack_mode, model_device, predict
from empirics.profiles import check_rows, rates
from empirics.rotation import INTERPOLATIONS, random_angles, rotate

METHODS = ("worst_of_k", "grid")


def worst_of_k_angles(n: int, theta: float, k: int = 10, seed: int = 0) -> Tensor:
    """(k, n) float32 angles in [-theta, theta]; row 0 is the invariance
    profile's angle for each image (`random_angles(n, theta, seed)`)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"`k` must be an integer >= 1, got {k!r}.")
    gen = torch.Generator().manual_seed(seed)
    first = random_angles(n, abs(float(theta)), gen)  # (n,): what invariance_profile draws first
    rest = random_angles(n * (k - 1), abs(float(theta)), gen).view(k - 1, n)  # (k-1, n)
    return torch.cat([first[None], rest])  # (k, n)


def grid_angles(theta: float, n_grid: int = 31) -> Tensor:
    """(n_grid,) float64 angles theta * j / m, j = -m .. m: symmetric, 0 included."""
    if not isinstance(n_grid, int) or isinstance(n_grid, bool) or n_grid < 1 or n_grid % 2 == 0:
        raise ValueError(f"`n_grid` must be an odd integer >= 1 (so 0 is on the grid), got {n_grid!r}.")
    m = (n_grid - 1) // 2
    if m == 0:
        return torch.zeros(1, dtype=torch.float64)
    j = torch.arange(-m, m + 1, dtype=torch.float64)
    return abs(float(theta)) * j / m  # (n_grid,)


def _check(images: Tensor, labels: Tensor, thetas, batch_size: int, interpolation: str):
    if not isinstance(images, Tensor) or images.dim() != 4 or len(images) == 0:
        raise ValueError("`images` must be a non-empty (N, C, H, W) tensor.")
    if not isinstance(labels, Tensor) or labels.shape != (len(images),):
        raise ValueError(f"`labels` must be a tensor of shape ({len(images)},).")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}.")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"`interpolation` must be one of {INTERPOLATIONS}, got {interpolation!r}.")
    grid = check_grid(thetas, "thetas", 0.0, 180.0)
    return grid


@torch.no_grad()
def _correct_under(model: nn.Module, images: Tensor, labels: Tensor, angles: Tensor,
                   alive: Tensor, batch_size: int, device, interpolation: str) -> Tensor:
    """(N,) bool: alive and correct on every row of `angles` (R, N); images
    found wrong are not rotated again."""
    alive = alive.clone()
    for row in angles:  # (N,)
        idx = alive.nonzero().flatten()
        for s in range(0, len(idx), batch_size):
            b = idx[s:s + batch_size]
            x = rotate(images[b].to(device), row[b].to(device), interpolation)  # (b, C, H, W)
            alive[b] = predict(model, x, batch_size).cpu() == labels[b]
        if not bool(alive.any()):
            break
    return alive


def spatial_correct(model: nn.Module, images: Tensor, labels: Tensor, theta: float,
                    method: str = "worst_of_k", k: int = 10, n_grid: int = 31, seed: int = 0,
                    batch_size: int = 500, interpolation: str = "nearest") -> Tensor:
    """(N,) bool: correct under every rotation the attack tries at budget theta."""
    _check(images, labels, (theta,), batch_size, interpolation)
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    device = model_device(model)
    labels = labels.cpu()
    images = images.cpu()
    alive = torch.ones(len(images), dtype=torch.bool)
    if method == "worst_of_k":
        angles = worst_of_k_angles(len(images), theta, k, seed)  # (k, N)
    else:
        angles = grid_angles(theta, n_grid)[:, None].expand(-1, len(images))  # (n_grid, N)
    with attack_mode(model):
        return _correct_under(model, images, labels, angles, alive, batch_size, device,
                              interpolation)


@dataclass(frozen=True)
class SpatialProfile:
    """worst_of_k[t][i] / grid[t][i]: test point i is correct under every
    rotation of the attack at thetas[t]; clean_correct[i]: unrotated."""

    thetas: tuple[float, ...]
    worst_of_k: tuple[tuple[bool, ...], ...]  # (n_thetas, n)
    grid: tuple[tuple[bool, ...], ...]        # (n_thetas, n)
    clean_correct: tuple[bool, ...]           # (n,)
    k: int
    n_grid: int
    seed: int
    interpolation: str = "nearest"

    def __post_init__(self):
        check_rows(self, ("worst_of_k", "grid"), len(self.thetas), len(self.clean_correct))

    @property
    def n(self) -> int:
        return len(self.clean_correct)

    @cached_property
    def worst_of_k_accuracy(self) -> tuple[Estimate, ...]:
        return rates(self.worst_of_k)

    @cached_property
    def grid_accuracy(self) -> tuple[Estimate, ...]:
        return rates(self.grid)

    def to_dict(self) -> dict:
        return {"kind": "spatial", "thetas": list(self.thetas), "n": self.n, "k": self.k,
                "n_grid": self.n_grid, "seed": self.seed, "interpolation": self.interpolation,
                "worst_of_k_accuracy": [e.to_dict() for e in self.worst_of_k_accuracy],
                "grid_accuracy": [e.to_dict() for e in self.grid_accuracy],
                "worst_of_k": [bits(r) for r in self.worst_of_k],
                "grid": [bits(r) for r in self.grid],
                "clean_correct": bits(self.clean_correct)}

    @classmethod
    def from_dict(cls, d: dict) -> "SpatialProfile":
        return cls(tuple(float(t) for t in d["thetas"]),
                   tuple(unbits(r) for r in d["worst_of_k"]),
                   tuple(unbits(r) for r in d["grid"]), unbits(d["clean_correct"]),
                   int(d["k"]), int(d["n_grid"]), int(d["seed"]),
                   d.get("interpolation", "nearest"))


def spatial_profile(model: nn.Module, images: Tensor, labels: Tensor, thetas, k: int = 10,
                    n_grid: int = 31, seed: int = 0, batch_size: int = 500,
                    interpolation: str = "nearest", progress: bool = False) -> SpatialProfile:
    """Worst-of-k and grid rotation accuracy for every theta in `thetas`
    (degrees, increasing, in [0, 180]), on the model's device, eval mode."""
    grid = _check(images, labels, thetas, batch_size, interpolation)
    worst_of_k_angles(1, 0.0, k, seed)  # argument checks
    grid_angles(0.0, n_grid)
    device = model_device(model)
    images, labels = images.cpu(), labels.cpu()
    n = len(images)
    with attack_mode(model):
        clean = torch.cat([predict(model, images[i:i + batch_size].to(device), batch_size).cpu()
                           for i in range(0, n, batch_size)]) == labels  # (N,)
        wok, grd = [], []
        for theta in tqdm(grid, desc="spatial", disable=not progress, leave=False):
            angles_k = worst_of_k_angles(n, theta, k, seed)  # (k, N)
            angles_g = grid_angles(theta, n_grid)[:, None].expand(-1, n)  # (n_grid, N)
            everyone = torch.ones(n, dtype=torch.bool)
            wok.append(tuple(_correct_under(model, images, labels, angles_k, everyone,
                                            batch_size, device, interpolation).tolist()))
            grd.append(tuple(_correct_under(model, images, labels, angles_g, everyone,
                                            batch_size, device, interpolation).tolist()))
    return SpatialProfile(grid, tuple(wok), tuple(grd), tuple(clean.tolist()), int(k),
                          int(n_grid), int(seed), interpolation)
