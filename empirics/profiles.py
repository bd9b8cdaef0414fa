"""Rotation-invariance and PGD-robustness profiles of a classifier.

A profile keeps per-test-point outcomes (so that statistics can be
bootstrapped over test points, paired across models that share the test set
and the seeded angles) and derives its rates, with Wilson intervals
(`core.estimate.Estimate`), from them.

- Invariance profile (paper Sec. 2): for each theta, every test image is
  rotated once by its own angle uniform in [-theta, theta]; the rate of
  invariance is the fraction whose predicted label is unchanged, next to the
  accuracy on the rotated images. The angles are u_i * theta with one seeded
  draw u_i in [-1, 1] per image, the same for every theta and every model.
- Robustness profile: PGD accuracy (against true labels) and fooling rate
  (prediction changed, f(x + A(x)) != f(x)) over an eps grid, optionally on
  test images first rotated by random angles in [-B, B] (the paper's A/B
  legend convention), from one `empirics.attacks.pgd_profile` run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor, nn
from tqdm import tqdm

from core.auc import auc
from core.device import pick_device
from core.estimate import Estimate
from core.grids import check_grid
from core.outcomes import bits, unbits  # noqa: F401 - the stored encoding, re-exported
from empirics.attacks import pgd_profile
from empirics.inference import attack_mode, model_device, predict, to_device
from empirics.rotation import random_angles, rotate


# ---------------------------------------------------------------- helpers
def rates(rows) -> tuple[Estimate, ...]:
    """One Wilson estimate per row of per-point outcomes."""
    return tuple(Estimate.from_counts(sum(row), len(row)) for row in rows)


def check_rows(obj, names, n_rows: int, n: int) -> None:
    """Each outcome table `names` of `obj` must be (n_rows, n)."""
    for name in names:
        rows = getattr(obj, name)
        if len(rows) != n_rows or any(len(r) != n for r in rows):
            raise ValueError(f"`{name}` must have shape ({n_rows}, {n}).")


def _auc(grid: tuple[float, ...], rates: tuple[Estimate, ...]) -> float:
    """Normalised trapezoid area under the rate curve (`core.auc`)."""
    return float(auc(grid, [r.value for r in rates]))


def _index(grid: tuple[float, ...], value: float, name: str) -> int:
    for k, g in enumerate(grid):
        if math.isclose(g, value, rel_tol=0, abs_tol=1e-9):
            return k
    raise ValueError(f"`{name}` {value} is not on the profile's grid {list(grid)}.")


# ---------------------------------------------------------------- invariance
@dataclass(frozen=True)
class InvariancePoint:
    theta: float
    invariance: Estimate
    accuracy: Estimate


@dataclass(frozen=True)
class InvarianceProfile:
    """invariant[k][i]: test point i keeps its clean prediction when rotated
    by its angle for thetas[k]; correct[k][i]: that rotated prediction is its
    label; clean_correct[i]: the unrotated prediction is its label."""

    thetas: tuple[float, ...]
    invariant: tuple[tuple[bool, ...], ...]  # (n_thetas, n)
    correct: tuple[tuple[bool, ...], ...]    # (n_thetas, n)
    clean_correct: tuple[bool, ...]          # (n,)
    seed: int
    interpolation: str = "nearest"

    def __post_init__(self):
        check_rows(self, ("invariant", "correct"), len(self.thetas), len(self.clean_correct))

    @property
    def n(self) -> int:
        return len(self.clean_correct)

    @cached_property
    def invariance(self) -> tuple[Estimate, ...]:
        return rates(self.invariant)

    @cached_property
    def accuracy(self) -> tuple[Estimate, ...]:
        return rates(self.correct)

    @cached_property
    def clean_accuracy(self) -> Estimate:
        return Estimate.from_counts(sum(self.clean_correct), self.n)

    def auc(self, metric: str = "invariance") -> float:
        """Normalised area under the `metric` ("invariance" | "accuracy") curve."""
        if metric not in ("invariance", "accuracy"):
            raise ValueError("`metric` must be 'invariance' or 'accuracy'.")
        return _auc(self.thetas, getattr(self, metric))

    def at(self, theta: float) -> InvariancePoint:
        k = _index(self.thetas, theta, "theta")
        return InvariancePoint(self.thetas[k], self.invariance[k], self.accuracy[k])

    def to_dict(self) -> dict:
        return {"kind": "invariance", "thetas": list(self.thetas), "n": self.n,
                "seed": self.seed, "interpolation": self.interpolation,
                "clean_accuracy": self.clean_accuracy.to_dict(),
                "invariance": [e.to_dict() for e in self.invariance],
                "accuracy": [e.to_dict() for e in self.accuracy],
                "invariant": [bits(r) for r in self.invariant],
                "correct": [bits(r) for r in self.correct],
                "clean_correct": bits(self.clean_correct)}

    @classmethod
    def from_dict(cls, d: dict) -> "InvarianceProfile":
        """Rebuilds from the per-point outcomes; the rates are recomputed."""
        return cls(tuple(float(t) for t in d["thetas"]),
                   tuple(unbits(r) for r in d["invariant"]),
                   tuple(unbits(r) for r in d["correct"]),
                   unbits(d["clean_correct"]), int(d["seed"]),
                   d.get("interpolation", "nearest"))


# ---------------------------------------------------------------- robustness
@dataclass(frozen=True)
class RobustnessPoint:
    eps: float
    accuracy: Estimate
    fooling_rate: Estimate


@dataclass(frozen=True)
class RobustnessProfile:
    """broken_at[i]: index of the smallest eps at which test point i is
    misclassified (len(epsilons) if never; 0 if wrong when clean);
    fooled_at[i]: the same against its clean prediction. Test points are
    first rotated by angles uniform in [-test_rotation, test_rotation]."""

    epsilons: tuple[float, ...]
    broken_at: tuple[int, ...]  # (n,)
    fooled_at: tuple[int, ...]  # (n,)
    test_rotation: float
    steps: int
    seed: int
    random_start: bool = False

    def __post_init__(self):
        k, n = len(self.epsilons), len(self.broken_at)
        if len(self.fooled_at) != n:
            raise ValueError(f"`fooled_at` must have length {n}, like `broken_at`.")
        if any(not 0 <= v <= k for v in self.broken_at + self.fooled_at):
            raise ValueError(f"`broken_at` and `fooled_at` must lie in [0, {k}].")

    @property
    def n(self) -> int:
        return len(self.broken_at)

    @cached_property
    def accuracy(self) -> tuple[Estimate, ...]:
        return tuple(Estimate.from_counts(sum(b > j for b in self.broken_at), self.n)
                     for j in range(len(self.epsilons)))

    @cached_property
    def fooling_rate(self) -> tuple[Estimate, ...]:
        return tuple(Estimate.from_counts(sum(f <= j for f in self.fooled_at), self.n)
                     for j in range(len(self.epsilons)))

    def auc(self, metric: str = "accuracy") -> float:
        """Normalised area under the `metric` ("accuracy" | "fooling_rate") curve."""
        if metric not in ("accuracy", "fooling_rate"):
            raise ValueError("`metric` must be 'accuracy' or 'fooling_rate'.")
        return _auc(self.epsilons, getattr(self, metric))

    def at(self, eps: float) -> RobustnessPoint:
        k = _index(self.epsilons, eps, "eps")
        return RobustnessPoint(self.epsilons[k], self.accuracy[k], self.fooling_rate[k])

    def to_dict(self) -> dict:
        return {"kind": "robustness", "epsilons": list(self.epsilons), "n": self.n,
                "test_rotation": self.test_rotation, "steps": self.steps,
                "seed": self.seed, "random_start": self.random_start,
                "accuracy": [e.to_dict() for e in self.accuracy],
                "fooling_rate": [e.to_dict() for e in self.fooling_rate],
                "broken_at": list(self.broken_at), "fooled_at": list(self.fooled_at)}

    @classmethod
    def from_dict(cls, d: dict) -> "RobustnessProfile":
        """Rebuilds from the per-point outcomes; the rates are recomputed."""
        return cls(tuple(float(e) for e in d["epsilons"]),
                   tuple(int(b) for b in d["broken_at"]),
                   tuple(int(f) for f in d["fooled_at"]),
                   float(d["test_rotation"]), int(d["steps"]), int(d["seed"]),
                   bool(d.get("random_start", False)))


# ---------------------------------------------------------------- measuring
def _check_data(images: Tensor, labels: Tensor, batch_size: int) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or len(images) == 0:
        raise ValueError("`images` must be a non-empty (N, C, H, W) tensor.")
    if not isinstance(labels, Tensor) or labels.shape != (len(images),):
        raise ValueError(f"`labels` must be a tensor of shape ({len(images)},).")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}.")


def _check_thetas(thetas) -> tuple[float, ...]:
    return check_grid(thetas, "thetas", 0.0, 180.0)


def _angles(n: int, theta: float, seed: int) -> Tensor:
    """(n,) angles uniform in [-theta, theta]: the same seeded draws, scaled,
    for every theta and every model."""
    return random_angles(n, abs(float(theta)), torch.Generator().manual_seed(seed))


def _device(model: nn.Module, device) -> torch.device:
    """`device` if given (the model is moved there), else the model's own."""
    if device is None:
        return model_device(model)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    model.to(device)
    return device


