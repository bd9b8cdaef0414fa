"""AutoAttack (Croce and Hein, ICML 2020), standard version, as its authors
define it.

The standard version runs APGD-CE, APGD-T, FAB-T and Square in turn, each on
the points the previous ones left correct. Its settings, read from the
authors' code (`AutoAttack(version="standard")`, `set_version`) for the
L-inf norm:

| component | iterations | restarts | target classes |
|---|---|---|---|
| APGD-CE | 100 | 1 | - |
| APGD-T (targeted DLR loss) | 100 | 1 | 9 |
| FAB-T | 100 | 1 | 9 |
| Square (p_init 0.8, no schedule rescaling) | 5,000 queries | 1 | - |

With fewer than 10 classes the target count is the number of other classes.

Two routes run these settings (`library`):
- "pyautoattack" (the default): the authors' code itself, as the PyPI package
  `pyautoattack` ships it (the attack files unchanged; the driver class takes
  keyword arguments and logs through `logging`), called through its own
  driver `AutoAttack(...).run_standard_evaluation`;
- "torchattacks": torchattacks' APGD, APGDT, FAB and Square chained by its
  MultiAttack, each set to the settings above (torchattacks' own
  `AutoAttack(version="standard")` runs 10 iterations per component and
  rescales Square's schedule, which is weaker).
Both are optional extras (`pip install 'invrob[autoattack]'` installs the
default) imported here only. Every result records the library, its version
and each component's settings as read back from the attack objects.

`autoattack_profile` runs it over an eps grid, smallest eps first, and
attacks at a larger eps only the points still correct at the smaller one:
an adversarial example of the smaller ball lies in the larger one, so a
point broken at eps_j counts as broken at every larger eps (the same rule
as `empirics.attacks.pgd_profile`). Points misclassified clean count as
wrong at every eps and are not attacked. Global RNG state is left as it
was (both libraries seed the global generator).

`AutoAttackProfileResult.compare(pgd_broken_at)` sets it against a PGD
profile of the same points, in both directions: points PGD leaves correct
that AutoAttack breaks (PGD's overestimate) and points AutoAttack leaves
correct that PGD breaks; the per-point worst case is correct only if both
leave it correct.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version as _dist_version

import torch
from torch import Tensor, nn
from tqdm import tqdm

from core.errors import UsageError
from core.grids import check_grid
from empirics.inference import attack_mode, model_device, predict

COMPONENTS = ("apgd-ce", "apgd-t", "fab-t", "square")
REFERENCE = "pyautoattack"
LIBRARIES = (REFERENCE, "torchattacks")
INSTALL_HINT = "pip install 'invrob[autoattack]' (or pip install pyautoattack)"
MAX_TARGETS = 9  # the authors' standard target count (APGD-T and FAB-T)


@dataclass(frozen=True)
class Component:
    """One attack of the chain. iterations: APGD / FAB iterations, Square's
    queries; targets: target classes of a targeted attack, else None."""

    name: str
    iterations: int
    restarts: int
    targets: int | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "iterations": self.iterations, "restarts": self.restarts,
                "targets": self.targets}

    @classmethod
    def from_dict(cls, d: dict) -> "Component":
        return cls(str(d["name"]), int(d["iterations"]), int(d["restarts"]),
                   None if d.get("targets") is None else int(d["targets"]))


def standard_components(n_classes: int = 10) -> tuple[Component, ...]:
    """The authors' standard L-inf settings (module table) for `n_classes`."""
    targets = min(MAX_TARGETS, n_classes - 1)
    return (Component("apgd-ce", 100, 1), Component("apgd-t", 100, 1, targets),
            Component("fab-t", 100, 1, targets), Component("square", 5000, 1))


def _check_library(library: str) -> str:
    if library not in LIBRARIES:
        raise ValueError(f"`library` must be one of {', '.join(LIBRARIES)}, got {library!r}.")
    return library


def _import(library: str):
    try:
        return import_module(_check_library(library))
    except ImportError:
        hint = INSTALL_HINT if library == REFERENCE else "pip install torchattacks"
        raise UsageError(f"--attack autoattack needs {library}: {hint}") from None


def require(library: str = REFERENCE) -> None:
    """Raise a one-line UsageError telling how to install `library` if it is absent."""
    _import(library)


def library_version(library: str = REFERENCE) -> str | None:
    """'pyautoattack X.Y.Z' (or that of `library`), or None when it is not installed."""
    try:
        import_module(_check_library(library))
    except ImportError:
        return None
    try:
        return f"{library} {_dist_version(library)}"
    except PackageNotFoundError:
        return f"{library} unknown"


# ------------------------------------------------------------ the two routes
def _reference(model: nn.Module, eps: float, n_classes: int, seed: int, device):
    """The authors' driver, standard version; only the target count is lowered
    when there are fewer than 10 classes."""
    aa = _import(REFERENCE).AutoAttack(model, norm="Linf", eps=eps, version="standard",
                                       seed=seed, device=device)
    aa.verbose = False
    targets = standard_components(n_classes)[1].targets
    aa.apgd_targeted.n_target_classes = min(aa.apgd_targeted.n_target_classes, targets)
    aa.fab.n_target_classes = min(aa.fab.n_target_classes, targets)
    return aa


