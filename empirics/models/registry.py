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

import importlib
from typing import Any

import torch.nn as nn

MODEL_NAMES = ("stdcnn", "p4cnn", "lenet", "vgg16", "p4vgg16", "resnet")

_SHAPE_FIELDS = ("channels", "size", "num_classes", "mean", "std")

_CLASSES = {  # name -> (module, class); imported on demand
    "stdcnn": ("empirics.models.mnist", "StdCNN"),
    "p4cnn": ("empirics.models.mnist", "P4CNN"),
    "lenet": ("empirics.models.lenet", "LeNet"),
    "vgg16": ("empirics.models.vgg", "VGG16"),
    "p4vgg16": ("empirics.models.vgg", "P4VGG16"),
    "resnet": ("empirics.models.resnet", "WideResNet"),
}


def _model_class(name: str) -> type[nn.Module]:
    module, cls = _CLASSES[name]
    return getattr(importlib.import_module(module), cls)


def dataset_info(dataset: Any) -> Any:
    """A data-set name from `empirics.data.DATASETS`, or any object with
    channels / size / num_classes / mean / std attributes (a `DatasetInfo`)."""
    if isinstance(dataset, str):
        from empirics.data import DATASETS  # imported here: data loading is not needed to build a model
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
        return _model_class(name)(in_channels=int(info.channels), num_classes=int(info.num_classes),
                                  image_size=int(info.size), mean=tuple(info.mean),
                                  std=tuple(info.std), **kwargs)
    except TypeError as err:
        raise ValueError(f"bad keyword argument for model {name!r}: {err}") from None
