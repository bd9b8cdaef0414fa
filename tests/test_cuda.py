"""CPU against CUDA: rotation, attacks, profiles, training. Every test here
needs a CUDA device (marked `cuda`, skipped without one; see conftest.py)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import empirics.train.loop as tr
from empirics.attacks import pgd, pgd_profile, predict
from empirics.attacks import _Grid, _Pool, _step_static, LOSSES
from empirics.profiles import robustness_profile
from empirics.rotation import random_angles, rotate
from empirics.train import TrainConfig, evaluate, load_model, load_split, train

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 4, 6, 6)
        nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(),                # (B, 8*4*4)
        nn.Linear(128, 10))


def images(n: int, seed: int, size: int = 12) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def tiny(**changes) -> TrainConfig:
    base = dict(model="stdcnn", dataset="mnist5k", epochs=2, batch_size=50, train_subset=200,
                test_subset=100, train_rotation=30.0, adv_eps=0.1, adv_steps=2, seed=3)
    return TrainConfig(**{**base, **changes})


@pytest.fixture
def no_sync():
    """Any operation inside that waits for the GPU raises RuntimeError (so a
    test that returns passed without one). Yields `bites()`, which asserts
    that a read-back does raise there: the mode was on for the whole test."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")

    def bites():
        with pytest.raises(RuntimeError, match="synchroniz"):
            float(torch.ones(1, device=CUDA).sum())  # a read-back waits for the GPU

    try:
        yield bites
    finally:
        torch.cuda.set_sync_debug_mode("default")


# ---------------------------------------------------------------- rotation
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_rotate_on_cuda_matches_cpu(mode):
    x = images(64, 0, 28)
    angles = random_angles(64, 180.0, torch.Generator().manual_seed(1))
    angles[::5] = torch.tensor([0.0, 90.0, -90.0, 180.0, 270.0]).repeat(3)[:len(angles[::5])]
    cpu = rotate(x, angles, mode)
    host_angles = rotate(x.to(CUDA), angles, mode).cpu()
    device_angles = rotate(x.to(CUDA), angles.to(CUDA), mode).cpu()
    if mode == "nearest":  # the same matrices; nearest sampling is exact
        assert torch.equal(host_angles, cpu)
    assert torch.allclose(host_angles, cpu, atol=1e-5)
    assert torch.allclose(device_angles, cpu, atol=1e-5)
    quarter = torch.remainder(angles, 90) == 0
    assert torch.equal(device_angles[quarter], cpu[quarter])  # exact quarter turns


def test_rotate_with_host_angles_does_not_wait_for_the_gpu(no_sync):
    x = torch.rand(32, 1, 28, 28, device=CUDA)
    nearest = rotate(x, random_angles(32, 90.0), "nearest")
    bilinear = rotate(x, 30.0, "bilinear")
    assert nearest.shape == bilinear.shape == x.shape and nearest.device == x.device
    no_sync()  # a read-back would have raised above


# ---------------------------------------------------------------- attacks
def test_pgd_on_cuda_agrees_with_cpu():
    model, x = small_cnn(), images(200, 1)
    y = predict(model, x)
    cpu = pgd(model, x, y, 0.1, steps=10)
    model.to(CUDA)
    gpu = pgd(model, x, y, 0.1, steps=10)  # CPU data, CUDA model
    assert gpu.device == x.device  # returned where the input lives
    model.cpu()
    flips = (predict(model, cpu) != predict(model, gpu)).float().mean()
    assert flips <= 0.03  # float rounding differs, outcomes agree


def test_pgd_steps_do_not_wait_for_the_gpu(no_sync):
    model = small_cnn().to(CUDA)
    x = torch.rand(64, 1, 12, 12, device=CUDA)
    y = torch.randint(0, 10, (64,), device=CUDA)
    runs = [pgd(model, x, y, 0.1, steps=5, random_start=True,
                generator=torch.Generator().manual_seed(0), validate=False),
            pgd(model, x, y, 0.1, steps=5, early_stop=True, validate=False)]
    assert all(a.shape == x.shape and a.device == x.device for a in runs)
    no_sync()  # a read-back would have raised above
    for adv in runs:  # and the iterates stay in the ball
        assert float((adv - x).abs().max()) <= 0.1 + 1e-6


