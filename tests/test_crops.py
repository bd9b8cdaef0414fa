"""Random crops with zero padding and horizontal flips (CIFAR-10 training)."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from empirics.crops import random_crop_flip
from empirics.train import TrainConfig
from pipeline.experiments import figure
from pipeline.runspec import RunSpec, config_hash


def _batch(b=6, c=3, h=8, w=8, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_nothing_configured_leaves_the_batch_alone():
    x = _batch()
    assert torch.equal(random_crop_flip(x, 0, False, torch.Generator()), x)


@settings(max_examples=20, deadline=None)
@given(pad=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_each_image_is_a_window_of_its_padded_self(pad, seed):
    x = _batch(seed=seed % 1000)
    out = random_crop_flip(x, pad, False, torch.Generator().manual_seed(seed))
    padded = F.pad(x, (pad, pad, pad, pad))
    h, w = x.shape[-2:]
    for i in range(len(x)):  # some offset (dy, dx) in [0, 2 pad]^2 reproduces the image
        windows = [padded[i, :, dy:dy + h, dx:dx + w] for dy in range(2 * pad + 1)
                   for dx in range(2 * pad + 1)]
        assert any(torch.equal(out[i], win) for win in windows)


def test_flips_mirror_about_half_of_the_images():
    x = _batch(b=400, c=1, h=4, w=4)
    out = random_crop_flip(x, 0, True, torch.Generator().manual_seed(3))
    mirrored = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((mirrored | kept).all())
    # Binomial(400, 1/2): 5 standard errors is 50 images
    assert abs(int(mirrored.sum()) - 200) <= 50


def test_the_same_generator_state_gives_the_same_batch():
    x = _batch()
    a = random_crop_flip(x, 4, True, torch.Generator().manual_seed(9))
    b = random_crop_flip(x, 4, True, torch.Generator().manual_seed(9))
    assert torch.equal(a, b)


def test_crops_enter_the_run_key_only_when_used():
    plain = TrainConfig(dataset="cifar10", model="vgg16")
    spec = RunSpec(plain, (0.0,), (0.0,), 1)
    explicit = {k: v for k, v in spec.to_dict()["train"].items()
                if k not in ("data_dir", "deterministic", "amp", "random_crop", "hflip",
                             "adv_warmup", "lr_schedule", "robust_check")}
    d = spec.to_dict()
    d["train"] = explicit
    assert spec.key == config_hash(d)  # a run without crops keeps the key it had before
    cropped = RunSpec(TrainConfig(dataset="cifar10", model="vgg16", random_crop=4), (0.0,),
                      (0.0,), 1)
    assert cropped.key != spec.key


def test_cifar_declarations_crop_and_flip_as_the_paper():
    for scale in ("quick", "paper"):
        for name in ("fig2", "fig4", "fig6"):
            fig = figure(name, scale)
            assert all(r.train.random_crop == 4 and r.train.hflip for r in fig.runs)
    assert all(r.train.random_crop == 0 and not r.train.hflip for r in figure("fig1").runs)


def test_bad_padding_is_refused():
    with pytest.raises(ValueError, match="random_crop"):
        TrainConfig(random_crop=-1)
    with pytest.raises(ValueError, match="pad"):
        random_crop_flip(_batch(), -2, False, torch.Generator())
