"""Running a model for a measurement: its device, its mode, its predictions.

Every measurement path (attacks, profiles, spatial attacks, AutoAttack,
`empirics.evaluate`) runs the model through these four helpers:

- `model_device(model)`: the device of its first parameter (or buffer).
- `to_device(t, device)`: a tensor there, without a host synchronisation
  for a copy from the CPU.
- `attack_mode(model)`: eval mode and no parameter gradients inside; every
  flag restored on exit.
- `predict(model, x)`: argmax predictions in batches. Non-finite logits stop
  the evaluation with one line naming the first bad batch
  (`NonFiniteLogits`): a model whose outputs are NaN or infinite has no
  prediction, and an argmax over NaN would silently read as class 0.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor, nn

from core.errors import UsageError


class NonFiniteLogits(UsageError):
    """The model returned NaN or infinite logits: nothing it predicts can be measured."""


@contextmanager
def attack_mode(model: nn.Module):
    """Eval mode and no parameter gradients inside; every module's training
    flag and every parameter's requires_grad restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


def model_device(model: nn.Module, default: torch.device | None = None) -> torch.device:
    """The device of the model's first parameter (or buffer); `default`
    (else CPU) for a model without either."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return default if default is not None else torch.device("cpu")


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """`t` on `device`; a copy from the CPU does not wait for the GPU to
    finish queued work (no host synchronisation)."""
    if t.device == device:
        return t
    return t.to(device, non_blocking=t.device.type == "cpu")


def finite_logits(logits: Tensor, start: int, end: int) -> Tensor:
    """`logits` of images start..end-1, or NonFiniteLogits naming that batch
    (one read-back of a single flag)."""
    if not bool(torch.isfinite(logits).all()):
        raise NonFiniteLogits(f"the model returned non-finite logits (NaN or inf) on the batch "
                              f"of images {start}..{end - 1}; nothing it predicts can be measured")
    return logits


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """Argmax predictions in batches on the model's device (the caller sets
    the model's mode); returned on the model's device. NonFiniteLogits at
    the first batch whose logits are not all finite."""
    device = model_device(model, x.device)
    out = []
    for i in range(0, len(x), batch_size):
        logits = model(to_device(x[i:i + batch_size], device))  # (b, K)
        out.append(finite_logits(logits, i, min(i + batch_size, len(x))).argmax(1))
    return torch.cat(out)  # (N,)
