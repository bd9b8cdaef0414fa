"""StdCNN and P4CNN, the MNIST models of the paper's Table 1.

| StdCNN                  | P4CNN (GCNN)                        | 28x28 input: output      |
|-------------------------|-------------------------------------|--------------------------|
| Normalize(mean, std)    | Normalize(mean, std)                | (B, 1, 28, 28)           |
| Conv(10, 3x3) + ReLU    | P4ConvZ2(10, 3x3) + ReLU            | (B, 10, [4,] 26, 26)     |
| Conv(10, 3x3) + ReLU    | P4ConvP4(10, 3x3) + ReLU            | (B, 10, [4,] 24, 24)     |
| MaxPool(2, 2)           | GroupSpatialMaxPool(2, 2)           | (B, 10, [4,] 12, 12)     |
| Conv(20, 3x3) + ReLU    | P4ConvP4(20, 3x3) + ReLU            | (B, 20, [4,] 10, 10)     |
| Conv(20, 3x3) + ReLU    | P4ConvP4(20, 3x3) + ReLU            | (B, 20, [4,] 8, 8)       |
| MaxPool(2, 2)           | GroupSpatialMaxPool(2, 2)           | (B, 20, [4,] 4, 4)       |
| FC(50) + ReLU           | FC(50) + ReLU                       | (B, 50)                  |
| Dropout(0.5)            | Dropout(0.5)                        | (B, 50)                  |
| FC(10)                  | FC(10)                              | (B, 10) logits           |

No padding, so with 28x28 input every 2x2 pool tiles its input exactly and
the P4 features are exactly rot90-equivariant. Softmax lives in the loss.
P4CNN's FC reads the flattened (20, 4, 4, 4) features by default; with
`invariant_head=True` it first takes the max over orientations and space,
(B, 20, 4, 4, 4) -> (B, 20), which makes the whole model exactly invariant to
rot90 of the input.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from empirics.models.normalize import Normalize
from empirics.models.p4 import GroupSpatialMaxPool2d, P4ConvP4, P4ConvZ2


def flat_features(features: nn.Module, in_channels: int, image_size: int) -> int:
    """Number of features `features` produces per image of shape (in_channels, s, s)."""
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"`image_size` must be a positive integer, got {image_size!r}")
    was_training = features.training
    features.eval()  # BatchNorm cannot run in training mode on one 1x1 sample
    try:
        with torch.no_grad():
            y = features(torch.zeros(1, in_channels, image_size, image_size))
    except RuntimeError as err:
        raise ValueError(f"`image_size` {image_size} is too small for this model ({err})") from None
    finally:
        features.train(was_training)
    return y[0].numel()


def _head(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, 50), nn.ReLU(inplace=True),  # (B, 50)
        nn.Dropout(dropout),
        nn.Linear(50, num_classes),  # (B, num_classes)
    )


class StdCNN(nn.Module):
    """Table 1, left column. Input (B, C, s, s) in [0, 1] -> logits (B, num_classes)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 dropout: float = 0.5):
        super().__init__()
        self.normalize = Normalize.for_channels(in_channels, mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 10, 3), nn.ReLU(inplace=True),  # (B, 10, 26, 26)
            nn.Conv2d(10, 10, 3), nn.ReLU(inplace=True),  # (B, 10, 24, 24)
            nn.MaxPool2d(2, 2),  # (B, 10, 12, 12)
            nn.Conv2d(10, 20, 3), nn.ReLU(inplace=True),  # (B, 20, 10, 10)
            nn.Conv2d(20, 20, 3), nn.ReLU(inplace=True),  # (B, 20, 8, 8)
            nn.MaxPool2d(2, 2),  # (B, 20, 4, 4)
        )
        self.classifier = _head(flat_features(self.features, in_channels, image_size), num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(self.normalize(x))  # (B, 20, 4, 4)
        return self.classifier(z.flatten(1))  # (B, num_classes)


class P4CNN(nn.Module):
    """Table 1, right column (GCNN). Input (B, C, s, s) in [0, 1] -> logits (B, num_classes)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 dropout: float = 0.5, invariant_head: bool = False):
        super().__init__()
        self.invariant_head = bool(invariant_head)
        self.normalize = Normalize.for_channels(in_channels, mean, std)
        self.features = nn.Sequential(
            P4ConvZ2(in_channels, 10, 3), nn.ReLU(inplace=True),  # (B, 10, 4, 26, 26)
            P4ConvP4(10, 10, 3), nn.ReLU(inplace=True),  # (B, 10, 4, 24, 24)
            GroupSpatialMaxPool2d(2, 2),  # (B, 10, 4, 12, 12)
            P4ConvP4(10, 20, 3), nn.ReLU(inplace=True),  # (B, 20, 4, 10, 10)
            P4ConvP4(20, 20, 3), nn.ReLU(inplace=True),  # (B, 20, 4, 8, 8)
            GroupSpatialMaxPool2d(2, 2),  # (B, 20, 4, 4, 4)
        )
        in_features = flat_features(self.features, in_channels, image_size)  # 20 * 4 * h * w
        if self.invariant_head:
            in_features = 20  # after the max over orientations and space
        self.classifier = _head(in_features, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(self.normalize(x))  # (B, 20, 4, h, w)
        if self.invariant_head:
            z = z.amax(dim=(2, 3, 4))  # (B, 20): max over orientations and space
        return self.classifier(z.flatten(1))  # (B, num_classes)
