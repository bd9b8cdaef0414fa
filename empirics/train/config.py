"""Training configuration: `Stage`, `TrainConfig`, the CuSP schedule.

One default per option: the command line (`empirics.train.cli`) reads its
defaults from here, so the API and the CLI agree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from core import validate
from core.errors import UsageError
from empirics.data import DATASETS
from empirics.external import check_kwargs
from empirics.models.registry import MODEL_NAMES, MODELS

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("step", "cosine")
MAX_ROBUST_CHECK = 10_000  # held-out images of the per-epoch robust-accuracy check
INTERPOLATIONS = ("nearest", "bilinear")
MAX_CROP_PAD = 16
SHAPE_KWARGS = ("in_channels", "num_classes", "image_size", "mean", "std")  # set by the data set
DEFAULT_LR = {"adam": 1e-3, "sgd": 0.1}  # sgd: the authors' CIFAR-10 value


# ---------------------------------------------------------------- validation
def _check(ok: bool, name: str, rule: str, value: Any) -> None:
    """UsageError naming the config field and its command-line flag."""
    if not ok:
        raise UsageError(f"`{name}` (--{name.replace('_', '-')}) must be {rule}, got {value!r}")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _coerce(obj, names, kind=float) -> None:
    """Store validated numbers as plain floats / ints (30 and 30.0, or numpy
    integers, give the same config JSON)."""
    for name in names:
        value = getattr(obj, name)
        if value is not None:
            object.__setattr__(obj, name, kind(value))


# ---------------------------------------------------------------- stages
@dataclass(frozen=True)
class Stage:
    """`epochs` epochs at rotation range +-`theta` degrees, PGD radius `eps`
    (0: no attack) and learning rate `lr`."""

    epochs: int
    theta: float
    eps: float
    lr: float

    def __post_init__(self):
        _check(_is_int(self.epochs) and self.epochs >= 1, "epochs", "a positive integer", self.epochs)
        _check(_is_real(self.theta) and 0 <= self.theta <= 180, "theta", "in [0, 180] degrees", self.theta)
        _check(_is_real(self.eps) and 0 <= self.eps <= 1, "eps", "in [0, 1] (pixel space)", self.eps)
        _check(_is_real(self.lr) and self.lr > 0, "lr", "a positive number", self.lr)
        _coerce(self, ("theta", "eps", "lr"))
        _coerce(self, ("epochs",), int)

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "theta": self.theta, "eps": self.eps, "lr": self.lr}

    @classmethod
    def from_dict(cls, d: dict) -> "Stage":
        return cls(int(d["epochs"]), float(d["theta"]), float(d["eps"]), float(d["lr"]))


# CuSP in the authors' code, 120 epochs: stages end after epochs 74, 89, 99, 120
# (lr 0.1, 0.01, 0.001, 0.0001); theta/eps 120/2, 150/4, then 180/8 (x 1/255).
CUSP_ENDS = (74, 89, 99, 120)


def cusp_stages(epochs: int, thetas=(120.0, 150.0, 180.0), eps=(2 / 255, 4 / 255, 8 / 255),
                lr: float = 0.1, lr_gamma: float = 0.1) -> tuple[Stage, ...]:
    """The paper's CuSP schedule with its stage boundaries scaled to `epochs`
    (rounded half up; stages that round to zero epochs are dropped)."""
    _check(_is_int(epochs) and epochs >= 1, "epochs", "a positive integer", epochs)
    _check(len(thetas) == 3 and len(eps) == 3, "curriculum", "three thetas and three eps", (thetas, eps))
    plan = [(thetas[0], eps[0], lr), (thetas[1], eps[1], lr * lr_gamma),
            (thetas[2], eps[2], lr * lr_gamma ** 2), (thetas[2], eps[2], lr * lr_gamma ** 3)]
    stages, start = [], 0
    for end120, (theta, e, stage_lr) in zip(CUSP_ENDS, plan):
        end = math.floor(epochs * end120 / 120 + 0.5)
        if end > start:
            stages.append(Stage(end - start, float(theta), float(e), float(stage_lr)))
            start = end
    return tuple(stages)


def parse_stages(text: str) -> tuple[Stage, ...]:
    """'EPOCHS:THETA:EPS:LR,...' -> stages."""
    try:
        parts = [[float(v) for v in item.split(":")] for item in text.split(",")]
    except ValueError:
        parts = []
    if not parts or any(len(p) != 4 or p[0] != int(p[0]) for p in parts):
        raise UsageError(f"`curriculum` (--curriculum) must be 'cusp' or "
                         f"EPOCHS:THETA:EPS:LR[,...], got {text!r}")
    return tuple(Stage(int(p[0]), p[1], p[2], p[3]) for p in parts)


# ---------------------------------------------------------------- config
@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and nothing else).

    Without a curriculum every epoch uses `train_rotation`, `adv_eps` and `lr`
    times `lr_gamma` per milestone passed (epochs counted from 0, as in
    torch's MultiStepLR). With one, each stage sets theta, eps and lr, and
    the stages' epochs must add up to `epochs`.
    """

    model: str = "stdcnn"
    dataset: str = "mnist5k"
    epochs: int = 15
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    train_rotation: float = 0.0
    adv_eps: float = 0.0
    adv_steps: int = 10
    adv_step_size: float | None = None  # None: 2.5 * eps / adv_steps
    adv_random_start: bool = True
    curriculum: tuple[Stage, ...] | None = None
    interpolation: str = "nearest"
    seed: int = 0
    data_dir: str | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    model_kwargs: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    # Execution: deterministic GPU kernels (same results as without on CPU);
    # amp: bf16 autocast for the training step's forward pass (attacks stay float32).
    deterministic: bool = False
    amp: bool = False
    # CIFAR-10 augmentation (the paper's §4): zero-pad by `random_crop` pixels and crop back
    # at a random offset; mirror left-right with probability 1/2 when `hflip`. Both come
    # before the rotation; 0 / False leave the images as they are.
    random_crop: int = 0
    hflip: bool = False
    # Short adversarial training (the field's usual aids): the training eps ramps linearly
    # from 0 over the first `adv_warmup` epochs (fractions allowed; per step), and
    # `lr_schedule="cosine"` scales the rate of every step by 0.5 (1 + cos(pi t / T)) over
    # all T steps of the run (instead of the step milestones). `robust_check` > 0: after
    # every epoch, PGD-10 accuracy at the training eps on that many held-out test images,
    # so that a collapse of robust accuracy (catastrophic overfitting) is seen and recorded.
    adv_warmup: float = 0.0
    lr_schedule: str = "step"
    robust_check: int = 0

    def __post_init__(self):

        _check(self.model in MODEL_NAMES, "model", f"one of {', '.join(MODEL_NAMES)}", self.model)
        _check(self.dataset in DATASETS, "dataset", f"one of {', '.join(DATASETS)}", self.dataset)
        _check(_is_int(self.epochs) and 1 <= self.epochs <= validate.MAX_EPOCHS, "epochs",
               f"an integer in [1, {validate.MAX_EPOCHS:,}]", self.epochs)
        _check(_is_int(self.batch_size) and 1 <= self.batch_size <= validate.MAX_BATCH,
               "batch_size", f"an integer in [1, {validate.MAX_BATCH:,}]", self.batch_size)
        _check(self.optimizer in OPTIMIZERS, "optimizer", "'sgd' or 'adam'", self.optimizer)
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.optimizer])
        _check(_is_real(self.lr) and self.lr > 0, "lr", "a positive number", self.lr)
        _check(_is_real(self.momentum) and 0 <= self.momentum < 1, "momentum", "in [0, 1)", self.momentum)
        _check(_is_real(self.weight_decay) and self.weight_decay >= 0, "weight_decay", ">= 0",
               self.weight_decay)
        self._check_schedule()
        self._check_attack()
        _check(_is_real(self.adv_warmup) and 0 <= self.adv_warmup <= self.epochs, "adv_warmup",
               f"in [0, epochs={self.epochs}] (epochs of linear eps ramp)", self.adv_warmup)
        _check(self.lr_schedule in LR_SCHEDULES, "lr_schedule", "'step' or 'cosine'",
               self.lr_schedule)
        _check(self.lr_schedule == "step" or (self.curriculum is None and not self.lr_milestones),
               "lr_schedule", "'step' when a curriculum or lr milestones set the rates",
               self.lr_schedule)
        _check(_is_int(self.robust_check) and 0 <= self.robust_check <= MAX_ROBUST_CHECK,
               "robust_check", f"an integer in [0, {MAX_ROBUST_CHECK}] (held-out images)",
               self.robust_check)
        _check(self.interpolation in INTERPOLATIONS, "interpolation", "'nearest' or 'bilinear'",
               self.interpolation)
        _check(_is_int(self.seed) and 0 <= self.seed <= validate.MAX_SEED, "seed",
               "an integer in [0, 2^63 - 1]", self.seed)
        for name in ("train_subset", "test_subset"):
            v = getattr(self, name)
            _check(v is None or (_is_int(v) and 1 <= v <= validate.MAX_SAMPLES), name,
                   f"an integer in [1, {validate.MAX_SAMPLES:,}] or None", v)
        self._check_model_kwargs()
        for name in ("deterministic", "amp", "hflip"):
            _check(isinstance(getattr(self, name), bool), name, "a bool", getattr(self, name))
        _check(_is_int(self.random_crop) and 0 <= self.random_crop <= MAX_CROP_PAD, "random_crop",
               f"an integer in [0, {MAX_CROP_PAD}] (pixels of padding)", self.random_crop)
        _coerce(self, ("lr", "momentum", "weight_decay", "lr_gamma", "train_rotation", "adv_eps",
                       "adv_step_size", "adv_warmup"))
        _coerce(self, ("epochs", "batch_size", "adv_steps", "seed", "train_subset", "test_subset",
                       "robust_check"), int)

    def _check_schedule(self) -> None:
        m = self.lr_milestones
        _check(isinstance(m, tuple) and all(_is_int(v) and v >= 1 for v in m)
               and list(m) == sorted(set(m)), "lr_milestones",
               "a strictly increasing tuple of positive integers", m)
        object.__setattr__(self, "lr_milestones", tuple(int(v) for v in m))
        _check(_is_real(self.lr_gamma) and 0 < self.lr_gamma <= 1, "lr_gamma", "in (0, 1]", self.lr_gamma)
        _check(_is_real(self.train_rotation) and 0 <= self.train_rotation <= 180, "train_rotation",
               "in [0, 180] degrees", self.train_rotation)
        c = self.curriculum
        if c is not None:
            _check(isinstance(c, tuple) and len(c) > 0 and all(isinstance(s, Stage) for s in c),
                   "curriculum", "a non-empty tuple of Stage", c)
            _check(sum(s.epochs for s in c) == self.epochs, "curriculum",
                   f"stages adding up to epochs={self.epochs}", sum(s.epochs for s in c))
            _check(not m, "lr_milestones", "empty when a curriculum sets the learning rates", m)
            _check(self.train_rotation == 0, "train_rotation", "0 when a curriculum sets theta",
                   self.train_rotation)

    def _check_model_kwargs(self) -> None:
        kw = self.model_kwargs
        _check(isinstance(kw, tuple) and all(
            isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in kw),
            "model_kwargs", "a tuple of (name, value) pairs", kw)
        fixed = [k for k, _ in kw if k in SHAPE_KWARGS]
        _check(not fixed, "model_kwargs", f"free of {', '.join(SHAPE_KWARGS)} (set by the data "
               "set)", fixed)
        check_kwargs(MODELS[self.model][0], dict(kw), f"model {self.model!r}")

    def _check_attack(self) -> None:
        _check(_is_real(self.adv_eps) and 0 <= self.adv_eps <= 1, "adv_eps", "in [0, 1] (pixel space)",
               self.adv_eps)
        _check(_is_int(self.adv_steps) and 1 <= self.adv_steps <= validate.MAX_ATTACK_STEPS,
               "adv_steps", f"an integer in [1, {validate.MAX_ATTACK_STEPS:,}]", self.adv_steps)
        _check(self.curriculum is None or self.adv_eps == 0, "adv_eps", "0 when a curriculum sets eps",
               self.adv_eps)
        s = self.adv_step_size
        _check(s is None or (_is_real(s) and s > 0), "adv_step_size", "a positive number or None", s)
        _check(isinstance(self.adv_random_start, bool), "adv_random_start", "a bool",
               self.adv_random_start)

    @property
    def attacked(self) -> bool:
        """Whether any epoch trains against an attack (eps > 0)."""
        return any(self.stage_at(e).eps > 0 for e in range(self.epochs))

    def stage_at(self, epoch: int) -> Stage:
        """The one-epoch stage in force at `epoch` (counted from 0)."""
        if self.curriculum is None:
            drops = sum(epoch >= m for m in self.lr_milestones)
            return Stage(1, float(self.train_rotation), float(self.adv_eps),
                         self.lr * self.lr_gamma ** drops)
        end = 0
        for stage in self.curriculum:
            end += stage.epochs
            if epoch < end:
                return Stage(1, stage.theta, stage.eps, stage.lr)
        raise ValueError(f"`epoch` must be < {self.epochs}, got {epoch}")

    def step_factors(self, epoch: int, step: int, steps_per_epoch: int) -> tuple[float, float]:
        """(lr factor, eps factor) of training step `step` of `epoch` (both from
        0): the cosine schedule and the eps warm-up; (1, 1) when neither is set."""
        t = epoch * steps_per_epoch + step
        lr = 1.0
        if self.lr_schedule == "cosine":
            lr = 0.5 * (1.0 + math.cos(math.pi * t / (self.epochs * steps_per_epoch)))
        eps = 1.0
        if self.adv_warmup > 0:
            eps = min(1.0, (t + 1) / (self.adv_warmup * steps_per_epoch))
        return lr, eps

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["lr_milestones"] = list(self.lr_milestones)
        d["curriculum"] = None if self.curriculum is None else [s.to_dict() for s in self.curriculum]
        d["model_kwargs"] = [list(p) for p in self.model_kwargs]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"config has unknown field(s): {', '.join(unknown)}")
        d = dict(d)
        if "lr_milestones" in d:
            d["lr_milestones"] = tuple(d["lr_milestones"])
        if d.get("curriculum") is not None:
            d["curriculum"] = tuple(s if isinstance(s, Stage) else Stage.from_dict(s)
                                    for s in d["curriculum"])
        if "model_kwargs" in d:
            d["model_kwargs"] = tuple(tuple(p) for p in d["model_kwargs"])
        return cls(**d)


