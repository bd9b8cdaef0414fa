"""The training loop: configuration, CuSP schedule, augmentation, exact
resume, checkpoints that load with weights_only=True, refusal to overwrite."""
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import empirics.train.folder as tr_folder
import empirics.train.loop as tr
from core.errors import UsageError
from empirics.rotation import random_angles, rotate
from empirics.train.config import CUSP_ENDS
from empirics.train import (EpochMetrics, Stage, TrainConfig, TrainResult, augment, cusp_stages,
                            evaluate, load_model, load_split, make_generators, train)

# A run small enough for a unit test: 200 training images, 2 PGD steps.
TINY = dict(model="stdcnn", dataset="mnist5k", epochs=2, batch_size=50, train_subset=200,
            test_subset=100, train_rotation=30.0, adv_eps=0.1, adv_steps=2, seed=3)


def tiny(**changes) -> TrainConfig:
    return TrainConfig(**{**TINY, **changes})


def test_cusp_at_120_epochs_is_the_authors_schedule():
    # authors-code.md: epochs 1-74 (+-120, 2/255, lr 0.1), 75-89 (+-150, 4/255, 0.01),
    # 90-99 (+-180, 8/255, 0.001), 100-120 (+-180, 8/255, 0.0001)
    expected = (Stage(74, 120.0, 2 / 255, 0.1), Stage(15, 150.0, 4 / 255, 0.01),
                Stage(10, 180.0, 8 / 255, 0.001), Stage(21, 180.0, 8 / 255, 0.0001))
    got = cusp_stages(120)
    assert [(s.epochs, s.theta, s.eps) for s in got] == [(s.epochs, s.theta, s.eps) for s in expected]
    assert [s.lr for s in got] == pytest.approx([s.lr for s in expected], rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(epochs=st.integers(1, 400))
def test_cusp_scales_to_any_budget(epochs):
    stages = cusp_stages(epochs)
    assert sum(s.epochs for s in stages) == epochs
    # each stage boundary is within half an epoch of its proportional place
    ends = [sum(s.epochs for s in stages[:k + 1]) for k in range(len(stages))]
    for end in ends:
        assert min(abs(end - epochs * e / 120) for e in CUSP_ENDS) <= 0.5
    assert all(a.theta <= b.theta and a.eps <= b.eps and a.lr > b.lr for a, b in zip(stages, stages[1:]))
    assert stages[0].theta == 120.0 and stages[0].eps == 2 / 255


def test_stage_at_follows_milestones_and_curriculum():
    c = tiny(epochs=6, lr=0.1, lr_milestones=(2, 5), lr_gamma=0.5)
    assert [c.stage_at(e).lr for e in range(6)] == [0.1, 0.1, 0.05, 0.05, 0.05, 0.025]
    stages = (Stage(2, 10.0, 0.0, 0.01), Stage(1, 90.0, 0.2, 0.001))
    c = tiny(epochs=3, train_rotation=0.0, adv_eps=0.0, curriculum=stages)
    assert [(c.stage_at(e).theta, c.stage_at(e).eps) for e in range(3)] == [(10, 0), (10, 0), (90, 0.2)]


@pytest.mark.parametrize("field,value", [
    ("model", "alexnet"), ("dataset", "imagenet"), ("epochs", 0), ("epochs", -1),
    ("batch_size", 0), ("optimizer", "rmsprop"), ("lr", 0.0), ("lr", float("nan")),
    ("momentum", 1.0), ("weight_decay", -1e-4), ("lr_milestones", (5, 3)), ("lr_gamma", 0.0),
    ("train_rotation", 181.0), ("train_rotation", -1.0), ("adv_eps", 1.5), ("adv_eps", -0.1),
    ("adv_steps", 0), ("adv_step_size", 0.0), ("seed", -1), ("train_subset", 0),
    ("interpolation", "bicubic"), ("epochs", 2.5), ("adv_random_start", 1)])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(UsageError, match=f"`{field}`"):
        tiny(**{field: value})


def test_curriculum_must_cover_the_epochs_and_own_theta_eps():
    with pytest.raises(UsageError, match="curriculum"):
        tiny(epochs=3, train_rotation=0.0, adv_eps=0.0, curriculum=(Stage(2, 10.0, 0.0, 0.01),))
    with pytest.raises(UsageError, match="train_rotation"):
        tiny(epochs=2, adv_eps=0.0, curriculum=(Stage(2, 10.0, 0.0, 0.01),))
    with pytest.raises(UsageError, match="`theta`"):
        Stage(1, 200.0, 0.0, 0.1)


def test_config_round_trips_through_json():
    c = tiny(epochs=3, train_rotation=0.0, adv_eps=0.0, curriculum=cusp_stages(3, lr=0.01),
             model_kwargs=(("dropout", 0.25),), lr_milestones=())
    back = TrainConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert back == c
    with pytest.raises(UsageError, match="unknown"):
        TrainConfig.from_dict({**c.to_dict(), "colour": "red"})


def test_augment_rotates_each_image_then_attacks_within_the_ball():
    config = tiny()
    data = load_split(config, "test")
    x, y = data.images[:8], data.labels[:8]
    model = tr.build(config)
    gens = make_generators(config.seed)
    stage = Stage(1, 60.0, 0.1, 0.01)
    out = augment(model, x, y, stage, config, gens)
    # the same angles, from a fresh copy of the angle generator
    angles = random_angles(8, 60.0, make_generators(config.seed)["angles"])
    rotated = rotate(x, angles)
    assert float((out - rotated).abs().max()) <= 0.1 + 1e-6
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.equal(out, rotated)  # PGD moved the rotated images
    assert model.training  # the attack restores train mode
    # theta = 0 and eps = 0: the batch is used as is
    assert torch.equal(augment(model, x, y, Stage(1, 0.0, 0.0, 0.01), config, gens), x)


def _interrupt_after(monkeypatch, n_epochs):
    """Make the next train() call die after `n_epochs` epochs, as a kill would."""
    real, calls = tr._run_epoch, []

    def run_epoch(*args, **kwargs):
        if len(calls) == n_epochs:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tr, "_run_epoch", run_epoch)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, monkeypatch):
    config = tiny(deterministic=True)  # bit for bit on CUDA too
    straight = train(config, tmp_path / "straight", progress=False)
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", progress=False)
    monkeypatch.undo()
    half = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert half["finished"] is False and len(half["epochs"]) == 1
    resumed = train(config, tmp_path / "resumed", resume=True, progress=False)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for k in ("order", "angles", "attack"):
        assert torch.equal(a["generators"][k], b["generators"][k])
    drop = {"train_seconds", "eval_seconds"}
    strip = [{k: v for k, v in m.to_dict().items() if k not in drop} for m in straight.epochs]
    assert strip == [{k: v for k, v in m.to_dict().items() if k not in drop} for m in resumed.epochs]
    assert resumed.finished and straight.test_accuracy == resumed.test_accuracy


