"""VGG16 with BatchNorm (CIFAR-10 variant, 512 -> 10 head) and its P4 version.

| stage | VGG16: Conv3x3(pad 1)+BN+ReLU | P4VGG16: P4Conv3x3+BN+ReLU | 32x32: VGG16 / P4VGG16 output     |
|-------|-------------------------------|----------------------------|-----------------------------------|
| 1     | 64, 64, MaxPool(2, 2)         | 32, 32, GroupSpatialMaxPool| (B, 64, 16, 16) / (B, 32, 4, 16, 16) |
| 2     | 128, 128, MaxPool             | 64, 64, pool               | (B, 128, 8, 8) / (B, 64, 4, 8, 8)    |
| 3     | 256, 256, 256, MaxPool        | 128, 128, 128, pool        | (B, 256, 4, 4) / (B, 128, 4, 4, 4)   |
| 4     | 512, 512, 512, MaxPool        | 256, 256, 256, pool        | (B, 512, 2, 2) / (B, 256, 4, 2, 2)   |
| 5     | 512, 512, 512, MaxPool        | 256, 256, 256, pool        | (B, 512, 1, 1) / (B, 256, 4, 1, 1)   |
| head  | FC(512 -> 10)                 | max over orientations, FC(256 -> 10) | (B, 10) logits          |

The CIFAR-10 variant (as in the authors' code): no FC-4096 layers, one linear
layer on the 512 features. P4VGG16 follows GrouPy's convention of dividing
the channel widths by 2 (= sqrt(|P4|)), so a P4ConvP4 layer has about the
parameters of the planar layer it replaces; the first layer is P4ConvZ2 and
BatchNorm statistics are shared across the 4 orientations (BatchNorm3d), which
keeps it equivariant. Pools use `ceil_mode=True` so 28x28 inputs still reach
1x1 (28 -> 14 -> 7 -> 4 -> 2 -> 1); pools of odd sizes are then not exactly
rot90-symmetric, so P4VGG16 is exactly invariant only on 2^k-sized inputs
such as 32x32.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from empirics.models.mnist import flat_features
from empirics.models.normalize import Normalize
from empirics.models.p4 import GroupSpatialMaxPool2d, P4ConvP4, P4ConvZ2, group_max_pool

PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """Input (B, C, s, s) in [0, 1] -> logits (B, num_classes)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        self.normalize = Normalize.for_channels(in_channels, mean, std)
        layers, c = [], in_channels
        for v in PLAN:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))  # (B, c, s/2, s/2)
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(flat_features(self.features, in_channels, image_size), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(self.normalize(x))  # (B, 512, 1, 1)
        return self.classifier(z.flatten(1))  # (B, num_classes)


class P4VGG16(nn.Module):
    """VGG16 plan with P4 layers at half width; group pooling before the head."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        self.normalize = Normalize.for_channels(in_channels, mean, std)
        layers, c = [], None
        for v in PLAN:
            if v == "M":
                layers.append(GroupSpatialMaxPool2d(2, 2, ceil_mode=True))  # (B, c, 4, s/2, s/2)
                continue
            v //= 2
            conv = P4ConvZ2(in_channels, v, 3, padding=1) if c is None else P4ConvP4(c, v, 3, padding=1)
            layers += [conv, nn.BatchNorm3d(v), nn.ReLU(inplace=True)]  # (B, v, 4, s, s)
            c = v
        self.features = nn.Sequential(*layers)
        in_features = flat_features(self.features, in_channels, image_size) // 4
        self.classifier = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = group_max_pool(self.features(self.normalize(x)))  # (B, 256, 1, 1)
        return self.classifier(z.flatten(1))  # (B, num_classes)
