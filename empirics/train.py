"""One training loop, configured: rotation augmentation, PGD adversarial
training on the rotated images, curricula such as the paper's CuSP.

Each batch: every image is rotated by its own angle uniform in
[-theta, theta] (theta of the current stage); if eps > 0, PGD attacks the
rotated batch (model in eval mode during the attack) and the model is
trained on the adversarial images only, with cross-entropy.

A run folder holds
  config.json    `TrainConfig.to_dict()`
  checkpoint.pt  tensors and primitive containers only (model and optimizer
                 state, generator states, epoch, per-epoch metrics), so
                 `torch.load(path, weights_only=True)` reads it
  metrics.json   per-epoch metrics, `finished`, provenance
all written atomically after every epoch. Resuming continues from the last
finished epoch and gives the same weights as an uninterrupted run: data
order, angles and attack starts come from saved `torch.Generator`s, and the
global RNG (used by dropout) is re-seeded from (seed, epoch) each epoch inside
`torch.random.fork_rng`, so no global state leaks in or out.

Command line: `python -m empirics.train --help`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from empirics.data import DATASETS, ImageData
from core.device import pick_device
from core.errors import ArgumentParser, UsageError, exit_on_usage_error
from core.io import atomic_torch_save, atomic_write_json, provenance

CHECKPOINT, CONFIG, METRICS = "checkpoint.pt", "config.json", "metrics.json"
OPTIMIZERS = ("sgd", "adam")
INTERPOLATIONS = ("nearest", "bilinear")
CHECKPOINT_FORMAT = 1


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
    lr: float = 1e-3
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

    def __post_init__(self):
        from empirics.models.registry import MODEL_NAMES

        _check(self.model in MODEL_NAMES, "model", f"one of {', '.join(MODEL_NAMES)}", self.model)
        _check(self.dataset in DATASETS, "dataset", f"one of {', '.join(DATASETS)}", self.dataset)
        _check(_is_int(self.epochs) and self.epochs >= 1, "epochs", "a positive integer", self.epochs)
        _check(_is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "a positive integer",
               self.batch_size)
        _check(self.optimizer in OPTIMIZERS, "optimizer", "'sgd' or 'adam'", self.optimizer)
        _check(_is_real(self.lr) and self.lr > 0, "lr", "a positive number", self.lr)
        _check(_is_real(self.momentum) and 0 <= self.momentum < 1, "momentum", "in [0, 1)", self.momentum)
        _check(_is_real(self.weight_decay) and self.weight_decay >= 0, "weight_decay", ">= 0",
               self.weight_decay)
        self._check_schedule()
        self._check_attack()
        _check(self.interpolation in INTERPOLATIONS, "interpolation", "'nearest' or 'bilinear'",
               self.interpolation)
        _check(_is_int(self.seed) and self.seed >= 0, "seed", "a non-negative integer", self.seed)
        for name in ("train_subset", "test_subset"):
            v = getattr(self, name)
            _check(v is None or (_is_int(v) and v >= 1), name, "a positive integer or None", v)
        _check(isinstance(self.model_kwargs, tuple) and all(
            isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in self.model_kwargs),
            "model_kwargs", "a tuple of (name, value) pairs", self.model_kwargs)
        _coerce(self, ("lr", "momentum", "weight_decay", "lr_gamma", "train_rotation", "adv_eps",
                       "adv_step_size"))
        _coerce(self, ("epochs", "batch_size", "adv_steps", "seed", "train_subset", "test_subset"), int)

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

    def _check_attack(self) -> None:
        _check(_is_real(self.adv_eps) and 0 <= self.adv_eps <= 1, "adv_eps", "in [0, 1] (pixel space)",
               self.adv_eps)
        _check(_is_int(self.adv_steps) and self.adv_steps >= 1, "adv_steps", "a positive integer",
               self.adv_steps)
        _check(self.curriculum is None or self.adv_eps == 0, "adv_eps", "0 when a curriculum sets eps",
               self.adv_eps)
        s = self.adv_step_size
        _check(s is None or (_is_real(s) and s > 0), "adv_step_size", "a positive number or None", s)
        _check(isinstance(self.adv_random_start, bool), "adv_random_start", "a bool",
               self.adv_random_start)

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


# ---------------------------------------------------------------- results
@dataclass(frozen=True)
class EpochMetrics:
    """One finished epoch. Accuracies in [0, 1]; train figures are on the
    images actually trained on (rotated, adversarial)."""

    epoch: int  # counted from 1
    theta: float
    eps: float
    lr: float
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    train_seconds: float
    eval_seconds: float
    train_images: int

    @property
    def images_per_second(self) -> float:
        return self.train_images / self.train_seconds if self.train_seconds > 0 else float("inf")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "EpochMetrics":
        return cls(**{f.name: d[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class TrainResult:
    run_dir: str
    config: TrainConfig
    epochs: tuple[EpochMetrics, ...]

    @property
    def finished(self) -> bool:
        return len(self.epochs) == self.config.epochs

    @property
    def test_accuracy(self) -> float | None:
        return self.epochs[-1].test_accuracy if self.epochs else None

    def to_dict(self) -> dict:
        return {"run_dir": self.run_dir, "config": self.config.to_dict(), "finished": self.finished,
                "epochs": [m.to_dict() for m in self.epochs]}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainResult":
        return cls(d["run_dir"], TrainConfig.from_dict(d["config"]),
                   tuple(EpochMetrics.from_dict(m) for m in d["epochs"]))


# ---------------------------------------------------------------- randomness
GENERATORS = ("order", "angles", "attack")


def _seed(seed: int, *keys: int) -> int:
    """An independent 63-bit seed for each (seed, keys) stream."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def make_generators(seed: int) -> dict[str, torch.Generator]:
    """CPU generators for data order, rotation angles and attack starts."""
    return {name: torch.Generator().manual_seed(_seed(seed, k)) for k, name in enumerate(GENERATORS)}


