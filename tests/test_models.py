"""Tests for the models and the registry: shapes, Table 1 layer plan, symmetry."""
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn

from empirics.models import MODEL_NAMES, Normalize, build_model, equivariance_error
from empirics.models.mnist import P4CNN, StdCNN
from empirics.models.p4 import P4ConvP4, P4ConvZ2


@dataclass(frozen=True)
class FakeInfo:
    """Stands in for empirics.data.DatasetInfo (same fields)."""
    name: str = "fake"
    channels: int = 1
    size: int = 28
    num_classes: int = 10
    mean: tuple = (0.5,)
    std: tuple = (0.25,)


MNIST_LIKE = FakeInfo()
CIFAR_LIKE = FakeInfo("fake-cifar", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


def _n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_stdcnn_table1_parameter_count():
    # Table 1 by hand: conv 1->10 (90+10), 10->10 (900+10), 10->20 (1800+20),
    # 20->20 (3600+20), FC 20*4*4->50 (16000+50), FC 50->10 (500+10)
    want = 100 + 910 + 1820 + 3620 + 16050 + 510
    assert _n_params(StdCNN()) == want


def test_p4cnn_table1_parameter_count():
    # P4ConvZ2 1->10: 10*1*9+10; P4ConvP4 c->o: o*c*4*9+o;
    # FC (20*4*4*4)->50 and 50->10
    conv = (90 + 10) + (10 * 10 * 36 + 10) + (20 * 10 * 36 + 20) + (20 * 20 * 36 + 20)
    assert _n_params(P4CNN()) == conv + (1280 * 50 + 50) + 510
    assert _n_params(P4CNN(invariant_head=True)) == conv + (20 * 50 + 50) + 510


def test_p4cnn_uses_p4_layers_in_table1_order():
    kinds = [type(m) for m in P4CNN().features if isinstance(m, (P4ConvZ2, P4ConvP4))]
    assert kinds == [P4ConvZ2, P4ConvP4, P4ConvP4, P4ConvP4]


def test_p4cnn_invariant_head_is_rot90_invariant():
    torch.manual_seed(0)
    model = P4CNN(invariant_head=True).double()
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64)
    # float64: only rounding noise (~1e-15) is allowed
    assert equivariance_error(model, x) < 1e-10
    assert equivariance_error(model.float(), x.float()) < 1e-5  # float32 precision


def test_p4cnn_features_equivariant_default_head_not_invariant():
    torch.manual_seed(1)
    model = P4CNN().double()
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64)
    assert equivariance_error(model.features, x) < 1e-10
    # the flattening FC sees orientations/positions, so logits do change
    assert equivariance_error(model, x) > 1e-6
    assert equivariance_error(StdCNN().double(), x) > 1e-6


def test_normalize_is_first_layer_with_buffers():
    m = build_model("stdcnn", MNIST_LIKE)
    assert isinstance(next(m.children()), Normalize)
    assert torch.allclose(m.normalize.mean.flatten(), torch.tensor([0.5]))
    assert "normalize.mean" in m.state_dict()
    assert not any("normalize" in n for n, _ in m.named_parameters())
    x = torch.rand(2, 1, 5, 5)
    assert torch.allclose(Normalize((0.5,), (0.25,))(x), (x - 0.5) / 0.25)


@pytest.mark.parametrize("mean, std", [((0.5,), (0.0,)), ((0.5, 0.5), (1.0,)), ((), ())])
def test_normalize_validates(mean, std):
    with pytest.raises(ValueError, match="std|mean"):
        Normalize(mean, std)


@pytest.mark.parametrize("name", ["stdcnn", "p4cnn"])
@pytest.mark.parametrize("info", [MNIST_LIKE, CIFAR_LIKE, FakeInfo(size=20, num_classes=7)])
def test_mnist_models_any_input_shape(name, info):
    m = build_model(name, info)
    out = m(torch.rand(3, info.channels, info.size, info.size))
    assert out.shape == (3, info.num_classes)


def test_registry_rejects_unknown_names():
    with pytest.raises(ValueError, match="model"):
        build_model("alexnet", MNIST_LIKE)
    with pytest.raises(ValueError, match="dataset"):
        build_model("stdcnn", "no-such-dataset")
    with pytest.raises(ValueError, match="dataset"):
        build_model("stdcnn", object())
    with pytest.raises(ValueError, match="stdcnn"):
        build_model("stdcnn", MNIST_LIKE, no_such_option=1)


def test_registry_accepts_dataset_names():
    pytest.importorskip("empirics.data")
    m = build_model("stdcnn", "mnist5k")
    assert m(torch.rand(2, 1, 28, 28)).shape == (2, 10)
