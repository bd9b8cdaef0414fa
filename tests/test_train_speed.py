"""The training loop's speed-ups compute what a plain PyTorch loop computes.

`benchmarks/plain_loop.py` is the peer the training benchmarks time; these
tests hold `empirics.train.train` to its weights on tiny runs:
- the default execution (parameters' gradients off during the attack, one
  layout throughout) gives the plain loop's weights bit for bit, whichever
  way the plain loop takes the attack's gradient;
- `channels_last=True` (convolutions in NHWC, summing in another order) gives
  them within float rounding: every weight within ATOL of the plain loop's.
  It is refused for adversarial training, where it would not.
"""
from __future__ import annotations

import sys
from pathlib import Path
from unittest.mock import patch

import pytest
import torch

from empirics.attacks import laid_out, pgd
from core.errors import UsageError
from empirics.train import TrainConfig, load_split, train
from empirics.train.loop import TRAIN_THREADS, build, intra_op_threads, make_generators

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import plain_loop  # noqa: E402
from plain_loop import GRADS, plain_train  # noqa: E402

# Channels-last differs from NCHW only in float32 summation order inside the
# convolutions' backward (forward values agree bit for bit): a few 1e-9 in an
# input gradient. In the weights, per tensor, |w_fast - w_plain| stays below
# 4e-5 |w_plain - w_init| (L2 norms; measured over 10 Adam steps of StdCNN
# and P4CNN: 3.5e-8..3.2e-5). An elementwise bound would not hold: Adam's
# first steps move a weight by about lr * sign(gradient), so a weight whose
# gradient is at rounding level can land up to 2 lr apart. Anything that
# changes the computation itself (another data order or attack start, a
# layout bug) gives a relative difference of order 1 (the seed test).
RTOL = 1e-3

RUNS = {  # tiny runs of each model the benchmarks time: a few steps each
    "stdcnn": dict(model="stdcnn", batch_size=50, train_subset=150),
    "p4cnn": dict(model="p4cnn", batch_size=50, train_subset=100),
    "lenet-pgd": dict(model="lenet", batch_size=50, train_subset=100, adv_eps=0.3, adv_steps=3),
}


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _ours(config: TrainConfig, tmp_path: Path, channels_last: bool) -> dict[str, torch.Tensor]:
    folder = tmp_path / f"run-{channels_last}"
    train(config, folder, device="cpu", progress=False, channels_last=channels_last)
    return torch.load(folder / "checkpoint.pt", weights_only=True)["model"]


def _plain(config: TrainConfig, grad: str = "backward") -> dict[str, torch.Tensor]:
    data = load_split(config, "train")
    with intra_op_threads(TRAIN_THREADS):
        return _weights(plain_train(config, data.images, data.labels, grad)[0])


def _relative_difference(a: dict, b: dict, init: dict) -> float:
    """max over trained tensors of |a - b| / |b - init| (L2 norms)."""
    return max(float((a[k] - b[k]).norm() / (b[k] - init[k]).norm())
               for k in b if not torch.equal(b[k], init[k]))


def _assert_equal(plain: dict, ours: dict) -> None:
    assert plain.keys() == ours.keys()
    for k in plain:
        assert torch.equal(plain[k], ours[k]), k  # bit for bit


@pytest.mark.parametrize("name", ["stdcnn", "p4cnn"])
def test_plain_training_same_weights_as_the_plain_loop(name, tmp_path):
    config = TrainConfig(epochs=1, test_subset=50, seed=3, **RUNS[name])
    plain = _plain(config)
    _assert_equal(plain, _ours(config, tmp_path, channels_last=False))
    fast = _ours(config, tmp_path, channels_last=True)
    init = _weights(build(config))
    assert _relative_difference(fast, plain, init) <= RTOL


def test_adversarial_training_same_weights_as_the_plain_loop(tmp_path):
    config = TrainConfig(epochs=1, test_subset=50, seed=3, **RUNS["lenet-pgd"])
    ours = _ours(config, tmp_path, channels_last=False)
    for grad in GRADS:
        _assert_equal(_plain(config, grad), ours)
    with pytest.raises(UsageError, match="channels_last"):
        train(config, tmp_path / "cl", device="cpu", progress=False, channels_last=True)
    assert not (tmp_path / "cl").exists()


def test_plain_loop_differs_with_another_seed():
    """The comparison can fail: another seed for data order and attack starts
    (same initial weights) moves the weights far beyond RTOL."""
    config = TrainConfig(epochs=1, seed=3, test_subset=50, **RUNS["lenet-pgd"])
    a = _plain(config)
    with patch.object(plain_loop, "make_generators", lambda seed: make_generators(seed + 1)):
        b = _plain(config)
    assert _relative_difference(b, a, _weights(build(config))) > 100 * RTOL


def test_laid_out_keeps_values_and_sets_nhwc():
    x = torch.rand(3, 1, 5, 5)
    y = laid_out(x, torch.channels_last)
    assert torch.equal(x, y) and y.stride() == (25, 1, 5, 1)
    assert laid_out(x, torch.contiguous_format) is x
    x3 = torch.rand(2, 3, 4, 4)
    assert laid_out(x3, torch.channels_last).is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="memory_format"):
        laid_out(torch.rand(2, 5), torch.channels_last)


def test_pgd_channels_last_within_rounding_of_the_default():
    """Same attack in NHWC: iterates within a sign flip's reach of the default
    (a flipped sign moves one pixel by 2 alpha; rounding alone moves nothing
    else), and mostly equal."""
    from empirics.models.registry import build_model
    torch.manual_seed(0)
    model = build_model("lenet", "mnist5k")
    x, y = torch.rand(20, 1, 28, 28), torch.randint(0, 10, (20,))
    a = pgd(model, x, y, 0.1, steps=5)
    b = pgd(model, x, y, 0.1, steps=5, memory_format=torch.channels_last)
    assert torch.equal(a, b) or float((a != b).float().mean()) < 1e-3
