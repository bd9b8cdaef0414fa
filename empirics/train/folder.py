"""A training run folder and what it records.

  config.json    `TrainConfig.to_dict()`
  checkpoint.pt  tensors and primitive containers only (model and optimizer
                 state, generator states, epoch, per-epoch metrics), so
                 `torch.load(path, weights_only=True)` reads it
  metrics.json   per-epoch metrics, `finished`, the intra-op thread count
                 (`threads`), provenance
  .lock          while a process writes the folder (`core.lock.RunLock`)

A resume repairs what a kill can leave: a metrics.json that lags its
checkpoint is rewritten from the checkpoint, and temp files of interrupted
atomic writes (`.checkpoint.pt.*.tmp`, ...) are removed. It refuses a
checkpoint that does not fit the config, and never drops recorded epochs
silently (metrics without a checkpoint, or ahead of it, are an error).
"""
from __future__ import annotations

import json
import math
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


def _recorded_epochs(out: Path) -> list | None:
    """The epochs metrics.json records (None: no readable metrics.json)."""
    if not (out / METRICS).is_file():
        return None
    try:
        epochs = json.loads((out / METRICS).read_text(encoding="utf-8")).get("epochs")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None
    return epochs if isinstance(epochs, list) else None


def check_fits(ckpt: dict, config: TrainConfig, path: Path) -> None:
    """The checkpoint's epoch and per-epoch schedule fit `config`, or a UsageError."""
    epoch, history = ckpt["epoch"], ckpt["history"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= config.epochs:
        raise UsageError(f"--resume: checkpoint {path} is at epoch {epoch!r}, which does not fit "
                         f"the config's {config.epochs} epochs")
    if not isinstance(history, list) or len(history) != epoch:
        raise UsageError(f"corrupt checkpoint {path}: epoch count does not match its metrics")
    for k, m in enumerate(history):
        stage = config.stage_at(k)
        try:
            fits = m["epoch"] == k + 1 and all(
                math.isclose(float(m[name]), getattr(stage, name), rel_tol=1e-9, abs_tol=1e-12)
                for name in ("theta", "eps", "lr"))
        except (KeyError, TypeError, ValueError):
            fits = False
        if not fits:
            raise UsageError(f"--resume: checkpoint {path} epoch {k + 1} does not follow the "
                             "config's schedule (theta, eps, lr); the run was not made with it")
    threads = ckpt.get("threads", 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UsageError(f"corrupt checkpoint {path}: thread count {threads!r}")


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
    recorded = _recorded_epochs(out)
    if not (out / CHECKPOINT).exists():
        if recorded:
            raise UsageError(f"--resume: {out} records {len(recorded)} epoch(s) in {METRICS} but "
                             f"has no {CHECKPOINT}; pass --force to start the run over")
        return None  # killed before its first checkpoint: nothing to lose
    ckpt = read_checkpoint(out / CHECKPOINT)
    check_fits(ckpt, config, out / CHECKPOINT)
    if recorded is not None and len(recorded) > ckpt["epoch"]:
        raise UsageError(f"--resume: {out / METRICS} records {len(recorded)} epochs but "
                         f"{CHECKPOINT} only {ckpt['epoch']}; the checkpoint is older than "
                         "its metrics")
    return ckpt


def _clear(out: Path) -> None:
    for name in (CHECKPOINT, METRICS, CONFIG):
        (out / name).unlink(missing_ok=True)


def remove_leftovers(out: Path, names=(CHECKPOINT, METRICS, CONFIG)) -> list[Path]:
    """Delete the temp files interrupted atomic writes of `names` left in
    `out` (`.NAME.*.tmp`). Only call while holding the folder's lock: then no
    write is in progress."""
    removed = []
    for name in names:
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def write_metrics(out: Path, config: TrainConfig, history: list[EpochMetrics], threads: int) -> None:
    atomic_write_json(out / METRICS, {
        "config": config.to_dict(), "finished": len(history) == config.epochs,
        "epochs": [m.to_dict() for m in history], "threads": threads,
        "provenance": provenance()})


def metrics_lag(out: Path, config: TrainConfig, history: list[EpochMetrics]) -> bool:
    """True when metrics.json does not record exactly `history` (a kill
    between the checkpoint and the metrics write)."""
    try:
        metrics = json.loads((out / METRICS).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return True
    return (not isinstance(metrics, dict)
            or metrics.get("epochs") != [m.to_dict() for m in history]
            or metrics.get("finished") is not (len(history) == config.epochs))


def _save(out: Path, config: TrainConfig, model: nn.Module, opt: torch.optim.Optimizer,
          gens: dict[str, torch.Generator], history: list[EpochMetrics], threads: int) -> None:
    ckpt = {"format": CHECKPOINT_FORMAT, "epoch": len(history), "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "generators": {name: g.get_state() for name, g in gens.items()},  # uint8 tensors
            "history": [m.to_dict() for m in history], "threads": threads}
    atomic_torch_save(ckpt, out / CHECKPOINT)
    write_metrics(out, config, history, threads)


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

