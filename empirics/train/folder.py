"""A training run folder and what it records.

  config.json    `TrainConfig.to_dict()`
  checkpoint.pt  tensors and primitive containers only (model and optimizer
                 state, generator states, epoch, per-epoch metrics), so
                 `torch.load(path, weights_only=True)` reads it
  metrics.json   per-epoch metrics, `finished`, provenance
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from core.errors import UsageError
from core.io import atomic_torch_save, atomic_write_json, provenance
from empirics.train.config import TrainConfig

CHECKPOINT, CONFIG, METRICS = "checkpoint.pt", "config.json", "metrics.json"
CHECKPOINT_FORMAT = 1


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

