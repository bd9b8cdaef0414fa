"""The paper's models: StdCNN / P4CNN (MNIST, Table 1), LeNet (Madry MNIST),
VGG16 / P4VGG16 (CIFAR-10), WideResNet (Madry CIFAR-10), and P4 layers.

Every model takes pixel-space input in [0, 1] (a `Normalize` first layer)
and returns logits. Build one by name with `build_model(name, dataset)`.
"""
from empirics.models.normalize import Normalize
from empirics.models.p4 import (GroupSpatialMaxPool2d, P4ConvP4, P4ConvZ2, equivariance_error,
                                group_max_pool)
from empirics.models.registry import MODEL_NAMES, build_model

__all__ = ["MODEL_NAMES", "build_model", "Normalize", "P4ConvZ2", "P4ConvP4",
           "GroupSpatialMaxPool2d", "group_max_pool", "equivariance_error"]
