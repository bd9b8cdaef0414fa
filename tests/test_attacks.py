"""Tests for empirics.attacks: the L-inf threat model, PGD, FGSM, pgd_profile."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from empirics.attacks import LinfBall, attack_mode, fgsm, model_device, pgd, pgd_profile, predict


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 4, 6, 6)
        nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(),                # (B, 8*4*4)
        nn.Linear(128, 10))


def images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 12, 12, generator=g)  # (n, 1, 12, 12) in [0, 1]


def mostly_correct_labels(model, x, seed: int) -> torch.Tensor:
    """The model's predictions with every fifth label changed: a test set on
    which the model is 80 % accurate, so both metrics have something to count."""
    y = predict(model, x).clone()
    y[::5] = (y[::5] + 1 + seed % 9) % 10
    return y


# ---------------------------------------------------------------- threat model
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), eps=st.floats(0.0, 1.0))
def test_projection_is_idempotent_and_lands_in_ball(seed, eps):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(6, 1, 5, 5, generator=g)
    ball = LinfBall(x0, torch.full((6, 1, 1, 1), eps))
    p = ball.project(x0 + 3 * torch.randn(6, 1, 5, 5, generator=g))
    assert torch.equal(ball.project(p), p)
    assert (p - x0).abs().max() <= eps + 1e-6  # float32 rounding of x0 + delta
    assert p.min() >= 0 and p.max() <= 1


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(1, 5), random_start=st.booleans())
def test_pgd_iterates_stay_in_ball_and_unit_box(seed, steps, random_start):
    g = torch.Generator().manual_seed(seed)
    model, x = small_cnn(seed % 3), images(8, seed)
    y = torch.randint(0, 10, (8,), generator=g)
    eps = torch.rand(8, generator=g) * 0.5  # one eps per sample
    x_adv = pgd(model, x, y, eps, steps=steps, random_start=random_start, generator=g)
    dist = (x_adv - x).flatten(1).abs().amax(1)  # (8,)
    assert torch.all(dist <= eps + 1e-6)
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_eps_zero_changes_nothing():
    model, x = small_cnn(), images(8, 1)
    y = torch.arange(8)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(pgd(model, x, y, 0.0, steps=5), x)
    assert torch.equal(pgd(model, x, y, 0.0, steps=5, random_start=True, generator=g), x)
    assert torch.equal(fgsm(model, x, y, 0.0), x)


# ---------------------------------------------------------------- oracles
@pytest.mark.parametrize("loss", ["ce", "margin"])
@pytest.mark.parametrize("steps", [1, 7, 40])
def test_linear_model_reaches_closed_form_optimum(loss, steps):
    # Two-class linear model: the logit gap z1 - z0 = w.x + b with w = W1 - W0.
    # Both losses fall with the true class's margin, so the L-inf optimum is the
    # corner x - eps * (2y - 1) * sign(w) (Goodfellow et al. 2015). Inputs sit in
    # [0.3, 0.7] and eps <= 0.25, so the [0, 1] clamp never binds. Total travel
    # 2.5 * eps >= eps reaches the corner whatever `steps` is.
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(20, 2))
    with torch.no_grad():
        model[1].weight.mul_(0.2)  # keep logits moderate: softmax never saturates
    x = 0.3 + 0.4 * torch.rand(16, 1, 4, 5)
    y = torch.randint(0, 2, (16,))
    eps = torch.linspace(0.01, 0.25, 16)
    w = (model[1].weight[1] - model[1].weight[0]).detach().view(1, 4, 5)
    assert torch.all(w != 0)
    sign = (2 * y - 1).view(-1, 1, 1, 1)
    expected = x - eps.view(-1, 1, 1, 1) * sign * w.sign()  # (16, 1, 4, 5)
    got = pgd(model, x, y, eps, steps=steps, loss=loss)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)  # float32 rounding
    torch.testing.assert_close(fgsm(model, x, y, eps, loss=loss), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("steps", [1, 3, 10])
def test_iterates_equal_torchattacks_pgd(steps):
    torchattacks = pytest.importorskip("torchattacks")
    model, x = small_cnn(1), images(8, 2)  # batch of 8: torchattacks' mean loss
    y = torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(4))
    # scales the gradient by exactly 2**-3, so gradient signs agree bit for bit.
    for eps in (0.03, 0.1, 0.3):
        ref = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps,
                               random_start=False)(x, y)
        ours = pgd(model, x, y, eps, steps=steps)  # default step size 2.5 * eps / steps
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-7)
        ours = pgd(model, x, y, eps, steps=steps, step_size=0.5 * eps)
        ref = torchattacks.PGD(model, eps=eps, alpha=0.5 * eps, steps=steps,
                               random_start=False)(x, y)
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-7)


def test_batch_equals_one_by_one():
    model, x = small_cnn(2), images(6, 5)
    y = torch.arange(6)
    eps = torch.tensor([0.0, 0.02, 0.05, 0.1, 0.2, 0.4])
    batch = pgd(model, x, y, eps, steps=10)
    single = torch.cat([pgd(model, x[i:i + 1], y[i:i + 1], eps[i:i + 1], steps=10)
                        for i in range(6)])
    torch.testing.assert_close(batch, single, rtol=0, atol=1e-7)


def test_labels_pred_attacks_clean_predictions():
    model, x = small_cnn(), images(8, 6)
    pred = predict(model, x)
    torch.testing.assert_close(pgd(model, x, None, 0.1, steps=3, labels="pred"),
                               pgd(model, x, pred, 0.1, steps=3), rtol=0, atol=0)


# ---------------------------------------------------------------- eps grid
GRID = (0.0, 0.005, 0.01, 0.02, 0.04, 0.08)


def test_profile_matches_standalone_pgd_with_monotone_accounting():
    model, x = small_cnn(3), images(40, 7)
    y = mostly_correct_labels(model, x, 1)
    prof = pgd_profile(model, x, y, GRID, steps=8, batch_size=37)
    pred = predict(model, x)
    fooled_any = torch.stack([  # (E, N): some iterate of the pgd run fools the sample
        predict(model, pgd(model, x, None, e, steps=8, labels="pred", early_stop=True)) != pred
        for e in GRID])
    monotone = fooled_any.long().cummax(0).values.bool()  # fooled at a smaller eps counts
    assert prof.fooled == tuple(monotone.sum(1).tolist())
    first = torch.where(monotone.any(0), monotone.long().argmax(0), len(GRID))
    assert prof.fooled_at == tuple(first.tolist())
    # Accuracy: never above standalone PGD's (final iterate, true labels).
    for j, e in enumerate(GRID):
        standalone = int((predict(model, pgd(model, x, y, e, steps=8)) == y).sum())
        assert prof.correct[j] <= standalone
    assert prof.correct[0] == int((pred == y).sum())  # eps 0: clean accuracy
    assert prof.correct[-1] < prof.correct[0] and prof.fooled[1] > 0  # the grid spans something


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), random_start=st.booleans())
def test_profile_accuracy_never_rises_and_seeds_reproduce(seed, random_start):
    model, x = small_cnn(seed % 3), images(20, seed)
    y = mostly_correct_labels(model, x, seed)
    run = lambda bs: pgd_profile(model, x, y, GRID, steps=4, random_start=random_start,  # noqa: E731
                                 generator=torch.Generator().manual_seed(seed), batch_size=bs)
    prof = run(16)
    assert all(a >= b for a, b in zip(prof.correct, prof.correct[1:]))
    assert all(a <= b for a, b in zip(prof.fooled, prof.fooled[1:]))
    assert prof.fooled[0] == 0  # eps 0: nothing moves
    assert run(16) == prof
    if not random_start:  # the pool's size changes neither outcomes nor work
        assert run(3) == prof and run(1000) == prof


def test_profile_skips_work_it_does_not_need():
    model, x = small_cnn(), images(30, 8)
    y = mostly_correct_labels(model, x, 0)
    prof = pgd_profile(model, x, y, GRID, steps=10)
    full = 30 * (len(GRID) - 1) * 10  # every eps > 0 pair, every step
    assert prof.pair_steps < full


# ---------------------------------------------------------------- model state
class ModeRecorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = small_cnn()
        self.dropout = nn.Dropout(0.5)
        self.seen = set()

    def forward(self, x):
        self.seen.add(self.training)
        return self.dropout(self.net(x))


def test_eval_mode_and_requires_grad_restored():
    model = ModeRecorder().train()
    model.net[0].requires_grad_(False)  # a frozen layer stays frozen
    model.net[6].eval()                  # a submodule's own mode is kept
    flags = [p.requires_grad for p in model.parameters()]
    x, y = images(4, 9), torch.arange(4)
    pgd(model, x, y, 0.1, steps=2)
    pgd_profile(model, x, y, [0.0, 0.1], steps=2)
    fgsm(model, x, y, 0.1)
    assert model.seen == {False}
    assert model.training and model.net.training and not model.net[6].training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_attack_mode_restores_on_error():
    model = ModeRecorder().train()
    with pytest.raises(RuntimeError), attack_mode(model):
        raise RuntimeError
    assert model.training and all(p.requires_grad for p in model.parameters())


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, name", [
    ({"eps": -0.1}, "eps"), ({"eps": 1.5}, "eps"), ({"eps": torch.ones(3)}, "eps"),
    ({"steps": 0}, "steps"), ({"steps": 2.0}, "steps"), ({"loss": "l2"}, "loss"),
    ({"labels": "soft"}, "labels"), ({"step_size": -1.0}, "step_size"),
])
def test_pgd_rejects_bad_arguments(kwargs, name):
    model, x = small_cnn(), images(4, 0)
    args = {"eps": 0.1, "steps": 2, **kwargs}
    with pytest.raises(ValueError, match=f"`{name}`"):
        pgd(model, x, torch.arange(4), **args)


def test_pgd_rejects_inputs_outside_pixel_space():
    with pytest.raises(ValueError, match="`x`"):
        pgd(small_cnn(), images(4, 0) * 2, torch.arange(4), 0.1)


@pytest.mark.parametrize("grid, name", [
    ([], "epsilons"), ([0.1, 0.05], "epsilons"), ([0.1, 1.2], "epsilons")])
def test_profile_rejects_bad_grid(grid, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        pgd_profile(small_cnn(), images(4, 0), torch.arange(4), grid)


# ---------------------------------------------------------------- pool modes, devices
@pytest.mark.parametrize("random_start", [False, True])
def test_compact_and_static_pools_give_the_same_outcomes(random_start):
    # The static pool (all rows every step, the GPU mode) and the compact one
    # (active rows only, the CPU mode) run the same pairs with the same iterates;
    # a lookahead runs more pairs, with the same outcomes.
    model, x = small_cnn(4), images(60, 4)
    y = mostly_correct_labels(model, x, 4)
    eps = [0.0, 0.02, 0.05, 0.1, 0.2, 0.4]

    def profile(**kw):
        return pgd_profile(model, x, y, eps, steps=6, random_start=random_start,
                           generator=torch.Generator().manual_seed(7), **kw)

    first = profile(batch_size=16)  # compact on the CPU, one pair per sample
    assert 0 < sum(first.correct) < len(x) * len(eps)  # something to count
    for r in [profile(batch_size=16, compact=False, lookahead=1),
              profile(batch_size=16, compact=False, lookahead=1, sync_every=5)]:
        assert (r.broken_at, r.fooled_at, r.pair_steps) == \
            (first.broken_at, first.fooled_at, first.pair_steps)
    for r in [profile(batch_size=16, compact=False), profile(batch_size=1000, compact=False,
                                                             sync_every=3),
              profile(batch_size=16, lookahead=3)]:
        assert (r.broken_at, r.fooled_at) == (first.broken_at, first.fooled_at)
        assert r.pair_steps >= first.pair_steps
        assert (r.pair_steps == first.pair_steps) == random_start  # random starts: no lookahead


def test_pgd_profile_rejects_bad_sync_every():
    model, x = small_cnn(), images(4, 0)
    with pytest.raises(ValueError, match="sync_every"):
        pgd_profile(model, x, torch.zeros(4, dtype=torch.long), [0.1], sync_every=0)


def test_model_device_falls_back_for_a_model_without_tensors():
    assert model_device(nn.ReLU()) == torch.device("cpu")
    assert model_device(nn.ReLU(), torch.device("meta")) == torch.device("meta")
    assert model_device(small_cnn()) == torch.device("cpu")


def test_validate_false_skips_only_the_read_back_checks():
    model = small_cnn()
    x = images(4, 0) * 2  # outside [0, 1]
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="pixel space"):
        pgd(model, x, y, 0.1, steps=1)
    pgd(model, x, y, 0.1, steps=1, validate=False)
    with pytest.raises(ValueError, match="pixel space"):  # a float eps is checked on the host
        pgd(model, images(4, 0), y, 1.5, steps=1, validate=False)


def test_eps_as_list_or_tensor_gives_the_same_attack():
    model, x = small_cnn(), images(3, 5)
    y = predict(model, x)
    a = pgd(model, x, y, [0.1, 0.2, 0.3], steps=3)
    b = pgd(model, x, y, torch.tensor([0.1, 0.2, 0.3]), steps=3)
    assert torch.equal(a, b)


def test_compile_falls_back_to_eager_on_cpu(monkeypatch):
    def no_compile(*args, **kwargs):
        raise AssertionError("torch.compile must not run on the CPU")

    monkeypatch.setattr(torch, "compile", no_compile)
    model, x = small_cnn(2), images(20, 2)
    y = mostly_correct_labels(model, x, 2)
    eager = pgd_profile(model, x, y, [0.05, 0.2], steps=4, batch_size=8)
    for compact in (None, False):
        fallback = pgd_profile(model, x, y, [0.05, 0.2], steps=4, batch_size=8, compile=True,
                               compact=compact)
        assert (fallback.broken_at, fallback.fooled_at) == (eager.broken_at, eager.fooled_at)


@pytest.mark.parametrize("step_size", [None, 0.013])
def test_one_float_eps_equals_the_same_eps_per_sample(step_size):
    # a float eps runs as scalar operations: bit for bit the per-sample result
    model, x = small_cnn(1), images(6, 8)
    y = predict(model, x)
    gen = dict(random_start=True)
    a = pgd(model, x, y, 0.1, steps=4, step_size=step_size,
            generator=torch.Generator().manual_seed(2), **gen)
    per = None if step_size is None else torch.full((6,), step_size)
    b = pgd(model, x, y, torch.full((6,), 0.1), steps=4, step_size=per,
            generator=torch.Generator().manual_seed(2), **gen)
    assert torch.equal(a, b)