@contextmanager
def seeded_global_rng(device: torch.device, seed: int):
    """The global RNG (used by dropout) seeded with `seed` inside, restored after."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


# ---------------------------------------------------------------- run folder
def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"cannot read {path}: {type(err).__name__}") from None


def read_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The TrainConfig saved in a run folder."""
    run = Path(run_dir)
    if not run.is_dir():
        raise UsageError(f"run folder {run} does not exist")
    path = run / CONFIG
    if not path.is_file():
        raise UsageError(f"{path} not found: {run} is not a training run folder")
    try:
        return TrainConfig.from_dict(_read_json(path))
    except (TypeError, KeyError, ValueError) as err:
        raise UsageError(f"invalid training config {path}: {err}") from None


def read_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by `train`, loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types on a damaged file
        raise UsageError(f"corrupt checkpoint {path}: {type(err).__name__}") from None
    needed = {"format", "epoch", "model", "optimizer", "generators", "history"}
    if not isinstance(ckpt, dict) or not needed <= set(ckpt) or ckpt["format"] != CHECKPOINT_FORMAT:
        raise UsageError(f"corrupt checkpoint {path}: not a checkpoint written by empirics.train")
    return ckpt


def _existing_run(out: Path, config: TrainConfig, resume: bool, force: bool) -> dict | None:
    """Checks only (writes nothing): the checkpoint to resume from, or None to start afresh."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    if not ((out / CONFIG).exists() or (out / CHECKPOINT).exists()):
        return None
    if not resume:
        if force:
            return None
        done = (out / METRICS).is_file() and _read_json(out / METRICS).get("finished") is True
        raise UsageError(f"{out} already holds a{' finished' if done else 'n unfinished'} run; "
                         "pass --resume to continue it or --force to overwrite it")
    stored = read_config(out)
    for f in fields(TrainConfig):
        old, new = getattr(stored, f.name), getattr(config, f.name)
        if f.name != "data_dir" and old != new:
            raise UsageError(f"--resume: {f.name} is {new!r} but the run in {out} "
                             f"was started with {old!r}")
    return read_checkpoint(out / CHECKPOINT) if (out / CHECKPOINT).exists() else None


def _clear(out: Path) -> None:
    for name in (CHECKPOINT, METRICS, CONFIG):
        (out / name).unlink(missing_ok=True)


def _save(out: Path, config: TrainConfig, model: nn.Module, opt: torch.optim.Optimizer,
          gens: dict[str, torch.Generator], history: list[EpochMetrics]) -> None:
    ckpt = {"format": CHECKPOINT_FORMAT, "epoch": len(history), "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "generators": {name: g.get_state() for name, g in gens.items()},  # uint8 tensors
            "history": [m.to_dict() for m in history]}
    atomic_torch_save(ckpt, out / CHECKPOINT)
    atomic_write_json(out / METRICS, {
        "config": config.to_dict(), "finished": len(history) == config.epochs,
        "epochs": [m.to_dict() for m in history], "provenance": provenance()})


def _restore(ckpt: dict, path: Path, model: nn.Module, opt: torch.optim.Optimizer,
             gens: dict[str, torch.Generator]) -> list[EpochMetrics]:
    try:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        for name, g in gens.items():
            g.set_state(ckpt["generators"][name])
        history = [EpochMetrics.from_dict(m) for m in ckpt["history"]]
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise UsageError(f"corrupt checkpoint {path}: {str(err).splitlines()[0][:200]}") from None
    if len(history) != ckpt["epoch"]:
        raise UsageError(f"corrupt checkpoint {path}: epoch count does not match its metrics")
    return history


# ---------------------------------------------------------------- the loop
def build(config: TrainConfig) -> nn.Module:
    """The untrained model, initialised from `config.seed` (global RNG untouched)."""
    from empirics.models.registry import build_model

    with seeded_global_rng(torch.device("cpu"), _seed(config.seed, 10)):
        return build_model(config.model, config.dataset, **dict(config.model_kwargs))


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def load_split(config: TrainConfig, split: str, download: bool = False) -> ImageData:
    """The train or test data of a run; `*_subset` picks a stratified subset
    with seed 0, so runs with different seeds see the same images."""
    from empirics.data import load

    data = load(config.dataset, split, config.data_dir, download)
    n = config.train_subset if split == "train" else config.test_subset
    if n is not None:
        _check(n <= len(data), f"{split}_subset", f"at most {len(data)} ({config.dataset} {split})", n)
        data = data.subset(n, seed=0)
    return data


def augment(model: nn.Module, x: torch.Tensor, y: torch.Tensor, stage: Stage,
            config: TrainConfig, gens: dict[str, torch.Generator]) -> torch.Tensor:
    """Rotate each image by its own angle in [-theta, theta], then PGD at eps."""
    from empirics.attacks import pgd
    from empirics.rotation import random_angles, rotate

    if stage.theta > 0:
        angles = random_angles(len(x), stage.theta, gens["angles"])  # (B,)
        x = rotate(x, angles, config.interpolation)  # (B, C, H, W)
    if stage.eps > 0:
        x = pgd(model, x, y, stage.eps, steps=config.adv_steps, step_size=config.adv_step_size,
                random_start=config.adv_random_start, generator=gens["attack"])  # (B, C, H, W)
    return x


def _train_epoch(model, opt, data: ImageData, stage: Stage, config: TrainConfig,
                 gens: dict[str, torch.Generator], bar) -> tuple[float, float]:
    """One pass over `data` in a fresh random order; (mean loss, accuracy)."""
    for group in opt.param_groups:
        group["lr"] = stage.lr
    model.train()
    device, n = data.images.device, len(data)
    order = torch.randperm(n, generator=gens["order"]).to(device)  # (N,)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for k, start in enumerate(range(0, n, config.batch_size)):
        idx = order[start:start + config.batch_size]  # (B,)
        y = data.labels[idx]  # (B,)
        x = augment(model, data.images[idx], y, stage, config, gens)  # (B, C, H, W)
        logits = model(x)  # (B, K)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        bar.update(1)
        if not bar.disable and k % 10 == 0:
            seen = min(start + config.batch_size, n)
            bar.set_postfix(loss=f"{float(loss_sum) / seen:.3f}", acc=f"{float(correct) / seen:.3f}")
    return float(loss_sum) / n, float(correct) / n


def evaluate(model: nn.Module, data: ImageData, batch_size: int = 500) -> float:
    """Clean accuracy in eval mode."""
    from empirics.attacks import predict

    model.eval()
    return int((predict(model, data.images, batch_size) == data.labels).sum()) / len(data)


def _run_epoch(epoch: int, model, opt, train_data, test_data, config, gens, progress) -> EpochMetrics:
    from tqdm import tqdm

    stage = config.stage_at(epoch)
    n_batches = math.ceil(len(train_data) / config.batch_size)
    bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch",
               leave=False, disable=not progress, file=sys.stderr)
    t0 = time.perf_counter()
    with seeded_global_rng(train_data.images.device, _seed(config.seed, 100, epoch)):
        loss, acc = _train_epoch(model, opt, train_data, stage, config, gens, bar)
    t1 = time.perf_counter()
    test_acc = evaluate(model, test_data)
    t2 = time.perf_counter()
    bar.close()
    m = EpochMetrics(epoch + 1, stage.theta, stage.eps, stage.lr, loss, acc, test_acc,
                     t1 - t0, t2 - t1, len(train_data))
    if progress:
        tqdm.write(f"epoch {m.epoch}/{config.epochs}  theta {m.theta:g}  eps {m.eps:.4g}  "
                   f"lr {m.lr:.3g}  loss {m.train_loss:.4f}  train acc {m.train_accuracy:.4f}  "
                   f"test acc {m.test_accuracy:.4f}  {m.train_seconds:.1f} s", file=sys.stderr)
    return m


def _on(data: ImageData, device: torch.device) -> ImageData:
    return ImageData(data.images.to(device), data.labels.to(device), data.name)


def train(config: TrainConfig, out_dir: str | os.PathLike, resume: bool = False,
          device: str | torch.device | None = None, progress: bool = True,
          force: bool = False, download: bool = False) -> TrainResult:
    """Train `config` into `out_dir`, checkpointing every epoch.

    resume: continue the run in `out_dir` (its config must match `config`,
    data_dir aside); starts afresh if `out_dir` holds no run. force: overwrite
    a run already there. Without either, an existing run is a UsageError.
    Everything that can fail on bad input is checked before anything is written.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"`config` must be a TrainConfig, got {type(config).__name__}")
    out = Path(out_dir)
    ckpt = _existing_run(out, config, resume, force)
    dev = device if isinstance(device, torch.device) else pick_device(device)
    train_data = _on(load_split(config, "train", download), dev)
    test_data = _on(load_split(config, "test", download), dev)
    model = build(config).to(dev)
    opt = make_optimizer(config, model)
    gens = make_generators(config.seed)
    history = [] if ckpt is None else _restore(ckpt, out / CHECKPOINT, model, opt, gens)
    if ckpt is None:
        out.mkdir(parents=True, exist_ok=True)
        _clear(out)
    atomic_write_json(out / CONFIG, config.to_dict())
    for epoch in range(len(history), config.epochs):
        history.append(_run_epoch(epoch, model, opt, train_data, test_data, config, gens, progress))
        _save(out, config, model, opt, gens, history)
    return TrainResult(str(out), config, tuple(history))


