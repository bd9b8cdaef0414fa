"""`Normalize(mean, std)`: the first layer of every model.

Models take pixel-space input in [0, 1]; per-channel standardisation lives
inside the model so attacks and rotations always work in pixel space.
mean and std are buffers (saved in the state_dict, never trained).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn


class Normalize(nn.Module):
    """(x - mean) / std per channel: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if len(mean) == 0 or len(mean) != len(std):
            raise ValueError(f"`mean` and `std` must be non-empty and of equal length, "
                             f"got {len(mean)} and {len(std)}")
        if any(not s > 0 for s in std):
            raise ValueError(f"`std` must be positive, got {std}")
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))  # (1, C, 1, 1)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))  # (1, C, 1, 1)

    @classmethod
    def for_channels(cls, channels: int, mean: Sequence[float] | None = None,
                     std: Sequence[float] | None = None) -> "Normalize":
        """Normalize with the given statistics; mean 0 / std 1 (identity) where None."""
        norm = cls(mean if mean is not None else (0.0,) * channels,
                   std if std is not None else (1.0,) * channels)
        if norm.mean.shape[1] != channels:
            raise ValueError(f"`mean` and `std` must have one entry per channel ({channels}), "
                             f"got {norm.mean.shape[1]}")
        return norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"Normalize expects (B, {self.mean.shape[1]}, H, W) input, "
                             f"got shape {tuple(x.shape)}")
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={tuple(self.mean.flatten().tolist())}, std={tuple(self.std.flatten().tolist())}"
