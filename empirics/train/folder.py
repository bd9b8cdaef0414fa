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
from dataclasses import MISSING, dataclass, fields
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
    # PGD-10 accuracy at the training eps on the held-out check images
    # (TrainConfig.robust_check); None when not measured. Left out of the
    # dict when None, so runs without the check keep their metrics.
    robust_accuracy: float | None = None

    @property
    def images_per_second(self) -> float:
        return self.train_images / self.train_seconds if self.train_seconds > 0 else float("inf")

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        if d["robust_accuracy"] is None:
            del d["robust_accuracy"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EpochMetrics":
        return cls(**{f.name: d[f.name] for f in fields(cls)
                      if f.name in d or f.default is MISSING})


# A robust-accuracy collapse (catastrophic overfitting, Wong et al. 2020): the
# held-out PGD accuracy at the training eps falls below this fraction of the
# best earlier epoch's at the same eps.
COLLAPSE_FRACTION = 0.5


def robust_collapse(history) -> dict | None:
    """The first epoch whose held-out robust accuracy collapsed (below
    COLLAPSE_FRACTION x the best earlier epoch at the same training eps), or None."""
    best: dict[float, float] = {}
    for m in history:
        r = m.robust_accuracy
        if r is None:
            continue
        if m.eps in best and r < COLLAPSE_FRACTION * best[m.eps]:
            return {"epoch": m.epoch, "robust_accuracy": r, "best_before": best[m.eps],
                    "eps": m.eps}
        best[m.eps] = max(best.get(m.eps, 0.0), r)
    return None


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


RECORDS = (CONFIG, CHECKPOINT, METRICS, "profile.json")  # files a run folder may hold


def check_run_folder(out: str | os.PathLike, option: str = "--out") -> None:
    """Before any work: every record the run folder holds is a regular file
    (a `metrics.json` that is a folder would fail only after the training)."""
    out = Path(out)
    if not out.is_dir():
        return
    for name in RECORDS:
        path = out / name
        if os.path.lexists(path) and not path.is_file():
            kind = "a folder" if path.is_dir() else "not a regular file"
            raise UsageError(f"{option} {out}: {name} is {kind}; the run folder is damaged "
                             f"(move {path} away)")


def _check_finite(state, path: Path) -> None:
    """Every floating-point tensor of a model state is finite (a diverged
    run's NaN weights would only give NaN accuracies)."""
    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() \
                and not bool(torch.isfinite(tensor).all()):
            raise UsageError(f"checkpoint {path} holds non-finite weights ({name}): the run "
                             "diverged; train it again with --force (a lower --lr)")


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
    if not isinstance(ckpt["model"], dict):
        raise UsageError(f"corrupt checkpoint {path}: its model state is not a mapping")
    _check_finite(ckpt["model"], path)
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
    check_run_folder(out)
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
        "robust_collapse": robust_collapse(history), "provenance": provenance()})


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

