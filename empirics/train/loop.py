"""The one training loop: rotation augmentation, PGD adversarial training
on the rotated images, curricula such as the paper's CuSP.

Each batch: every image is rotated by its own angle uniform in
[-theta, theta] (theta of the current stage); if eps > 0, PGD attacks the
rotated batch (model in eval mode during the attack) and the model is
trained on the adversarial images only, with cross-entropy.

Resuming continues from the last finished epoch and gives the same weights
as an uninterrupted run: data order, angles and attack starts come from
saved `torch.Generator`s, and the global RNG (used by dropout) is re-seeded
from (seed, epoch) each epoch inside `torch.random.fork_rng`, so no global
state leaks in or out.

Speed on a CPU, against the same computation written as a plain loop
(benchmarks/plain_loop.py, tests/test_train_speed.py): the attack computes
the input's gradient only (parameters' requires_grad off) and ReLUs on views
run out of place, both giving the same bits; `train(channels_last=True)`
(runs without an attack) lays the model's inputs out NHWC, within float
rounding of the default.
"""
from __future__ import annotations

import math
import os
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from core.device import pick_device
from core.errors import UsageError
from core.lock import RunLock
from core.io import atomic_write_json
from empirics.attacks import laid_out, pgd, predict, to_device
from empirics.crops import random_crop_flip
from empirics.data import ImageData, load
from empirics.models.registry import build_model
from empirics.rotation import random_angles, rotate
from empirics.train.config import Stage, TrainConfig, _check
from empirics.train.folder import (CHECKPOINT, CONFIG, EpochMetrics, TrainResult, _clear,
                                   _existing_run, _restore, _save, metrics_lag, read_checkpoint,
                                   read_config, remove_leftovers, write_metrics)


# ---------------------------------------------------------------- threads
# Intra-op threads of every training run, whatever runs beside it (the sweep's
# --jobs): the thread count changes float reduction order and so the weights.
# 1 is what the stored quick-scale runs were trained with. Recorded in the
# checkpoint and metrics.json; a resumed run uses the recorded count.
TRAIN_THREADS = 1


@contextmanager
def intra_op_threads(n: int):
    """torch intra-op threads set to `n` inside, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------- randomness
GENERATORS = ("order", "angles", "attack")


def _seed(seed: int, *keys: int) -> int:
    """An independent 63-bit seed for each (seed, keys) stream."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def make_generators(seed: int, crops: bool = False) -> dict[str, torch.Generator]:
    """CPU generators for data order, rotation angles and attack starts, and
    (`crops`) for random crops and flips: a fourth stream only runs that
    use them have, so runs without them keep their checkpoints' layout."""
    names = GENERATORS + (("crops",) if crops else ())
    return {name: torch.Generator().manual_seed(_seed(seed, k)) for k, name in enumerate(names)}


@contextmanager
def seeded_global_rng(device: torch.device, seed: int):
    """The global RNG (used by dropout) seeded with `seed` inside, restored after."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield




# ---------------------------------------------------------------- the loop
def build(config: TrainConfig) -> nn.Module:
    """The untrained model, initialised from `config.seed` (global RNG untouched)."""

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

    data = load(config.dataset, split, config.data_dir, download)
    n = config.train_subset if split == "train" else config.test_subset
    if n is not None:
        _check(n <= len(data), f"{split}_subset", f"at most {len(data)} ({config.dataset} {split})", n)
        data = data.subset(n, seed=0)
    return data


def augment(model: nn.Module, x: torch.Tensor, y: torch.Tensor, stage: Stage,
            config: TrainConfig, gens: dict[str, torch.Generator],
            eps: float | None = None,
            memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """Crop and flip (if configured), rotate each image by its own angle in
    [-theta, theta], then PGD at `eps` (default: the stage's; the warm-up
    passes a smaller one), the model's input laid out in `memory_format`."""
    eps = stage.eps if eps is None else eps
    if config.random_crop > 0 or config.hflip:
        x = random_crop_flip(x, config.random_crop, config.hflip, gens["crops"])  # (B, C, H, W)

    if stage.theta > 0:
        angles = random_angles(len(x), stage.theta, gens["angles"])  # (B,)
        x = rotate(x, angles, config.interpolation)  # (B, C, H, W)
    if eps > 0:
        x = pgd(model, x, y, eps, steps=config.adv_steps, step_size=config.adv_step_size,
                random_start=config.adv_random_start, generator=gens["attack"],
                validate=False, memory_format=memory_format)  # (B, C, H, W); data in [0, 1]
    return x


# ---------------------------------------------------------------- execution
def relu_out_of_place_on_views(model: nn.Module) -> list:
    """Hooks making each `nn.ReLU` run out of place when its input is a view
    (a P4 layer's (B, C, 4, H, W) view of its convolution's output), in place
    otherwise. In place on a view, autograd copies the whole base in the
    backward pass (CopySlices), and channels-last views take a slow strided
    path; out of place the values and the gradient are the same bits
    (ReLU's backward reads its result either way), without the copies:
    P4CNN trains 1.2x faster in NCHW, 1.5x with channels-last. Returns the
    hooks' handles."""
    def choose(module: nn.ReLU, args) -> None:
        module.inplace = args[0]._base is None
    return [m.register_forward_pre_hook(choose) for m in model.modules() if isinstance(m, nn.ReLU)]