def _reference_components(aa) -> tuple[Component, ...]:
    if list(aa.attacks_to_run) != list(COMPONENTS):
        raise RuntimeError(f"pyautoattack's standard version runs {aa.attacks_to_run}, "
                           f"expected {list(COMPONENTS)}.")
    return (Component("apgd-ce", aa.apgd.n_iter, aa.apgd.n_restarts),
            Component("apgd-t", aa.apgd_targeted.n_iter, aa.apgd_targeted.n_restarts,
                      aa.apgd_targeted.n_target_classes),
            Component("fab-t", aa.fab.n_iter, aa.fab.n_restarts, aa.fab.n_target_classes),
            Component("square", aa.square.n_queries, aa.square.n_restarts))


def _torchattacks(model: nn.Module, eps: float, n_classes: int, seed: int, device):
    """torchattacks' four attacks, each set to the authors' standard settings."""
    ta = _import("torchattacks")
    ce, t, fab, sq = standard_components(n_classes)
    attacks = [
        ta.APGD(model, norm="Linf", eps=eps, steps=ce.iterations, n_restarts=ce.restarts,
                seed=seed, loss="ce", eot_iter=1, rho=0.75),
        ta.APGDT(model, norm="Linf", eps=eps, steps=t.iterations, n_restarts=t.restarts,
                 seed=seed, eot_iter=1, rho=0.75, n_classes=t.targets + 1),
        ta.FAB(model, norm="Linf", eps=eps, steps=fab.iterations, n_restarts=fab.restarts,
               seed=seed, multi_targeted=True, n_classes=fab.targets + 1),
        ta.Square(model, norm="Linf", eps=eps, n_queries=sq.iterations, n_restarts=sq.restarts,
                  p_init=0.8, loss="margin", resc_schedule=False, seed=seed),
    ]
    chain = ta.MultiAttack(attacks)
    for a in (chain, *attacks):
        a.set_device(device)
    return chain


def _torchattacks_components(chain) -> tuple[Component, ...]:
    ce, t, fab, sq = chain.attacks
    return (Component("apgd-ce", ce.steps, ce.n_restarts),
            Component("apgd-t", t.steps, t.n_restarts, t.n_target_classes),
            Component("fab-t", fab.steps, fab.n_restarts, fab.n_target_classes),
            Component("square", sq.n_queries, sq.n_restarts))


def components(n_classes: int = 10, library: str = REFERENCE) -> tuple[Component, ...]:
    """The settings `library` runs, read back from its attack objects."""
    _check_library(library)
    model = nn.Sequential(nn.Flatten(), nn.Linear(1, n_classes))  # a stand-in; nothing runs
    if library == REFERENCE:
        return _reference_components(_reference(model, 0.1, n_classes, 0, "cpu"))
    return _torchattacks_components(_torchattacks(model, 0.1, n_classes, 0, torch.device("cpu")))


def _check_args(eps, n_classes, library) -> float:
    eps = float(eps)
    if not 0 <= eps <= 1:
        raise ValueError(f"`eps` must lie in [0, 1] (pixel space), got {eps}.")
    if not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"`n_classes` must be an integer >= 2, got {n_classes!r}.")
    _check_library(library)
    return eps


def autoattack(model: nn.Module, x: Tensor, y: Tensor, eps: float, n_classes: int,
               seed: int = 0, batch_size: int = 500, library: str = REFERENCE) -> Tensor:
    """Adversarial examples (shape of x, in [0, 1], within eps of x in L-inf)
    from the standard AutoAttack against labels `y`, on the model's device.
    Points no component breaks come back unchanged (up to the projection)."""
    eps = _check_args(eps, n_classes, library)
    _import(library)
    device = model_device(model)
    out = []
    devices = [device] if device.type == "cuda" else []
    with attack_mode(model), torch.random.fork_rng(devices=devices):
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            if library == REFERENCE:
                aa = _reference(model, eps, n_classes, seed, device)
                adv = aa.run_standard_evaluation(xb, yb, batch_size=batch_size)[0]
            else:
                adv = _torchattacks(model, eps, n_classes, seed, device)(xb, yb)
            adv = adv.detach()  # (b, C, H, W)
            adv = torch.clamp(torch.minimum(torch.maximum(adv, xb - eps), xb + eps), 0.0, 1.0)
            out.append(adv)
    return torch.cat(out) if out else x.to(device).clone()


