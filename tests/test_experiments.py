"""Run-spec hashing (stable, sensitive to every field, blind to data_dir)
and the figure declarations."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from pipeline.experiments import FIGURE_NAMES, SCALES, figure, with_train
from pipeline.runspec import RunSpec, canonical, config_hash
from empirics.train import TrainConfig


def spec(**train) -> RunSpec:
    return RunSpec(TrainConfig(**train), thetas=(0, 90, 180), epsilons=(0, 0.1), pgd_steps=5,
                   n_test=100)


def test_key_is_sha256_of_sorted_compact_json():
    # independent: hashlib over a hand-written canonical JSON string
    text = '{"a":[1,0.5],"b":{"c":null,"d":true}}'
    assert config_hash({"b": {"d": True, "c": None}, "a": (1.0, 0.5)}) == \
        hashlib.sha256(text.encode()).hexdigest()[:16]


def test_key_is_stable_across_equal_specs_and_number_spellings():
    a = spec(train_rotation=30, epochs=2)
    b = spec(train_rotation=30.0, epochs=2)
    assert a.key == b.key and len(a.key) == 16
    assert a.key == RunSpec.from_dict(json.loads(json.dumps(a.to_dict()))).key


def test_key_ignores_where_the_data_live():
    assert spec(data_dir="/a").key == spec(data_dir="/b").key == spec().key


@pytest.mark.parametrize("change", [
    dict(train_rotation=15.0), dict(adv_eps=0.1), dict(epochs=3), dict(seed=1), dict(lr=2e-3),
    dict(model="p4cnn"), dict(batch_size=32), dict(train_subset=100), dict(adv_steps=2),
])
def test_key_changes_with_any_training_field(change):
    assert spec(**change).key != spec().key


@pytest.mark.parametrize("field,value", [
    ("thetas", (0.0, 90.0)), ("epsilons", (0.0, 0.2)), ("pgd_steps", 6),
    ("test_rotations", (0.0, 90.0)), ("n_test", 101), ("profile_seed", 1),
])
def test_key_changes_with_any_profile_field(field, value):
    assert dataclasses.replace(spec(), **{field: value}).key != spec().key


@pytest.mark.parametrize("bad", [dict(thetas=()), dict(thetas=(90, 0)), dict(epsilons=(0, 2)),
                                 dict(pgd_steps=0), dict(n_test=True)])
def test_bad_spec_fields_rejected(bad):
    with pytest.raises(ValueError):
        dataclasses.replace(spec(), **bad)


def test_canonical_rejects_nan():
    with pytest.raises(ValueError):
        canonical({"x": float("nan")})


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_every_figure_declares_distinct_runs_and_its_deviations(name, scale):
    fig = figure(name, scale)
    assert len(set(fig.keys)) == len(fig.runs)
    assert (fig.theory is not None) == (name == "theorem1")
    if scale == "quick" and name in ("fig1", "fig3", "fig5", "curriculum", "theorem1"):
        assert fig.deviations  # every quick departure from the paper is recorded
    if scale == "quick" and fig.runs:
        assert fig.dataset in ("mnist5k", "cifar10")


def test_mnist_figures_follow_the_paper():
    rotations = (0, 30, 60, 90, 120, 150, 180)  # paper Figs. 1 and 3
    for name, model in (("fig1", "stdcnn"), ("fig3", "p4cnn")):
        fig = figure(name, "quick")
        assert [r.train.train_rotation for r in fig.runs] == [a for a in rotations
                                                              for _ in fig.seeds]
        assert {r.train.model for r in fig.runs} == {model}
        assert [fig.label(r) for r in fig.runs][-1] == "180/0"  # the A/B legend convention
        assert list(fig.groups()) == [f"{a}/0" for a in rotations]
    fig5 = figure("fig5", "paper")
    assert [r.train.adv_eps for r in fig5.runs][::3] == [0, 0.1, 0.2, 0.3, 0.4]
    assert fig5.dataset == "mnist" and {r.train.model for r in fig5.runs} == {"lenet"}


def test_curriculum_compares_cusp_with_its_final_stage_alone():
    fig = figure("curriculum", "quick")
    cusp, fixed = fig.runs[0], fig.runs[1]
    final = cusp.train.curriculum[-1]
    assert (fixed.train.train_rotation, fixed.train.adv_eps) == (final.theta, final.eps)
    assert fixed.train.epochs == cusp.train.epochs and fixed.train.curriculum is None
    assert fig.label(cusp) == "CuSP"


def test_unknown_figure_or_scale_is_a_usage_error():
    from core.errors import UsageError
    with pytest.raises(UsageError, match="unknown figure"):
        figure("fig7")
    with pytest.raises(UsageError, match="scale"):
        figure("fig1", "huge")


def test_with_train_changes_the_key():
    run = figure("fig1", "quick").runs[0]
    assert with_train(run, epochs=1).key != run.key


# ------------------------------------------------------------ training seeds
def _explicit_fig1_quick_run(rotation: float) -> RunSpec:
    """The fig1 quick run at `rotation`, seed 0, written out field by field
    (the declaration as it stood before seeds were added)."""
    from pipeline.experiments import grid
    from empirics.train import TrainConfig
    config = TrainConfig(model="stdcnn", train_rotation=rotation, dataset="mnist5k", epochs=15,
                         batch_size=64, optimizer="adam", lr=1e-3, seed=0)
    return RunSpec(config, grid(0, 180, 15), grid(0, 1, 0.05), 10, (0.0,), 500, 0)


def test_seed_zero_runs_keep_their_keys():
    fig = figure("fig1", "quick")
    seed0 = [r for r in fig.runs if r.train.seed == 0]
    assert [r.key for r in seed0] == [_explicit_fig1_quick_run(a).key
                                      for a in (0, 30, 60, 90, 120, 150, 180)]
    # the run store folder of the 0-degree StdCNN, computed before seeds existed
    assert seed0[0].key == "8c845747f9ed82e9"


@pytest.mark.parametrize("scale, name, seeds", [
    ("quick", "fig1", (0, 1, 2)), ("quick", "fig3", (0,)), ("quick", "fig5", (0,)),
    ("quick", "curriculum", (0,)), ("paper", "fig1", (0, 1, 2)), ("paper", "fig3", (0, 1, 2)),
    ("paper", "fig5", (0, 1, 2)), ("paper", "fig2", (0,)), ("paper", "fig6", (0,))])
def test_each_series_value_is_trained_once_per_seed(scale, name, seeds):
    fig = figure(name, scale)
    assert fig.seeds == seeds
    values = list(fig.groups())
    assert len(fig.runs) == len(values) * len(seeds)
    for runs in fig.groups().values():
        assert [r.train.seed for r in runs] == list(seeds)
        # the seeds of a value differ in the training seed only
        assert len({dataclasses.replace(r.train, seed=0) for r in runs}) == 1
        assert len({(r.thetas, r.epsilons, r.n_test, r.profile_seed) for r in runs}) == 1
    if len(seeds) > 1:
        assert any("training seeds" in d for d in fig.deviations)


def test_seeds_must_be_distinct_non_negative_integers():
    fig = figure("fig1", "quick")
    for bad in ((), (0, 0), (-1,), (0.5,)):
        with pytest.raises(ValueError, match="seeds"):
            dataclasses.replace(fig, seeds=bad)


def test_execution_fields_keep_stored_keys():
    # A config at the defaults of fields added after runs were stored hashes
    # exactly as the same spec without those fields did.
    d = spec().to_dict()
    d["train"] = {k: v for k, v in d["train"].items()
                  if k not in ("data_dir", "deterministic", "amp")}
    assert spec().key == config_hash(d)
    assert spec(deterministic=True).key == spec().key  # same computation, same run
    assert spec(amp=True).key != spec().key  # bf16 changes the weights: a new run
