"""empirics.inference: the device helpers every measurement path shares, and
non-finite logits stopping an evaluation with one line."""
import pytest
import torch
from torch import nn

from empirics.evaluate import evaluate
from empirics.inference import NonFiniteLogits, attack_mode, model_device, predict


class NaNAfter(nn.Module):
    """Finite logits for the first `good` images of every call, NaN after."""

    def __init__(self, good: int):
        super().__init__()
        self.good, self.linear = good, nn.Linear(4, 3)

    def forward(self, x):
        out = self.linear(x.flatten(1))  # (B, 3)
        return torch.where(torch.arange(len(x))[:, None] < self.good, out, float("nan"))


class BadSecondBatch(nn.Module):
    """Infinite logits on its second call (the second batch), finite otherwise."""

    def __init__(self):
        super().__init__()
        self.linear, self.calls = nn.Linear(4, 3), 0

    def forward(self, x):
        self.calls += 1
        out = self.linear(x.flatten(1))  # (B, 3)
        return out * float("inf") if self.calls == 2 else out


def test_predict_names_the_first_batch_with_non_finite_logits():
    x = torch.rand(10, 1, 2, 2)
    assert predict(NaNAfter(good=10), x, batch_size=4).shape == (10,)
    with pytest.raises(NonFiniteLogits, match=r"images 4\.\.7"):
        predict(BadSecondBatch(), x, batch_size=4)
    with pytest.raises(NonFiniteLogits, match=r"images 8\.\.9"):  # the last, short batch
        predict(BadSecondBatch(), x, batch_size=8)
    with pytest.raises(NonFiniteLogits, match=r"images 0\.\.3"):  # NaN, not only inf
        predict(NaNAfter(good=3), x, batch_size=4)


def test_evaluate_stops_on_non_finite_logits_with_one_line():
    # finite on evaluate's 2-image probe (the first call), infinite on the next batch
    images, labels = torch.rand(6, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(NonFiniteLogits) as err:
        evaluate(BadSecondBatch(), images, labels, (0.0, 0.1), steps=1, thetas=None,
                 num_classes=3)
    assert "\n" not in str(err.value) and "non-finite" in str(err.value)
    assert isinstance(err.value, ValueError)  # a UsageError: CLIs print one line, exit 2


def test_attack_mode_restores_flags_and_model_device_defaults():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    model.train()
    with attack_mode(model):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert model_device(nn.ReLU()) == torch.device("cpu")