def load_model(run_dir: str | os.PathLike, device: str | torch.device | None = None
               ) -> tuple[nn.Module, TrainConfig]:
    """The model of a run folder (last saved epoch), in eval mode, and its config."""
    config = read_config(run_dir)
    path = Path(run_dir) / CHECKPOINT
    ckpt = read_checkpoint(path)
    model = build(config)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError) as err:
        raise UsageError(f"corrupt checkpoint {path}: {str(err).splitlines()[0][:200]}") from None
    dev = device if isinstance(device, torch.device) else pick_device(device)
    return model.to(dev).eval(), config


# ---------------------------------------------------------------- command line
DEFAULT_LR = {"adam": 1e-3, "sgd": 0.1}  # sgd: the authors' CIFAR-10 value
_DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.name != "model_kwargs"}


def _model_kwarg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_config_options(p: argparse.ArgumentParser) -> None:
    from empirics.models.registry import MODEL_NAMES

    d = _DEFAULTS
    p.add_argument("--model", help=f"one of {', '.join(MODEL_NAMES)} (default {d['model']})")
    p.add_argument("--dataset", help=f"one of {', '.join(DATASETS)} (default {d['dataset']}: "
                   "5,000 real MNIST digits, offline)")
    p.add_argument("--epochs", type=int, help=f"number of epochs (default {d['epochs']})")
    p.add_argument("--batch-size", type=int, help=f"images per step (default {d['batch_size']})")
    p.add_argument("--optimizer", help=f"sgd or adam (default {d['optimizer']})")
    p.add_argument("--lr", type=float, help="learning rate (default 0.001 for adam, 0.1 for sgd); "
                   "with --curriculum cusp the rate of the first stage")
    p.add_argument("--momentum", type=float, help=f"sgd momentum (default {d['momentum']})")
    p.add_argument("--weight-decay", type=float, help=f"L2 weight decay (default {d['weight_decay']})")
    p.add_argument("--lr-milestones", type=_int_list,
                   help="epochs (counted from 0) at which lr is multiplied by --lr-gamma, e.g. 50,100")
    p.add_argument("--lr-gamma", type=float, help=f"lr factor per milestone (default {d['lr_gamma']})")
    p.add_argument("--train-rotation", type=float, help="rotate each training image by its own angle "
                   "uniform in [-THETA, THETA] degrees, THETA in [0, 180] (default 0)")
    p.add_argument("--adv-eps", type=float, help="PGD adversarial training radius in pixel space "
                   "[0, 1], applied to the rotated images (default 0: no attack)")
    p.add_argument("--adv-steps", type=int, help=f"PGD steps in training (default {d['adv_steps']})")
    p.add_argument("--adv-step-size", type=float, help="PGD step size (default 2.5 * eps / steps)")
    p.add_argument("--no-adv-random-start", dest="adv_random_start", action="store_false",
                   help="start PGD at the image instead of a random point of the eps-ball")
    p.add_argument("--curriculum", help="'cusp': the paper's CuSP schedule (rotation 120/150/180, "
                   "eps 2/4/8 /255, lr /10 at each stage) scaled to --epochs; or stages "
                   "EPOCHS:THETA:EPS:LR,... adding up to --epochs")
    p.add_argument("--interpolation", help="rotation resampling: nearest (default, as the "
                   "authors' PIL code) or bilinear")
    p.add_argument("--seed", type=int, help=f"seed of init, data order, angles, attacks (default {d['seed']})")
    p.add_argument("--data-dir", help="folder holding MNIST/, FashionMNIST/ or cifar-10-batches-py/ "
                   "(default ./data; not used by mnist5k)")
    p.add_argument("--train-subset", type=int, help="train on a stratified subset of N images")
    p.add_argument("--test-subset", type=int, help="report test accuracy on a stratified subset of N images")
    p.add_argument("--model-kwarg", dest="model_kwargs", type=_model_kwarg, action="append",
                   metavar="KEY=VALUE", help="extra model argument, e.g. invariant_head=true (repeatable)")


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m empirics.train", argument_default=argparse.SUPPRESS,
                       description="Train a model with rotation augmentation and/or PGD "
                       "adversarial training; writes config.json, checkpoint.pt and "
                       "metrics.json into --out after every epoch.")
    p.add_argument("--out", required=True, help="run folder to create (or resume)")
    _add_config_options(p)
    p.add_argument("--resume", action="store_true", default=False,
                   help="continue the run in --out from its last finished epoch (same result "
                   "as an uninterrupted run); options given must match the saved config")
    p.add_argument("--force", action="store_true", default=False, help="overwrite a run in --out")
    p.add_argument("--download", action="store_true", default=False,
                   help="download mnist / fashion-mnist / cifar10 into --data-dir (needs internet)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", default=False, help="no progress bars")
    return p


