"""WideResNet: the CIFAR-10 model of Madry et al. (2018), `cifar10_challenge/model.py`.

| stage      | layers                                              | 32x32 input: output     |
|------------|-----------------------------------------------------|-------------------------|
| input      | Normalize(mean, std); Conv(16, 3x3)                 | (B, 16, 32, 32)         |
| unit_1_0-4 | 5 residual units, 16w filters, stride 1             | (B, 16w, 32, 32)        |
| unit_2_0-4 | 5 residual units, 32w filters, first stride 2       | (B, 32w, 16, 16)        |
| unit_3_0-4 | 5 residual units, 64w filters, first stride 2       | (B, 64w, 8, 8)          |
| unit_last  | BN, LeakyReLU(0.1), global average pool             | (B, 64w)                |
| logit      | FC(64w -> 10)                                       | (B, 10) logits          |

width=10 is Madry's "w32-10" model (filters 16/160/320/640). Residual units
are pre-activation as in Madry's `_residual`: BN, LeakyReLU(0.1), conv 3x3
(stride s), BN, LeakyReLU(0.1), conv 3x3; the first unit of the network
("activate_before_residual") feeds the activated input to the shortcut, the
others the raw input. When the width changes, the shortcut is average-pooled
by the stride and zero-padded in channels (no projection conv). Differences
from the TensorFlow original: PyTorch padding 1 instead of TF 'SAME' (same
output sizes, pixel alignment of stride-2 convs differs by one), and the
input is standardised with the data set's mean/std (`Normalize`) rather than
per-image standardisation.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from empirics.models.normalize import Normalize

UNITS_PER_STAGE = 5
LEAK = 0.1
BN_EPS = 1e-3  # tf.contrib.layers.batch_norm default; decay 0.9 = PyTorch momentum 0.1


class ResidualUnit(nn.Module):
    """Madry's `_residual`: (B, c_in, s, s) -> (B, c_out, s/stride, s/stride)."""

    def __init__(self, c_in: int, c_out: int, stride: int, activate_before_residual: bool):
        super().__init__()
        self.activate_before_residual = activate_before_residual
        self.stride, self.pad = stride, (c_out - c_in) // 2
        self.bn1 = nn.BatchNorm2d(c_in, eps=BN_EPS)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.leaky_relu(self.bn1(x), LEAK)  # (B, c_in, s, s)
        shortcut = a if self.activate_before_residual else x
        y = self.conv1(a)  # (B, c_out, s/stride, s/stride)
        y = self.conv2(F.leaky_relu(self.bn2(y), LEAK))  # (B, c_out, s/stride, s/stride)
        if self.pad or self.stride != 1:
            shortcut = F.avg_pool2d(shortcut, self.stride, self.stride)  # (B, c_in, s/stride, s/stride)
            shortcut = F.pad(shortcut, (0, 0, 0, 0, self.pad, self.pad))  # (B, c_out, s/stride, s/stride)
        return y + shortcut


class WideResNet(nn.Module):
    """Input (B, C, s, s) in [0, 1] -> logits (B, num_classes); filters 16/16w/32w/64w."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 width: int = 10):
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"`width` must be a positive integer, got {width!r}")
        if not isinstance(image_size, int) or image_size < 4:
            raise ValueError(f"`image_size` must be an integer >= 4, got {image_size!r}")
        self.normalize = Normalize.for_channels(in_channels, mean, std)
        self.init_conv = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)  # (B, 16, s, s)
        filters, units = [16, 16 * width, 32 * width, 64 * width], []
        for stage, stride in enumerate((1, 2, 2)):
            for i in range(UNITS_PER_STAGE):
                c_in = filters[stage] if i == 0 else filters[stage + 1]
                units.append(ResidualUnit(c_in, filters[stage + 1], stride if i == 0 else 1,
                                          activate_before_residual=(stage == 0 and i == 0)))
        self.units = nn.Sequential(*units)  # (B, 64w, s/4, s/4)
        self.final_bn = nn.BatchNorm2d(filters[3], eps=BN_EPS)
        self.logit = nn.Linear(filters[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.units(self.init_conv(self.normalize(x)))  # (B, 64w, s/4, s/4)
        z = F.leaky_relu(self.final_bn(z), LEAK).mean(dim=(2, 3))  # (B, 64w)
        return self.logit(z)  # (B, num_classes)
