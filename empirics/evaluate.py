"""Evaluate any classifier: L-inf attacks over an eps grid plus rotation
profiles, as one frozen `Evaluation` with per-point outcomes.

- attacks (`attack`): "pgd" (today's `empirics.profiles.robustness_profile`,
  PGD-`steps`, step 2.5 eps / steps, no random start), "autoattack" (the
  standard AutoAttack as its authors define it, `empirics.autoattack`) or
  "both"; with both, a point counts as robust at eps only if it survives
  both (the per-point worst case), and the gap, PGD accuracy minus worst-case
  accuracy, is how much PGD alone overestimates robustness.
- rotations (`thetas`): the random-rotation invariance profile of the paper
  (`empirics.profiles.invariance_profile`) and, next to it, the spatial
  attacks of `empirics.spatial` (worst of k random rotations, a grid of
  angles in [-theta, theta]).

Everything is in pixel space: images in [0, 1], eps in [0, 1]. A model that
expects normalised input is wrapped (`input_mean`, `input_std`), so the
attacks still see pixels. The model runs on its own device (that of its
first parameter; CPU if it has none); images and labels may live anywhere.
Rates carry Wilson 95 % intervals (`core.estimate.Estimate`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import Tensor, nn

from core.estimate import Estimate
from core.io import provenance as _provenance
from core.grids import check_grid
from core.outcomes import bits, correct_by_eps, unbits
from empirics.inference import attack_mode, model_device, predict
from empirics.autoattack import COMPONENTS, autoattack_profile, components, library_version
from empirics.external import check_classifier, with_input_normalization
from empirics.profiles import InvarianceProfile, invariance_profile, robustness_profile
from empirics.rot90 import RotationAttackOutcome, interior, rot90_attack_outcome
from empirics.spatial import SpatialProfile, spatial_profile

SCHEMA = "invrob.evaluation/1"
ATTACKS = ("pgd", "autoattack", "both")
DEFAULT_EPSILONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
DEFAULT_THETAS = tuple(float(t) for t in range(0, 181, 15))


def _rows(broken_at: tuple[int, ...], n_eps: int) -> tuple[tuple[bool, ...], ...]:
    """(n_eps, n): still correct at eps index j iff broken_at > j (`core.outcomes`)."""
    return tuple(tuple(bool(c) for c in row) for row in correct_by_eps(broken_at, n_eps))


@dataclass(frozen=True)
class Evaluation:
    """One model evaluated on n test points.

    pgd_broken_at / autoattack_broken_at: per point, the index of the
    smallest eps at which the attack makes it wrong (0: wrong when clean;
    len(epsilons): never), or None when that attack was not run."""

    epsilons: tuple[float, ...]
    clean_correct: tuple[bool, ...]
    pgd_broken_at: tuple[int, ...] | None
    autoattack_broken_at: tuple[int, ...] | None
    pgd_steps: int
    seed: int
    num_classes: int
    invariance: InvarianceProfile | None = None
    spatial: SpatialProfile | None = None
    dataset: str | None = None
    model: dict = field(default_factory=dict)
    command: str | None = None
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        n, k = len(self.clean_correct), len(self.epsilons)
        if self.pgd_broken_at is None and self.autoattack_broken_at is None:
            raise ValueError("an Evaluation needs at least one attack's outcomes.")
        for name in ("pgd_broken_at", "autoattack_broken_at"):
            row = getattr(self, name)
            if row is not None and (len(row) != n or any(not 0 <= b <= k for b in row)):
                raise ValueError(f"`{name}` must have {n} entries in [0, {k}].")

    # ------------------------------------------------------------ derived
    @property
    def n(self) -> int:
        return len(self.clean_correct)

    @property
    def attacks(self) -> tuple[str, ...]:
        return tuple(a for a, row in (("pgd", self.pgd_broken_at),
                                      ("autoattack", self.autoattack_broken_at)) if row is not None)

    @cached_property
    def clean_accuracy(self) -> Estimate:
        return Estimate.from_counts(sum(self.clean_correct), self.n)

    def correct(self, attack: str) -> tuple[tuple[bool, ...], ...]:
        """(n_eps, n) per-point correctness under "pgd", "autoattack" or
        "worst_case" (correct under every attack run)."""
        k = len(self.epsilons)
        if attack == "worst_case":
            rows = [self.correct(a) for a in self.attacks]
            return tuple(tuple(all(r[j][i] for r in rows) for i in range(self.n)) for j in range(k))
        broken = {"pgd": self.pgd_broken_at, "autoattack": self.autoattack_broken_at}.get(attack)
        if broken is None:
            raise ValueError(f"`attack` {attack!r} was not run; choose from "
                             f"{self.attacks + ('worst_case',)}.")
        return _rows(broken, k)

    def robust_accuracy(self, attack: str = "worst_case") -> tuple[Estimate, ...]:
        return tuple(Estimate.from_counts(sum(r), self.n) for r in self.correct(attack))

    def pgd_gap(self) -> tuple[Estimate, ...] | None:
        """Per eps, the fraction of points PGD leaves correct but AutoAttack
        breaks: PGD accuracy minus worst-case accuracy (None unless both ran)."""
        if len(self.attacks) < 2:
            return None
        pgd, worst = self.correct("pgd"), self.correct("worst_case")
        return tuple(Estimate.from_counts(sum(p and not w for p, w in zip(pr, wr)), self.n)
                     for pr, wr in zip(pgd, worst))

    # ------------------------------------------------------------ JSON
    def _per_eps(self, estimates) -> list[dict]:
        return [{"eps": e, **est.to_dict()} for e, est in zip(self.epsilons, estimates)]

    def to_dict(self) -> dict:
        robust = {a: self._per_eps(self.robust_accuracy(a)) for a in self.attacks}
        if len(self.attacks) > 1:
            robust["worst_case"] = self._per_eps(self.robust_accuracy("worst_case"))
        attacks = {}
        if self.pgd_broken_at is not None:
            attacks["pgd"] = {"steps": self.pgd_steps, "step_size": "2.5 * eps / steps",
                              "random_start": False, "loss": "ce",
                              "implementation": "empirics.attacks.pgd_profile"}
        if self.autoattack_broken_at is not None:
            attacks["autoattack"] = {"version": "standard", "components": list(COMPONENTS),
                                     "settings": [c.to_dict()
                                                  for c in components(self.num_classes)],
                                     "seed": self.seed, "library": library_version()}
        gap = self.pgd_gap()
        rotation = {}
        if self.invariance is not None:
            rotation["invariance"] = self.invariance.to_dict()
        if self.spatial is not None:
            rotation["spatial"] = self.spatial.to_dict()
        return {
            "schema": SCHEMA,
            "threat_model": "Linf",
            "dataset": self.dataset,
            "n_examples": self.n,
            "num_classes": self.num_classes,
            "eps": list(self.epsilons),
            "interval": "Wilson score, 95 %",
            "clean_acc": self.clean_accuracy.to_dict(),
            "robust_acc": robust,
            "pgd_overestimate": None if gap is None else self._per_eps(gap),
            "attacks": attacks,
            "rotation": rotation,
            "per_point": {
                "clean_correct": bits(self.clean_correct),
                "pgd_broken_at": None if self.pgd_broken_at is None else list(self.pgd_broken_at),
                "autoattack_broken_at": (None if self.autoattack_broken_at is None
                                         else list(self.autoattack_broken_at)),
            },
            "seed": self.seed,
            "model": dict(self.model),
            "command": self.command,
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Evaluation":
        """Rebuilds from the per-point outcomes; rates are recomputed."""
        pp, rot = d["per_point"], d.get("rotation", {})
        pgd = pp.get("pgd_broken_at")
        aa = pp.get("autoattack_broken_at")
        return cls(tuple(float(e) for e in d["eps"]), unbits(pp["clean_correct"]),
                   None if pgd is None else tuple(int(b) for b in pgd),
                   None if aa is None else tuple(int(b) for b in aa),
                   int(d.get("attacks", {}).get("pgd", {}).get("steps", 0)), int(d["seed"]),
                   int(d["num_classes"]),
                   InvarianceProfile.from_dict(rot["invariance"]) if "invariance" in rot else None,
                   SpatialProfile.from_dict(rot["spatial"]) if "spatial" in rot else None,
                   d.get("dataset"), dict(d.get("model", {})), d.get("command"),
                   dict(d.get("provenance", {})))


def _check_inputs(images, labels, attack, steps, batch_size):
    if not isinstance(images, Tensor) or images.dim() != 4 or len(images) == 0 \
            or not images.is_floating_point():
        raise ValueError("`images` must be a non-empty floating-point (N, C, H, W) tensor.")
    if bool(images.min() < 0) or bool(images.max() > 1):
        raise ValueError("`images` must lie in [0, 1] (pixel space); normalisation belongs "
                         "in the model (see `input_mean`, `input_std`).")
    if not isinstance(labels, Tensor) or labels.shape != (len(images),) or labels.is_floating_point():
        raise ValueError(f"`labels` must be an integer tensor of shape ({len(images)},).")
    if attack not in ATTACKS:
        raise ValueError(f"`attack` must be one of {ATTACKS}, got {attack!r}.")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"`steps` must be an integer >= 1, got {steps!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}.")


def evaluate(model: nn.Module, images: Tensor, labels: Tensor,
             epsilons=DEFAULT_EPSILONS, *, attack: str = "pgd", steps: int = 40,
             thetas=DEFAULT_THETAS, k: int = 10, n_grid: int = 31, seed: int = 0,
             num_classes: int | None = None, input_mean=None, input_std=None,
             batch_size: int = 500, interpolation: str = "nearest",
             dataset: str | None = None, model_info: dict | None = None,
             command: str | None = None, progress: bool = False) -> Evaluation:
    """Attack `model` at every eps of `epsilons` and measure its rotation
    profiles over `thetas` (None: no rotation profiles).

    images: (N, C, H, W) in [0, 1]; labels: (N,) ints. attack: "pgd",
    "autoattack" or "both". steps: PGD steps. k: random rotations per image
    for worst-of-k; n_grid: angles of the grid attack (odd, 0 included).
    input_mean / input_std: the model expects (x - mean) / std (one value or
    one per channel); the toolkit normalises inside a wrapper and eps stays
    in pixel space. num_classes: checked against the model's output (inferred
    from it when None). seed: random rotations and AutoAttack."""
    _check_inputs(images, labels, attack, steps, batch_size)
    grid = check_grid(epsilons, "epsilons", 0.0, 1.0)
    net = with_input_normalization(model, input_mean, input_std, images.shape[1])
    images, labels = images.detach().cpu(), labels.detach().cpu().long()
    num_classes = check_classifier(net, images, num_classes, dataset or "the data set")
    if bool(labels.min() < 0) or bool(labels.max() >= num_classes):
        raise ValueError(f"`labels` must lie in [0, {num_classes - 1}].")
    device = model_device(net)
    pgd_broken = aa_broken = None
    if attack in ("pgd", "both"):
        rob = robustness_profile(net, images, labels, grid, steps=steps, seed=seed,
                                 batch_size=batch_size, device=device, progress=progress)
        pgd_broken = rob.broken_at
    if attack in ("autoattack", "both"):
        aa = autoattack_profile(net, images, labels, grid, num_classes, seed=seed,
                                batch_size=batch_size, progress=progress)
        aa_broken = aa.broken_at
    inv = spatial = None
    if thetas is not None:
        inv = invariance_profile(net, images, labels, thetas, seed=seed, batch_size=batch_size,
                                 device=device, interpolation=interpolation, progress=progress)
        spatial = spatial_profile(net, images, labels, thetas, k=k, n_grid=n_grid, seed=seed,
                                  batch_size=batch_size, interpolation=interpolation,
                                  progress=progress)
        clean = inv.clean_correct
    else:
        with attack_mode(net):
            pred = torch.cat([predict(net, images[i:i + batch_size].to(device), batch_size).cpu()
                              for i in range(0, len(images), batch_size)])
        clean = tuple((pred == labels).tolist())
    info = dict(model_info or {})
    info.setdefault("class", type(model).__name__)
    info.setdefault("n_parameters", sum(p.numel() for p in model.parameters()))
    info["input_normalization"] = (None if net is model else
                                   {"mean": net.normalize.mean.flatten().tolist(),
                                    "std": net.normalize.std.flatten().tolist()})
    return Evaluation(grid, tuple(bool(c) for c in clean), pgd_broken, aa_broken, int(steps),
                      int(seed), int(num_classes), inv, spatial, dataset, info, command,
                      _provenance())


def paired_rot90(model: nn.Module, images: Tensor, epsilons, steps: int = 40, k: int = 1,
                 batch_size: int = 250) -> RotationAttackOutcome:
    """The Sec. 1.1 corollary's measurement: the same PGD (no random start,
    against clean predictions) on `images` and on their rot90^k, on a float64
    copy of `model`, with per-point outcomes (`empirics.rot90`). `interior`
    maps images to where no exactly tied pixels arise."""
    return rot90_attack_outcome(model, images, epsilons, steps=steps, k=k, batch_size=batch_size)


__all__ = ["ATTACKS", "Evaluation", "evaluate", "interior", "paired_rot90"]