def _primitive(obj) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, (str, int)) and _primitive(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return all(_primitive(v) for v in obj)
    return obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor))


def test_run_folder_contents_and_reload(tmp_path):
    config = tiny(epochs=1, adv_eps=0.0)
    global_state = torch.get_rng_state()
    result = train(config, tmp_path / "run", progress=False)
    assert torch.equal(torch.get_rng_state(), global_state)  # no global RNG leaks out
    run = tmp_path / "run"
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert _primitive(ckpt) and ckpt["epoch"] == 1
    assert all(g.dtype == torch.uint8 for g in ckpt["generators"].values())
    assert TrainConfig.from_dict(json.loads((run / "config.json").read_text())) == config
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] is True and metrics["provenance"]["torch"] == torch.__version__
    assert EpochMetrics.from_dict(metrics["epochs"][0]) == result.epochs[0]
    assert TrainResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    model, loaded = load_model(run)
    assert loaded == config and not model.training
    # the reloaded model reproduces the test accuracy recorded at the end of training
    assert evaluate(model, load_split(config, "test")) == result.test_accuracy
    assert not any(p.name.endswith(".tmp") for p in run.iterdir())


def test_existing_runs_are_not_overwritten(tmp_path):
    config = tiny(epochs=1, adv_eps=0.0, train_subset=100)
    run = tmp_path / "run"
    first = train(config, run, progress=False)
    before = (run / "checkpoint.pt").read_bytes()
    with pytest.raises(UsageError, match="finished run.*--force"):
        train(config, run, progress=False)
    assert (run / "checkpoint.pt").read_bytes() == before
    # resuming a finished run does nothing and returns its result
    assert train(config, run, resume=True, progress=False).epochs == first.epochs
    with pytest.raises(UsageError, match="--resume: seed is 4"):
        train(tiny(epochs=1, adv_eps=0.0, train_subset=100, seed=4), run, resume=True, progress=False)
    other = tiny(epochs=1, adv_eps=0.0, train_subset=100, seed=4)
    assert train(other, run, force=True, progress=False).config.seed == 4
    assert TrainConfig.from_dict(json.loads((run / "config.json").read_text())).seed == 4


def test_corrupt_checkpoint_is_a_usage_error_naming_the_file(tmp_path):
    config = tiny(epochs=1, adv_eps=0.0, train_subset=100)
    run = tmp_path / "run"
    train(config, run, progress=False)
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match="corrupt checkpoint .*checkpoint.pt"):
        load_model(run)
    with pytest.raises(UsageError, match="corrupt checkpoint .*checkpoint.pt"):
        train(config, run, resume=True, progress=False)
    with pytest.raises(UsageError, match="does not exist"):
        load_model(tmp_path / "nowhere")