CUBLAS_WORKSPACE = ":4096:8"  # the cuBLAS setting for reproducible results (CUDA >= 10.2)


@contextmanager
def execution_mode(deterministic: bool):
    """With `deterministic`: `torch.use_deterministic_algorithms(True)`,
    cuDNN deterministic without autotuning, and CUBLAS_WORKSPACE_CONFIG set
    (unless already set; it takes effect for cuBLAS handles created after,
    so the command line sets it before any CUDA work). Restored after."""
    if not deterministic:
        yield
        return
    cudnn = torch.backends.cudnn
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(),
              cudnn.deterministic, cudnn.benchmark)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        cudnn.deterministic, cudnn.benchmark = before[2], before[3]


def autocast(config: TrainConfig, device: torch.device):
    """bf16 autocast for the training step when `config.amp`, else nothing."""
    if not config.amp:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _set_lr(opt, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def _train_epoch(model, opt, data: ImageData, stage: Stage, config: TrainConfig,
                 gens: dict[str, torch.Generator], bar, epoch: int = 0,
                 memory_format: torch.memory_format = torch.contiguous_format) -> tuple[float, float]:
    """One pass over `data` in a fresh random order; (mean loss, accuracy).
    Each step's lr and eps are the stage's times `config.step_factors`; the
    model's inputs (attack and training step) are laid out in `memory_format`."""
    _set_lr(opt, stage.lr)
    model.train()
    device, n = data.images.device, len(data)
    n_batches = math.ceil(n / config.batch_size)
    order = torch.randperm(n, generator=gens["order"]).to(device)  # (N,)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    scheduled = config.lr_schedule != "step" or config.adv_warmup > 0
    eps = stage.eps
    for k, start in enumerate(range(0, n, config.batch_size)):
        if scheduled:
            lr_factor, eps_factor = config.step_factors(epoch, k, n_batches)
            _set_lr(opt, stage.lr * lr_factor)
            eps = stage.eps * eps_factor
        idx = order[start:start + config.batch_size]  # (B,)
        y = data.labels[idx]  # (B,)
        x = augment(model, data.images[idx], y, stage, config, gens, eps, memory_format)
        x = laid_out(x, memory_format)  # (B, C, H, W)
        with autocast(config, device):
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

    model.eval()
    pred = predict(model, data.images, batch_size)  # (N,) on the model's device
    return int((pred == to_device(data.labels, pred.device)).sum()) / len(data)


ROBUST_CHECK_STEPS = 10  # PGD steps of the per-epoch robust-accuracy check (step 2.5 eps / 10)


def robust_accuracy(model: nn.Module, data: ImageData, eps: float, batch_size: int = 500) -> float:
    """PGD-10 accuracy at `eps` (no random start: no generator touched) in eval mode."""
    model.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        x, y = data.images[start:start + batch_size], data.labels[start:start + batch_size]
        x_adv = pgd(model, x, y, eps, steps=ROBUST_CHECK_STEPS, validate=False)  # (B, C, H, W)
        correct += int((predict(model, x_adv, batch_size) == to_device(y, x_adv.device)).sum())
    return correct / len(data)


def _run_epoch(epoch: int, model, opt, train_data, test_data, config, gens, progress,
               check_data: ImageData | None = None,
               memory_format: torch.memory_format = torch.contiguous_format) -> EpochMetrics:

    stage = config.stage_at(epoch)
    n_batches = math.ceil(len(train_data) / config.batch_size)
    bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch",
               leave=False, disable=not progress, file=sys.stderr)
    t0 = time.perf_counter()
    with seeded_global_rng(train_data.images.device, _seed(config.seed, 100, epoch)):
        loss, acc = _train_epoch(model, opt, train_data, stage, config, gens, bar, epoch,
                                 memory_format)
    t1 = time.perf_counter()
    if not (math.isfinite(loss) and all(bool(torch.isfinite(p).all()) for p in model.parameters())):
        raise UsageError(f"epoch {epoch + 1}: training diverged (loss {loss:.4g} or weights not "
                         "finite); lower --lr or check the data")
    test_acc = evaluate(model, test_data)
    robust = None
    if check_data is not None and stage.eps > 0:
        robust = robust_accuracy(model, check_data, stage.eps)
    t2 = time.perf_counter()
    bar.close()
    m = EpochMetrics(epoch + 1, stage.theta, stage.eps, stage.lr, loss, acc, test_acc,
                     t1 - t0, t2 - t1, len(train_data), robust)
    if progress:
        tqdm.write(f"epoch {m.epoch}/{config.epochs}  theta {m.theta:g}  eps {m.eps:.4g}  "
                   f"lr {m.lr:.3g}  loss {m.train_loss:.4f}  train acc {m.train_accuracy:.4f}  "
                   f"test acc {m.test_accuracy:.4f}"
                   + ("" if robust is None else f"  PGD-10 acc {robust:.4f}")
                   + f"  {m.train_seconds:.1f} s", file=sys.stderr)
    return m