@torch.no_grad()
def _rotated_predictions(model, images, angles, batch_size, device, interpolation) -> Tensor:
    """Predictions on the rotated images; the angles stay on the host (rotate
    copies only the rotation matrices), one read-back at the end."""
    out = [predict(model, rotate(to_device(images[i:i + batch_size], device),
                                 angles[i:i + batch_size], interpolation))
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).cpu()  # (N,)


def invariance_profile(model: nn.Module, images: Tensor, labels: Tensor, thetas,
                       seed: int = 0, batch_size: int = 500, device=None,
                       interpolation: str = "nearest", progress: bool = False
                       ) -> InvarianceProfile:
    """Rate of invariance and accuracy on test images each rotated by its own
    random angle in [-theta, theta], for every theta in `thetas` (degrees,
    increasing, in [0, 180]). Computed on the model's device, or on `device`
    if given (the model is moved there), in eval mode; images and labels may
    be on any device."""
    _check_data(images, labels, batch_size)
    grid = _check_thetas(thetas)
    device = _device(model, device)
    labels = labels.cpu()
    with attack_mode(model):
        clean = _rotated_predictions(model, images, torch.zeros(len(images)), batch_size,
                                     device, interpolation)  # (N,)
        invariant, correct = [], []
        for theta in tqdm(grid, desc="invariance", disable=not progress, leave=False):
            angles = _angles(len(images), theta, seed)  # (N,)
            pred = _rotated_predictions(model, images, angles, batch_size, device, interpolation)
            invariant.append(tuple((pred == clean).tolist()))
            correct.append(tuple((pred == labels).tolist()))
    return InvarianceProfile(grid, tuple(invariant), tuple(correct),
                             tuple((clean == labels).tolist()), int(seed), interpolation)


