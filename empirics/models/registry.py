"""Build any model by name for a data set's shape and normalisation.

| name      | model                                | paper use                 |
|-----------|--------------------------------------|---------------------------|
| stdcnn    | `StdCNN` (Table 1)                   | MNIST standard CNN        |
| p4cnn     | `P4CNN` (Table 1, GCNN)              | MNIST group-equivariant   |
| lenet     | `LeNet` (Madry et al.)               | MNIST adversarial training|
| vgg16     | `VGG16` with BatchNorm               | CIFAR-10 standard CNN     |
| p4vgg16   | `P4VGG16`                            | CIFAR-10 GCNN             |
| resnet    | `WideResNet` (Madry et al.)          | CIFAR-10 adv. training    |
"""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from empirics.data import DATASETS
from empirics.models.lenet import LeNet
from empirics.models.mnist import P4CNN, StdCNN
from empirics.models.resnet import WideResNet
from empirics.models.vgg import P4VGG16, VGG16

# name -> (class, rough cost of one training image (forward + backward)
# relative to a StdCNN, measured on CPU on mnist5k; the sweep starts the
# costliest runs first)
MODELS: dict[str, tuple[type[nn.Module], float]] = {
    "stdcnn": (StdCNN, 1.0),
    "p4cnn": (P4CNN, 6.0),
    "lenet": (LeNet, 5.0),
    "vgg16": (VGG16, 40.0),
    "p4vgg16": (P4VGG16, 160.0),
    "resnet": (WideResNet, 80.0),
}
MODEL_NAMES = tuple(MODELS)

_SHAPE_FIELDS = ("channels", "size", "num_classes", "mean", "std")


def relative_cost(name: str) -> float:
    """Cost of one training image of model `name` relative to a StdCNN (1.0 if unknown)."""
    return MODELS[name][1] if name in MODELS else 1.0


def dataset_info(dataset: Any) -> Any:
    """A data-set name from `empirics.data.DATASETS`, or any object with
    channels / size / num_classes / mean / std attributes (a `DatasetInfo`)."""
    if isinstance(dataset, str):
        if dataset not in DATASETS:
            raise ValueError(f"`dataset` must be one of {tuple(DATASETS)}, got {dataset!r}")
        return DATASETS[dataset]
    missing = [f for f in _SHAPE_FIELDS if not hasattr(dataset, f)]
    if missing:
        raise ValueError(f"`dataset` must be a data-set name or a DatasetInfo; "
                         f"{type(dataset).__name__} lacks {', '.join(missing)}")
    return dataset


def build_model(name: str, dataset: Any, **kwargs: Any) -> nn.Module:
    """Model `name` for `dataset` (name or DatasetInfo): input (B, C, s, s) in [0, 1] -> logits.

    Extra keyword arguments go to the model's constructor (for example
    `invariant_head=True` for p4cnn, `width=2` for resnet).
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"`model` must be one of {MODEL_NAMES}, got {name!r}")
    info = dataset_info(dataset)
    try:
        return MODELS[name][0](in_channels=int(info.channels), num_classes=int(info.num_classes),
                                  image_size=int(info.size), mean=tuple(info.mean),
                                  std=tuple(info.std), **kwargs)
    except TypeError as err:
        raise ValueError(f"bad keyword argument for model {name!r}: {err}") from None