def config_from_args(args: argparse.Namespace, stored: dict | None = None) -> TrainConfig:
    """A TrainConfig from parsed options; unset options come from `stored`
    (the saved config of a run being resumed) or the TrainConfig defaults."""
    given = {k: v for k, v in vars(args).items() if k in _DEFAULTS or k == "model_kwargs"}
    curriculum = given.pop("curriculum", None)
    if "model_kwargs" in given:
        given["model_kwargs"] = tuple(given["model_kwargs"])
    base = dict(stored) if stored is not None else {}
    if stored is None and "lr" not in given:
        given["lr"] = DEFAULT_LR.get(given.get("optimizer", _DEFAULTS["optimizer"]), _DEFAULTS["lr"])
    base.update(given)
    if curriculum is not None:
        epochs, lr = base.get("epochs", _DEFAULTS["epochs"]), base.get("lr", _DEFAULTS["lr"])
        base["curriculum"] = (cusp_stages(epochs, lr=lr) if curriculum == "cusp"
                              else parse_stages(curriculum))
    return TrainConfig.from_dict(base)


def main(argv: list[str] | None = None) -> TrainResult:
    args = parser().parse_args(argv)
    prog = "python -m empirics.train"
    with exit_on_usage_error(prog):
        stored = None
        if args.resume and (Path(args.out) / CONFIG).is_file():
            stored = read_config(args.out).to_dict()
        config = config_from_args(args, stored)
        result = train(config, args.out, resume=args.resume, device=args.device,
                       progress=not args.quiet, force=args.force, download=args.download)
    last = result.epochs[-1]
    print(f"{result.run_dir}: {len(result.epochs)} epochs, test accuracy {last.test_accuracy:.4f}, "
          f"{last.images_per_second:.0f} train images/s")
    return result


if __name__ == "__main__":
    main()