def test_pgd_profile_on_cuda_agrees_with_cpu():
    model, x = small_cnn(), images(300, 2)
    y = predict(model, x)
    y[::4] = (y[::4] + 1) % 10
    eps = [0.02 * k for k in range(1, 11)]
    cpu = pgd_profile(model, x, y, eps, steps=10, batch_size=100)
    model.to(CUDA)
    static = pgd_profile(model, x, y, eps, steps=10, batch_size=100)  # CPU data, CUDA model
    compact = pgd_profile(model, x.to(CUDA), y.to(CUDA), eps, steps=10, batch_size=100,
                          compact=True)
    for r in (static, compact):
        assert all(abs(a - b) <= 3 for a, b in zip(r.correct, cpu.correct))  # of 300
        assert abs(r.pair_steps - cpu.pair_steps) <= 0.02 * cpu.pair_steps


def test_pgd_profile_steps_do_not_wait_for_the_gpu(no_sync):
    model = small_cnn().to(CUDA).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(50, 1, 12, 12, device=CUDA)
    eps = torch.linspace(0.05, 0.5, 10, device=CUDA)
    grid = _Grid(x, torch.zeros(50, dtype=torch.long, device=CUDA), eps, 2.5 * eps / 10, 10,
                 False, LOSSES["ce"])
    torch.cuda.set_sync_debug_mode("default")
    pool = _Pool(grid, 32)  # set-up may read back
    torch.cuda.set_sync_debug_mode("error")
    for _ in range(5):
        pool.refill(None)
        _step_static(model, pool)
    no_sync()  # a read-back would have raised above
    torch.cuda.set_sync_debug_mode("default")
    assert int(pool.pair_steps) > 0 and int(pool.entered) >= 32  # the pool did work


def test_robustness_profile_accepts_cpu_data_for_a_cuda_model():
    model, x = small_cnn().to(CUDA), images(100, 3)
    y = predict(model, x).cpu()
    prof = robustness_profile(model, x, y, [0.0, 0.1], steps=5, test_rotation=30.0)
    assert prof.n == 100 and next(model.parameters()).device.type == "cuda"


# ---------------------------------------------------------------- training
def test_cuda_model_evaluates_cpu_data(tmp_path):
    config = tiny(epochs=1, adv_eps=0.0)
    result = train(config, tmp_path / "run", progress=False, device="cuda")
    model, _ = load_model(tmp_path / "run")  # on CUDA by default
    assert evaluate(model, load_split(config, "test")) == result.test_accuracy


def test_deterministic_resume_on_cuda_is_bit_identical(tmp_path, monkeypatch):
    config = tiny(deterministic=True)
    train(config, tmp_path / "straight", progress=False, device="cuda")
    real = tr._run_epoch

    def interrupted(epoch, *args, **kwargs):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(epoch, *args, **kwargs)

    monkeypatch.setattr(tr, "_run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", progress=False, device="cuda")
    monkeypatch.undo()
    train(config, tmp_path / "resumed", resume=True, progress=False, device="cuda")
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert not torch.are_deterministic_algorithms_enabled()  # restored after training


def test_amp_trains_in_bf16_on_cuda(tmp_path):
    result = train(tiny(epochs=1, amp=True), tmp_path / "run", progress=False, device="cuda")
    assert torch.isfinite(torch.tensor(result.epochs[0].train_loss))


def test_augment_does_not_wait_for_the_gpu(no_sync):
    config = tiny()
    torch.cuda.set_sync_debug_mode("default")
    model = tr.build(config).to(CUDA)
    gens = tr.make_generators(0)
    x = torch.rand(50, 1, 28, 28, device=CUDA)
    y = torch.randint(0, 10, (50,), device=CUDA)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    out = tr.augment(model, x, y, config.stage_at(0), config, gens)
    no_sync()  # a read-back would have raised above
    torch.cuda.set_sync_debug_mode("default")
    assert out.shape == x.shape and out.device == x.device


def test_compiled_pgd_profile_on_cuda_agrees_with_eager():
    model, x = small_cnn().to(CUDA), images(100, 4).to(CUDA)
    y = predict(model, x)
    eps = [0.05, 0.1, 0.2]
    eager = pgd_profile(model, x, y, eps, steps=5, batch_size=64)
    compiled = pgd_profile(model, x, y, eps, steps=5, batch_size=64, compile=True)
    assert all(abs(a - b) <= 2 for a, b in zip(compiled.correct, eager.correct))
