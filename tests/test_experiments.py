"""Run-spec hashing (stable, sensitive to every field, blind to data_dir)
and the figure declarations."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from core.errors import UsageError
from pipeline.experiments import (FIGURE_NAMES, MNIST_SHAPED, SCALES, declared, eps_grid, figure,
                                  scale_label, with_train)
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
    if not declared(name, scale):
        with pytest.raises(UsageError, match="not declared"):
            figure(name, scale)
        return
    fig = figure(name, scale)
    assert len(set(fig.keys)) == len(fig.runs)
    assert (fig.theory is not None) == (name == "theorem1")
    if scale == "quick" and name in ("fig1", "fig3", "fig5", "curriculum", "theorem1"):
        assert fig.deviations  # every quick departure from the paper is recorded
    if scale == "quick" and fig.runs:
        assert fig.dataset in ("mnist5k", "cifar10")


def test_mnist_figures_follow_the_paper():
    rotations = (0, 30, 60, 90, 120, 150, 180)  # paper Figs. 1 and 3
    for name, model, scale in (("fig1", "stdcnn", "quick"), ("fig3", "p4cnn", "paper")):
        fig = figure(name, scale)
        assert [r.train.train_rotation for r in fig.runs] == [a for a in rotations
                                                              for _ in fig.seeds]
        assert {r.train.model for r in fig.runs} == {model}
        assert [fig.label(r) for r in fig.runs][-1] == "180/0"  # the A/B legend convention
        assert list(fig.groups()) == [f"{a}/0" for a in rotations]
    quick_p4 = figure("fig3", "quick")  # 4 of the 7 rotations at quick scale, recorded
    assert sorted({r.train.train_rotation for r in quick_p4.runs}) == [0, 60, 120, 180]
    assert any("rotations A = 0, 60, 120, 180 only" in d for d in quick_p4.deviations)
    fig5 = figure("fig5", "paper")
    assert [r.train.adv_eps for r in fig5.runs][::3] == [0, 0.1, 0.2, 0.3, 0.4]
    assert fig5.dataset == "mnist" and {r.train.model for r in fig5.runs} == {"lenet"}


def test_curriculum_compares_cusp_with_its_final_stage_alone():
    fig = figure("curriculum", "quick")
    groups = list(fig.groups().values())  # one run per training seed in each group
    assert all(len(g) == len(fig.seeds) == 1 for g in groups)  # quick: one seed
    cusp, fixed = groups[0][0], groups[1][0]
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
def _explicit_fig1_quick_run(rotation: float, epochs: int = 10, eps=None,
                             n_test: int = 200) -> RunSpec:
    """The fig1 quick run at `rotation`, seed 0, written out field by field."""
    from pipeline.experiments import grid
    config = TrainConfig(model="stdcnn", train_rotation=rotation, dataset="mnist5k",
                         epochs=epochs, batch_size=64, optimizer="adam", lr=1e-3, seed=0)
    eps = grid(0, 0.3, 0.02) if eps is None else eps
    return RunSpec(config, grid(0, 180, 15), eps, 10, (0.0,), n_test, 0)


def test_seed_zero_runs_keep_their_keys():
    from pipeline.experiments import grid
    fig = figure("fig1", "quick")
    seed0 = [r for r in fig.runs if r.train.seed == 0]
    assert [r.key for r in seed0] == [_explicit_fig1_quick_run(a).key
                                      for a in (0, 30, 60, 90, 120, 150, 180)]
    # an earlier declaration (15 epochs, eps 0:1:0.05) still hashes to the run store folder
    # its runs were stored under, before defaults were added to TrainConfig
    assert _explicit_fig1_quick_run(0.0, 15, grid(0, 1, 0.05), 500).key == "8c845747f9ed82e9"


@pytest.mark.parametrize("scale, name, seeds", [
    ("quick", "fig1", (0,)), ("quick", "fig3", (0,)), ("quick", "fig5", (0,)),
    ("quick", "curriculum", (0,)), ("full-cpu", "fig1", (0, 1)), ("paper", "fig1", (0, 1, 2)), ("paper", "fig3", (0, 1, 2)),
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
                  if k not in ("data_dir", "deterministic", "amp", "random_crop", "hflip",
                               "adv_warmup", "lr_schedule", "robust_check")}
    assert spec().key == config_hash(d)
    assert spec(deterministic=True).key == spec().key  # same computation, same run
    assert spec(amp=True).key != spec().key  # bf16 changes the weights: a new run
    # the short-adversarial-training aids change what a run computes or records: new runs
    for changed in (dict(adv_warmup=0.5), dict(lr_schedule="cosine"), dict(robust_check=100)):
        assert spec(**changed).key != spec().key, changed


@pytest.mark.parametrize("name", ("fig1", "fig3", "fig5", "curriculum", "corollary"))
def test_a_dataset_replaces_mnist_and_says_so(name):
    quick, fashion = figure(name, "quick"), figure(name, "quick", "fashion-mnist")
    assert {r.train.dataset for r in fashion.runs} == {"fashion-mnist"}
    assert fashion.dataset == "fashion-mnist" and quick.dataset == "mnist5k"
    assert not set(fashion.keys) & set(quick.keys)  # the data set is part of every run key
    assert any("Fashion-MNIST" in d and "replaced MNIST" in d for d in fashion.deviations)
    # everything but the data set and the grid it calls for is the same declaration
    assert [r.train.train_rotation for r in fashion.runs] == [r.train.train_rotation
                                                            for r in quick.runs]


def test_cifar_figures_ignore_a_dataset_and_bad_ones_are_refused():
    assert figure("fig2", "quick", "fashion-mnist").dataset == "cifar10"
    with pytest.raises(UsageError, match="--dataset"):
        figure("fig1", "quick", "cifar10")


def test_scale_labels_name_a_replaced_dataset_only():
    assert scale_label("quick") == scale_label("quick", "mnist5k") == "quick"
    assert scale_label("full-cpu", "fashion-mnist") == "full-cpu-fashion-mnist"


@pytest.mark.parametrize("dataset", MNIST_SHAPED)
def test_eps_grids_are_increasing_from_zero(dataset):
    for family in ("standard", "adversarial"):
        grid = eps_grid(dataset, family)
        assert grid[0] == 0.0 and list(grid) == sorted(set(grid)) and len(grid) >= 10


def test_full_cpu_declares_fig1_on_all_training_images_with_two_seeds():
    fig = figure("fig1", "full-cpu", "fashion-mnist")
    assert fig.seeds == (0, 1) and len(fig.runs) == 14
    assert all(r.train.train_subset is None and r.n_test == 1000 for r in fig.runs)


def test_full_cpu_declares_the_whole_paper_on_all_training_images():
    # issue: Fig. 3 at >= 4 rotations, Fig. 5 at eps 0 and >= 3 training eps, the curriculum
    # against its baselines, each with >= 2 seeds, all on every training image
    for name in ("fig3", "fig5", "curriculum", "corollary"):
        assert declared(name, "full-cpu"), name
    fig3 = figure("fig3", "full-cpu", "fashion-mnist")
    assert len(fig3.seeds) >= 2 and len({r.train.train_rotation for r in fig3.runs}) >= 4
    fig5 = figure("fig5", "full-cpu", "fashion-mnist")
    eps = sorted({r.train.adv_eps for r in fig5.runs})
    assert len(fig5.seeds) >= 2 and eps[0] == 0 and len(eps) >= 4
    # the training eps lie inside the profiles' grid, and every LeNet is short-PGD trained
    assert max(eps) <= max(fig5.runs[0].epsilons)
    assert all(r.train.lr_schedule == "cosine" and r.train.robust_check > 0 for r in fig5.runs)
    assert any("PGD-40" in d and "ramped" in d and "PGD-2" in d for d in fig5.deviations)
    cur = figure("curriculum", "full-cpu", "fashion-mnist")
    assert len(cur.seeds) >= 2 and sum(r.train.curriculum is not None for r in cur.runs) == 2
    stages = next(r.train.curriculum for r in cur.runs if r.train.curriculum is not None)
    assert [s.theta for s in stages] == [120.0, 150.0, 180.0]  # every CuSP stage kept
    for fig in (fig3, fig5, cur):
        assert all(r.train.train_subset is None and r.train.dataset == "fashion-mnist"
                   for r in fig.runs)


@pytest.mark.parametrize("name", ("fig1", "fig3", "fig5", "curriculum"))
def test_quick_trains_one_seed_and_says_why(name):
    fig = figure(name, "quick")
    assert fig.seeds == (0,) and {r.train.seed for r in fig.runs} == {0}
    assert any("one training seed" in d and "15-minute" in d for d in fig.deviations)
    assert not any("one training seed" in d for d in figure(name, "paper").deviations)


def test_each_run_is_asked_each_measurement_one_way():
    # The corollary's P4CNN attacks the first points of fig1's profile subset, which differs
    # per scale; a run key shared by two scales was once asked for both under one file name,
    # and each pass overwrote the other's record. Each scale now trains its own run.
    from pipeline.experiments import _all_measurements, run_measurements
    _all_measurements.cache_clear()
    _all_measurements()  # raises DeclarationConflict on any clash
    for dataset in MNIST_SHAPED:
        keys = {scale: figure("corollary", scale, dataset).runs[0].key for scale in SCALES}
        assert len({keys["quick"], keys["full-cpu"], keys["paper"]}) == 3
        for scale in SCALES:
            ms = run_measurements(figure("corollary", scale, dataset).runs[0])
            fig1_n = figure("fig1", scale, dataset).runs[0].n_test
            assert [m.name for m in ms] == ["rot90-raw", "rot90-interior"], scale
            assert {m.n_test for m in ms} == {fig1_n}, scale


def test_a_measurement_record_of_another_declaration_is_not_read():
    from types import SimpleNamespace

    from pipeline.experiments import declared_measurement
    from verify.gather import MissingMeasurement, measurement
    spec = figure("corollary", "quick").runs[0]
    declared = declared_measurement(spec, "rot90-raw").to_dict()
    outdated = dict(declared, n_test=10_000)  # the first points of another subset
    record = SimpleNamespace(spec=spec, measurements={
        "rot90-raw": {"measurement": declared, "result": {"ok": 1}},
        "rot90-interior": {"measurement": outdated, "result": {"ok": 2}}})
    assert measurement(record, "rot90-raw") == {"ok": 1}
    with pytest.raises(MissingMeasurement, match="outdated record of measurement 'rot90-interior'"):
        measurement(record, "rot90-interior")


def test_quick_attacks_one_stdcnn_with_autoattack_and_full_cpu_both():
    from pipeline.experiments import run_measurements
    def attacked(scale, dataset=None):
        fig = figure("fig1", scale, dataset)
        return {(r.train.train_rotation, m.epsilons, m.points) for r in fig.runs
                for m in run_measurements(r) if m.attack == "autoattack"}
    assert attacked("quick") == {(180.0, (0.1,), 50)}
    assert any("AutoAttack gap on the A = 180 StdCNN only" in d
               for d in figure("fig1", "quick").deviations)
    # full-cpu keeps the declaration its committed records were made with
    assert attacked("full-cpu", "fashion-mnist") == {(0.0, (0.02, 0.05), 100),
                                                     (180.0, (0.02, 0.05), 100)}
