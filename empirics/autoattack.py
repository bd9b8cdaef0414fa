"""AutoAttack (Croce and Hein, 2020), standard version, from torchattacks.

The standard version runs APGD-CE, APGD-T, FAB-T and Square (5,000
queries) in turn, each on the points the previous ones left correct. It
comes from `torchattacks.AutoAttack(model, norm="Linf", eps, version=
"standard", n_classes, seed)`; torchattacks is an optional extra
(`pip install 'invrob[autoattack]'`) and is imported here only.

`autoattack_profile` runs it over an eps grid, smallest eps first, and
attacks at a larger eps only the points still correct at the smaller one:
an adversarial example of the smaller ball lies in the larger one, so a
point broken at eps_j counts as broken at every larger eps (the same rule
as `empirics.attacks.pgd_profile`). Points misclassified clean count as
wrong at every eps and are not attacked. Global RNG state is left as it
was (torchattacks seeds the global generator).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm import tqdm

from core.errors import UsageError
from core.grids import check_grid
from empirics.attacks import attack_mode, predict
from empirics.attacks import model_device

COMPONENTS = ("apgd-ce", "apgd-t", "fab-t", "square")
INSTALL_HINT = "pip install 'invrob[autoattack]' (or pip install torchattacks)"


def _torchattacks():
    try:
        import torchattacks
    except ImportError:
        raise UsageError(f"--attack autoattack needs torchattacks: {INSTALL_HINT}") from None
    return torchattacks


def require() -> None:
    """Raise a one-line UsageError telling how to install torchattacks if it is absent."""
    _torchattacks()


def library_version() -> str | None:
    """'torchattacks X.Y.Z', or None when it is not installed."""
    try:
        import torchattacks
    except ImportError:
        return None
    return f"torchattacks {getattr(torchattacks, '__version__', 'unknown')}"


@dataclass(frozen=True)
class AutoAttackProfileResult:
    """broken_at[i]: index of the smallest eps at which point i is
    misclassified under AutoAttack (0 if wrong when clean, len(epsilons) if
    never)."""

    epsilons: tuple[float, ...]
    broken_at: tuple[int, ...]
    seed: int
    version: str = "standard"

    @property
    def n(self) -> int:
        return len(self.broken_at)

    def correct(self) -> tuple[tuple[bool, ...], ...]:
        """(n_eps, n): point i still correct at eps index j."""
        return tuple(tuple(b > j for b in self.broken_at) for j in range(len(self.epsilons)))


def autoattack(model: nn.Module, x: Tensor, y: Tensor, eps: float, n_classes: int,
               seed: int = 0, batch_size: int = 500) -> Tensor:
    """Adversarial examples (shape of x, in [0, 1], within eps of x in L-inf)
    from the standard AutoAttack against labels `y`, on the model's device."""
    ta = _torchattacks()
    eps = float(eps)
    if not 0 <= eps <= 1:
        raise ValueError(f"`eps` must lie in [0, 1] (pixel space), got {eps}.")
    if not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"`n_classes` must be an integer >= 2, got {n_classes!r}.")
    device = model_device(model)
    out = []
    devices = [device] if device.type == "cuda" else []
    with attack_mode(model), torch.random.fork_rng(devices=devices):
        attack = ta.AutoAttack(model, norm="Linf", eps=eps, version="standard",
                               n_classes=n_classes, seed=seed)
        attack.set_device(device)
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            adv = attack(xb, yb).detach()  # (b, C, H, W)
            adv = torch.clamp(torch.minimum(torch.maximum(adv, xb - eps), xb + eps), 0.0, 1.0)
            out.append(adv)
    return torch.cat(out)


def autoattack_profile(model: nn.Module, images: Tensor, labels: Tensor, epsilons,
                       n_classes: int, seed: int = 0, batch_size: int = 500,
                       progress: bool = False) -> AutoAttackProfileResult:
    """AutoAttack accuracy per point over an eps grid (see the module notes)."""
    grid = check_grid(epsilons, "epsilons", 0.0, 1.0)
    _torchattacks()
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
        adv = autoattack(model, images[idx], labels[idx], eps, n_classes, seed, batch_size)
        with attack_mode(model):
            wrong = predict(model, adv, batch_size).cpu() != labels[idx]
        broken_at[idx[wrong]] = j
    return AutoAttackProfileResult(grid, tuple(int(b) for b in broken_at.tolist()), int(seed))