# ------------------------------------------------------------ results
@dataclass(frozen=True)
class PgdComparison:
    """PGD against AutoAttack on the same n points, per eps (counts).

    missed_by_pgd[j]: PGD leaves the point correct, AutoAttack breaks it
    (PGD's overestimate); missed_by_autoattack[j]: the reverse. A point is
    correct in the worst case when both attacks leave it correct, so
    pgd_correct - worst_case_correct == missed_by_pgd."""

    epsilons: tuple[float, ...]
    n: int
    pgd_correct: tuple[int, ...]
    autoattack_correct: tuple[int, ...]
    worst_case_correct: tuple[int, ...]
    missed_by_pgd: tuple[int, ...]
    missed_by_autoattack: tuple[int, ...]

    def gap(self) -> tuple[float, ...]:
        """PGD accuracy minus worst-case accuracy, per eps."""
        return tuple(m / self.n for m in self.missed_by_pgd)

    def to_dict(self) -> dict:
        return {"epsilons": list(self.epsilons), "n": self.n,
                "pgd_correct": list(self.pgd_correct),
                "autoattack_correct": list(self.autoattack_correct),
                "worst_case_correct": list(self.worst_case_correct),
                "missed_by_pgd": list(self.missed_by_pgd),
                "missed_by_autoattack": list(self.missed_by_autoattack)}


@dataclass(frozen=True)
class AutoAttackProfileResult:
    """broken_at[i]: index of the smallest eps at which point i is
    misclassified under AutoAttack (0 if wrong when clean, len(epsilons) if
    never). library / library_version / components: what ran (components
    as read back from the attack objects; see the module table)."""

    epsilons: tuple[float, ...]
    broken_at: tuple[int, ...]
    seed: int
    version: str = "standard"
    library: str = REFERENCE
    library_version: str | None = None
    components: tuple[Component, ...] = ()

    @property
    def n(self) -> int:
        return len(self.broken_at)

    def correct(self) -> tuple[tuple[bool, ...], ...]:
        """(n_eps, n): point i still correct at eps index j."""
        return tuple(tuple(b > j for b in self.broken_at) for j in range(len(self.epsilons)))

    def compare(self, pgd_broken_at) -> PgdComparison:
        """Both directions of PGD's error against this result, per eps, on the
        same points (pgd_broken_at: as `broken_at`, from a PGD profile)."""
        pgd = tuple(int(b) for b in pgd_broken_at)
        if len(pgd) != self.n:
            raise ValueError(f"`pgd_broken_at` must have one entry per point ({self.n}), "
                             f"got {len(pgd)}.")
        rows = []
        for j in range(len(self.epsilons)):
            p = [b > j for b in pgd]
            a = [b > j for b in self.broken_at]
            rows.append((sum(p), sum(a), sum(x and z for x, z in zip(p, a)),
                         sum(x and not z for x, z in zip(p, a)),
                         sum(z and not x for x, z in zip(p, a))))
        cols = tuple(zip(*rows)) if rows else ((),) * 5
        return PgdComparison(self.epsilons, self.n, *cols)

    def to_dict(self) -> dict:
        return {"epsilons": list(self.epsilons), "broken_at": list(self.broken_at),
                "seed": self.seed, "version": self.version, "library": self.library,
                "library_version": self.library_version,
                "components": [c.to_dict() for c in self.components]}

    @classmethod
    def from_dict(cls, d: dict) -> "AutoAttackProfileResult":
        return cls(tuple(float(e) for e in d["epsilons"]), tuple(int(b) for b in d["broken_at"]),
                   int(d["seed"]), str(d.get("version", "standard")),
                   str(d.get("library", REFERENCE)), d.get("library_version"),
                   tuple(Component.from_dict(c) for c in d.get("components", ())))


def autoattack_profile(model: nn.Module, images: Tensor, labels: Tensor, epsilons,
                       n_classes: int, seed: int = 0, batch_size: int = 500,
                       progress: bool = False, library: str = REFERENCE
                       ) -> AutoAttackProfileResult:
    """AutoAttack accuracy per point over an eps grid (see the module notes)."""
    grid = check_grid(epsilons, "epsilons", 0.0, 1.0)
    _check_args(0.0, n_classes, library)
    _import(library)
    device = model_device(model)
    labels = labels.cpu()
    with attack_mode(model):
        pred = torch.cat([predict(model, images[i:i + batch_size].to(device), batch_size).cpu()
                          for i in range(0, len(images), batch_size)])  # (N,)
    n_eps = len(grid)
    broken_at = torch.where(pred == labels, n_eps, 0)  # (N,)
    for j, eps in enumerate(tqdm(grid, desc="autoattack", disable=not progress, leave=False)):
        if eps <= 0:
            continue
        idx = (broken_at == n_eps).nonzero().flatten()
        if len(idx) == 0:
            break
        adv = autoattack(model, images[idx], labels[idx], eps, n_classes, seed, batch_size,
                         library)
        with attack_mode(model):
            wrong = predict(model, adv, batch_size).cpu() != labels[idx]
        broken_at[idx[wrong]] = j
    return AutoAttackProfileResult(grid, tuple(int(b) for b in broken_at.tolist()), int(seed),
                                   library=library, library_version=library_version(library),
                                   components=components(n_classes, library))