def test_seeds_decide_the_run(tmp_path):
    a = train(tiny(epochs=1, adv_eps=0.0, train_subset=100), tmp_path / "a", progress=False)
    b = train(tiny(epochs=1, adv_eps=0.0, train_subset=100), tmp_path / "b", progress=False)
    c = train(tiny(epochs=1, adv_eps=0.0, train_subset=100, seed=4), tmp_path / "c", progress=False)
    assert a.epochs[0].train_loss == b.epochs[0].train_loss
    assert a.epochs[0].train_loss != c.epochs[0].train_loss


def test_training_learns_mnist5k(tmp_path):
    # 1000 clean training images, 3 epochs of Adam: far above the 10 % of chance.
    # The binomial stderr of accuracy on 300 test images is <= 0.03, so 0.6 leaves
    # a wide margin below the ~0.85 such a run reaches.
    config = TrainConfig(epochs=3, train_subset=1000, test_subset=300, seed=0)
    result = train(config, tmp_path / "run", progress=False)
    assert result.test_accuracy > 0.6
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss
    assert math.isfinite(result.epochs[-1].images_per_second)


def test_numbers_are_stored_as_floats_so_equal_configs_serialise_alike():
    a, b = tiny(train_rotation=30, lr=1), tiny(train_rotation=30.0, lr=1.0)
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    assert Stage(1, 90, 0, 1).to_dict() == {"epochs": 1, "theta": 90.0, "eps": 0.0, "lr": 1.0}


# ---------------------------------------------------------------- short adversarial training
def test_step_factors_cosine_and_warmup_by_hand():
    # cosine: 0.5 (1 + cos(pi t / T)) over T = epochs x steps; values worked out by hand
    c = tiny(epochs=2, lr_schedule="cosine")
    assert c.step_factors(0, 0, 10) == (1.0, 1.0)
    assert c.step_factors(1, 0, 10)[0] == pytest.approx(0.5)  # t = T/2
    assert c.step_factors(1, 5, 10)[0] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75)))
    # warm-up over 0.5 epochs of 10 steps: eps factor (t + 1) / 5, then 1
    w = tiny(epochs=2, adv_warmup=0.5)
    assert [w.step_factors(0, k, 10)[1] for k in range(7)] == pytest.approx(
        [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0])
    assert w.step_factors(1, 3, 10) == (1.0, 1.0)  # lr untouched without cosine


@pytest.mark.parametrize("field,value", [("adv_warmup", -1.0), ("adv_warmup", 3.0),
                                         ("lr_schedule", "linear"), ("robust_check", -5),
                                         ("robust_check", 10**9)])
def test_bad_training_aids_name_the_field(field, value):
    with pytest.raises(UsageError, match=field):
        tiny(**{field: value})
    with pytest.raises(UsageError, match="lr_schedule"):
        tiny(lr_schedule="cosine", lr_milestones=(1,))


def test_warmup_ramps_the_attack_eps(tmp_path, monkeypatch):
    # the eps PGD receives during training grows linearly over the warm-up steps
    seen = []
    real = tr.pgd

    def spy(model, x, y, eps, **kw):
        seen.append(eps)
        return real(model, x, y, eps, **kw)

    monkeypatch.setattr(tr, "pgd", spy)
    train(tiny(epochs=1, adv_warmup=1.0, train_rotation=0.0), tmp_path / "w", progress=False)
    steps = 200 // 50
    assert seen == pytest.approx([0.1 * (k + 1) / steps for k in range(steps)])


def test_robust_check_is_recorded_and_a_collapse_is_flagged(tmp_path):
    result = train(tiny(robust_check=40), tmp_path / "r", progress=False)
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    robust = [m["robust_accuracy"] for m in metrics["epochs"]]
    assert len(robust) == 2 and all(0.0 <= r <= 1.0 for r in robust)
    assert [m.robust_accuracy for m in result.epochs] == robust
    # the check's accuracy equals an independent PGD-10 on the same held-out images
    model, config = load_model(tmp_path / "r")
    check = tr.robust_check_data(config, load_split(config, "test"))
    x_adv = tr.pgd(model, check.images, check.labels, 0.1, steps=10)
    assert robust[-1] == int((model(x_adv).argmax(1) == check.labels).sum()) / len(check)
    # a collapse: robust accuracy below half of the best earlier epoch's
    ms = [EpochMetrics(k + 1, 0.0, 0.1, 1e-3, 1.0, 0.5, 0.5, 1.0, 0.1, 10, r)
          for k, r in enumerate((0.30, 0.40, 0.19))]
    assert tr_folder.robust_collapse(ms) == {"epoch": 3, "robust_accuracy": 0.19,
                                             "best_before": 0.40, "eps": 0.1}
    assert tr_folder.robust_collapse(ms[:2]) is None
    assert metrics["robust_collapse"] == tr_folder.robust_collapse(result.epochs)


def test_diverging_training_stops_with_one_line(tmp_path):
    with pytest.raises(UsageError, match="diverged"):
        train(tiny(lr=1e12, adv_eps=0.0, optimizer="sgd"), tmp_path / "d", progress=False)