def robust_check_data(config: TrainConfig, test_data: ImageData) -> ImageData | None:
    """The held-out images of the per-epoch robust check (a stratified subset
    of the run's test images, seed 0), or None when the config has none."""
    if config.robust_check == 0:
        return None
    n = min(config.robust_check, len(test_data))
    return test_data if n == len(test_data) else test_data.subset(n, seed=0)


def _on(data: ImageData, device: torch.device) -> ImageData:
    return ImageData(data.images.to(device), data.labels.to(device), data.name)


def train(config: TrainConfig, out_dir: str | os.PathLike, resume: bool = False,
          device: str | torch.device | None = None, progress: bool = True,
          force: bool = False, download: bool = False,
          channels_last: bool = False) -> TrainResult:
    """Train `config` into `out_dir`, checkpointing every epoch.

    resume: continue the run in `out_dir` (its config must match `config`,
    data_dir aside); starts afresh if `out_dir` holds no run. force: overwrite
    a run already there. Without either, an existing run is a UsageError.
    Everything that can fail on bad input is checked before anything is written.
    One writer per folder (`core.lock.RunLock`: a second one gets a
    UsageError); torch uses `TRAIN_THREADS` intra-op threads (a resumed run:
    the count its checkpoint records).

    channels_last: an execution option, not part of the run's identity: the
    model's inputs (attack steps and training steps) are laid out NHWC, so
    convolutions and pooling run channels-last, 1.3-1.7x faster on a CPU
    (benchmarks/train_throughput.py, benchmarks/adv_train_throughput.py).
    Forward values are unchanged; convolution backward sums in another
    order, so weights differ from the default's by float rounding
    (tests/test_train_speed.py states the tolerance). Off by default, so a
    run trained before keeps reproducing its weights bit for bit. Refused
    (UsageError) for a run with an attack: PGD steps along the sign of the
    input gradient, so rounding flips some pixels' steps and the weights
    differ far beyond rounding (a quarter of LeNet's weights by > 1e-5 after
    two PGD-3 steps), which would make the option part of what a run computes.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"`config` must be a TrainConfig, got {type(config).__name__}")
    if channels_last and config.attacked:
        raise UsageError("channels_last changes what adversarial training computes (PGD's sign "
                         "steps amplify rounding); it is offered for runs without an attack only")
    out = Path(out_dir)
    lock = RunLock(out, what=f"run folder {out}")
    try:
        _existing_run(out, config, resume, force)  # fail on bad input before writing anything
    except UsageError:
        lock.check()  # a live writer explains the folder's state better than its files
        raise
    dev = device if isinstance(device, torch.device) else pick_device(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    train_data = _on(load_split(config, "train", download), dev)
    test_data = _on(load_split(config, "test", download), dev)
    with lock:
        ckpt = _existing_run(out, config, resume, force)  # again: the folder is ours now
        remove_leftovers(out)
        threads = TRAIN_THREADS if ckpt is None else ckpt.get("threads", TRAIN_THREADS)
        with intra_op_threads(threads), execution_mode(config.deterministic):
            model = build(config).to(dev)
            relu_out_of_place_on_views(model)  # same bits, fewer copies
            opt = make_optimizer(config, model)
            gens = make_generators(config.seed, config.random_crop > 0 or config.hflip)
            history = [] if ckpt is None else _restore(ckpt, out / CHECKPOINT, model, opt, gens)
            if ckpt is None:
                _clear(out)
            atomic_write_json(out / CONFIG, config.to_dict())
            if ckpt is not None and metrics_lag(out, config, history):
                write_metrics(out, config, history, threads)  # killed before its metrics write
            check = robust_check_data(config, test_data)
            for epoch in range(len(history), config.epochs):
                history.append(_run_epoch(epoch, model, opt, train_data, test_data, config, gens,
                                          progress, check, memory_format))
                _save(out, config, model, opt, gens, history, threads)
    return TrainResult(str(out), config, tuple(history))


def load_checkpointed(run_dir: str | os.PathLike) -> tuple[nn.Module, TrainConfig, dict, Path]:
    """(model with the run's last saved weights, on the CPU, its config, the
    checkpoint, the checkpoint's path)."""
    config = read_config(run_dir)
    path = Path(run_dir) / CHECKPOINT
    ckpt = read_checkpoint(path)
    model = build(config)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError) as err:
        raise UsageError(f"corrupt checkpoint {path}: {str(err).splitlines()[0][:200]}") from None
    return model, config, ckpt, path


def load_model(run_dir: str | os.PathLike, device: str | torch.device | None = None
               ) -> tuple[nn.Module, TrainConfig]:
    """The model of a run folder (last saved epoch), in eval mode, and its config."""
    model, config, _, _ = load_checkpointed(run_dir)
    dev = device if isinstance(device, torch.device) else pick_device(device)
    return model.to(dev).eval(), config


