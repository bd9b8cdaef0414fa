"""Tests for the models and the registry: shapes, Table 1 layer plan, symmetry."""
from dataclasses import dataclass

import pytest
import torch

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
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    # float64: only rounding noise (~1e-15) is allowed
    assert equivariance_error(model, x) < 1e-10
    assert equivariance_error(model.float(), x.float()) < 1e-5  # float32 precision


def test_p4cnn_features_equivariant_default_head_not_invariant():
    torch.manual_seed(1)
    model = P4CNN().double()
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
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


def test_normalize_statistics_must_match_channels():
    with pytest.raises(ValueError, match="mean"):
        build_model("stdcnn", FakeInfo(channels=3, mean=(0.5,), std=(0.25,)))


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


# ---- LeNet, VGG16, P4VGG16, WideResNet ------------------------------------

def test_lenet_madry_parameter_count():
    # Madry et al. MNIST model by hand: conv 5x5 1->32 (800+32), 32->64
    # (51200+64), FC 3136->1024 (3211264+1024), FC 1024->10 (10240+10)
    assert _n_params(build_model("lenet", MNIST_LIKE)) == 832 + 51264 + 3212288 + 10250


@pytest.mark.slow
def test_vgg16_parameter_count_and_p4_width_convention():
    # VGG16-BN CIFAR variant: 13 convs (3x3, bias) + BN (2 per channel) + FC 512->10;
    # 14,728,266 is the well-known count of this variant (kuangliu/pytorch-cifar VGG('VGG16'))
    vgg = build_model("vgg16", CIFAR_LIKE)
    assert _n_params(vgg) == 14_728_266
    # P4 version at half width: within 1 % of the planar count (GrouPy convention)
    p4 = build_model("p4vgg16", CIFAR_LIKE)
    assert abs(_n_params(p4) / _n_params(vgg) - 1) < 0.01
    assert isinstance(p4.features[0], P4ConvZ2) and p4.features[0].out_channels == 32


@pytest.mark.slow
def test_p4vgg16_is_rot90_invariant_on_power_of_two_sizes():
    # 16x16 (16 -> 8 -> 4 -> 2 -> 1 -> 1) keeps every pool rot90-exact, like
    # 32x32, at 1/4 the cost. float32 (float64 convs are ~20x slower on CPU):
    # logits are O(0.1), so 1e-5 is ~1000 float32 ulp
    torch.manual_seed(2)
    model = build_model("p4vgg16", FakeInfo("fake16", 3, 16, 10, (0.5,) * 3, (0.25,) * 3))
    x = torch.rand(2, 3, 16, 16)
    assert equivariance_error(model, x) < 1e-5


def test_wide_resnet_madry_parameter_count():
    # Madry's w32-10 (filters 16/160/320/640, 5 units per stage): 45.9M
    # parameters, counted by hand from cifar10_challenge/model.py:
    # init conv 3*16*9; unit convs 9*(c_in*c_out + c_out^2); BN 2*(c_in + c_out)
    # per unit; final BN 2*640; FC 640*10+10
    def count(width):
        f = [16, 16 * width, 32 * width, 64 * width]
        n = 3 * 16 * 9 + 2 * f[3] + f[3] * 10 + 10
        for s in range(3):
            for i in range(5):
                cin, cout = (f[s] if i == 0 else f[s + 1]), f[s + 1]
                n += 9 * (cin * cout + cout * cout) + 2 * (cin + cout)
        return n
    assert count(10) == 45_901_914
    for width in (1, 2):
        assert _n_params(build_model("resnet", CIFAR_LIKE, width=width)) == count(width)


def test_wide_resnet_width_validated():
    with pytest.raises(ValueError, match="width"):
        build_model("resnet", CIFAR_LIKE, width=0)


# the two VGGs only at 28x28 (the ceil-mode path); their 32x32 forward runs in
# the parameter-count and invariance tests above
SHAPE_CASES = [pytest.param(name, info, marks=[pytest.mark.slow] if name == "p4vgg16" else [],
                            id=f"{name}-{info.size}")
               for name in MODEL_NAMES for info in (MNIST_LIKE, CIFAR_LIKE)
               if not (name in ("vgg16", "p4vgg16") and info is CIFAR_LIKE)]


@pytest.mark.parametrize("name, info", SHAPE_CASES)
def test_every_model_shapes_normalize_and_gradient(name, info):
    kwargs = {"width": 1} if name == "resnet" else {}
    model = build_model(name, info, **kwargs)
    assert isinstance(model.normalize, Normalize)
    assert torch.allclose(model.normalize.std.flatten(), torch.tensor(info.std))
    x = torch.rand(1, info.channels, info.size, info.size, requires_grad=True)
    out = model.eval()(x)
    assert out.shape == (1, info.num_classes)
    out.sum().backward()  # attacks need input gradients
    assert x.grad is not None and x.grad.abs().sum() > 0
