"""LeNet: the MNIST model of Madry et al. (2018), used for adversarial training.

| layer                            | 28x28 input: output  |
|----------------------------------|----------------------|
| Normalize(mean, std)             | (B, 1, 28, 28)       |
| Conv(32, 5x5, same) + ReLU       | (B, 32, 28, 28)      |
| MaxPool(2, 2)                    | (B, 32, 14, 14)      |
| Conv(64, 5x5, same) + ReLU       | (B, 64, 14, 14)      |
| MaxPool(2, 2)                    | (B, 64, 7, 7)        |
| FC(7*7*64 -> 1024) + ReLU        | (B, 1024)            |
| FC(1024 -> 10)                   | (B, 10) logits       |

Madry et al. feed raw [0, 1] pixels; pass mean 0 / std 1 (the defaults) to
match that exactly, or a data set's statistics through `build_model`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from empirics.models.mnist import flat_features
from empirics.models.normalize import Normalize


class LeNet(nn.Module):
    """Input (B, C, s, s) in [0, 1] -> logits (B, num_classes)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        self.normalize = Normalize.for_channels(in_channels, mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2), nn.ReLU(inplace=True),  # (B, 32, 28, 28)
            nn.MaxPool2d(2, 2),  # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(inplace=True),  # (B, 64, 14, 14)
            nn.MaxPool2d(2, 2),  # (B, 64, 7, 7)
        )
        self.classifier = nn.Sequential(
            nn.Linear(flat_features(self.features, in_channels, image_size), 1024),
            nn.ReLU(inplace=True),  # (B, 1024)
            nn.Linear(1024, num_classes),  # (B, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(self.normalize(x))  # (B, 64, 7, 7)
        return self.classifier(z.flatten(1))  # (B, num_classes)
