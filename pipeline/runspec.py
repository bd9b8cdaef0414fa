"""A declared run: a training config plus the profiles to measure on it.

``RunSpec.key`` is the run's identity in the run store: the first 16 hex
digits of the sha256 of the spec's canonical JSON (keys sorted, no spaces,
integral floats written as integers so ``30`` and ``30.0`` hash alike).
Every field of the training config and of the profile settings enters the
key, except where the data live (``data_dir``) and whether GPU kernels run
deterministically (``deterministic``): execution details that do not change
what a run computes; changing any other field (or a TrainConfig default)
makes a new run. A field in ``KEY_DEFAULTS`` enters the key only when it
differs from the value given there (a field added after runs were stored,
e.g. ``amp``, so that those runs keep their keys).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from core.grids import check_grid
from core.hashing import KEY_HEX_DIGITS, canonical, config_hash  # noqa: F401 (re-exported)
from empirics.train import TrainConfig

NOT_IDENTITY = ("data_dir", "deterministic")  # TrainConfig fields that do not change what a run computes
KEY_DEFAULTS = {"amp": False, "random_crop": 0, "hflip": False, "adv_warmup": 0.0,
                "lr_schedule": "step", "robust_check": 0}  # TrainConfig fields left out of the key at this value


def train_config_dict(config: Any) -> dict:
    """A training config as a dict: its `to_dict()` if it has one, else its fields."""
    if hasattr(config, "to_dict"):
        return config.to_dict()
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    raise TypeError("`train` must be a TrainConfig (a dataclass with to_dict())")


@dataclass(frozen=True)
class RunSpec:
    """One run of a figure: train `train`, then measure on `n_test` test
    images (a stratified subset drawn with `profile_seed`) the invariance
    profile over `thetas` and one robustness profile (PGD-`pgd_steps` over
    `epsilons`) per test rotation B in `test_rotations`."""

    train: Any  # empirics.train.TrainConfig
    thetas: tuple[float, ...]
    epsilons: tuple[float, ...]
    pgd_steps: int
    test_rotations: tuple[float, ...] = (0.0,)
    n_test: int = 500
    profile_seed: int = 0

    def __post_init__(self):
        train_config_dict(self.train)  # raises TypeError for anything else
        set_ = object.__setattr__
        set_(self, "thetas", check_grid(self.thetas, "thetas", 0.0, 180.0))
        set_(self, "epsilons", check_grid(self.epsilons, "epsilons", 0.0, 1.0))
        set_(self, "test_rotations", check_grid(self.test_rotations, "test_rotations", 0.0, 180.0))
        for name in ("pgd_steps", "n_test"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        if isinstance(self.profile_seed, bool) or not isinstance(self.profile_seed, int):
            raise ValueError(f"`profile_seed` must be an integer, got {self.profile_seed!r}")

    def to_dict(self) -> dict:
        return {"train": train_config_dict(self.train), "thetas": list(self.thetas),
                "epsilons": list(self.epsilons), "pgd_steps": self.pgd_steps,
                "test_rotations": list(self.test_rotations), "n_test": self.n_test,
                "profile_seed": self.profile_seed}

    @classmethod
    def from_dict(cls, d: dict, train_type: type | None = None) -> "RunSpec":
        """Inverse of to_dict; `train_type` defaults to empirics.train.TrainConfig."""
        if train_type is None:
            train_type = TrainConfig
        train = (train_type.from_dict(d["train"]) if hasattr(train_type, "from_dict")
                 else train_type(**d["train"]))
        return cls(train, tuple(d["thetas"]), tuple(d["epsilons"]), int(d["pgd_steps"]),
                   tuple(d["test_rotations"]), int(d["n_test"]), int(d["profile_seed"]))

    @property
    def key(self) -> str:
        """Stable 16-hex-digit hash of the whole spec (the run-store folder name)."""
        d = self.to_dict()
        d["train"] = {k: v for k, v in d["train"].items() if k not in NOT_IDENTITY
                      and not (k in KEY_DEFAULTS and v == KEY_DEFAULTS[k])}
        return config_hash(d)

    def describe(self) -> str:
        """Short human label: model, data set, training rotation/eps/curriculum."""
        t = train_config_dict(self.train)
        parts = [str(t.get("model", "?")), str(t.get("dataset", "?"))]
        for name, short in (("train_rotation", "theta"), ("adv_eps", "eps"), ("epochs", "epochs")):
            if name in t:
                parts.append(f"{short}={t[name]:g}")
        if t.get("curriculum"):
            parts.append(f"curriculum of {len(t['curriculum'])} stages")
        return " ".join(parts)