def robustness_profile(model: nn.Module, images: Tensor, labels: Tensor, epsilons,
                       steps: int = 40, test_rotation: float = 0.0, seed: int = 0,
                       batch_size: int = 500, device=None, random_start: bool = False,
                       interpolation: str = "nearest", progress: bool = False
                       ) -> RobustnessProfile:
    """PGD-`steps` accuracy and fooling rate over `epsilons` (pixel space,
    step 2.5 * eps / steps), on test images first rotated by seeded random
    angles in [-test_rotation, test_rotation] degrees. `batch_size` bounds the
    (sample, eps) pairs attacked at once. Computed on the model's device, or
    on `device` if given (the model is moved there), in eval mode; images and
    labels may be on any device."""
    _check_data(images, labels, batch_size)
    if not math.isfinite(test_rotation):
        raise ValueError(f"`test_rotation` must be a finite angle, got {test_rotation!r}.")
    device = _device(model, device)
    x = to_device(images, device)
    if test_rotation != 0:
        angles = _angles(len(images), test_rotation, seed)  # (N,) on the host
        x = torch.cat([rotate(x[i:i + batch_size], angles[i:i + batch_size], interpolation)
                       for i in range(0, len(x), batch_size)])  # (N, C, H, W)
    generator = torch.Generator(device=device).manual_seed(seed) if random_start else None
    result = pgd_profile(model, x, to_device(labels, device), epsilons, steps=steps,
                         random_start=random_start, generator=generator,
                         batch_size=batch_size, progress=progress)
    return RobustnessProfile(result.epsilons, result.broken_at, result.fooled_at,
                             float(test_rotation), steps, int(seed), random_start)


def measure(model: nn.Module, images: Tensor, labels: Tensor, thetas, epsilons, steps: int,
            test_rotations=(0.0,), seed: int = 0, batch_size: int = 500, device=None,
            progress: bool = False) -> tuple[InvarianceProfile, dict[float, RobustnessProfile]]:
    """Both profiles of one model: the invariance profile over `thetas` and
    one PGD-`steps` robustness profile over `epsilons` per test rotation B."""
    kw = dict(seed=seed, batch_size=batch_size, device=device, progress=progress)
    invariance = invariance_profile(model, images, labels, thetas, **kw)
    robustness = {float(b): robustness_profile(model, images, labels, epsilons, steps=steps,
                                               test_rotation=b, **kw)
                  for b in test_rotations}
    return invariance, robustness
