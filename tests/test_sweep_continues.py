"""A sweep that outlasts one sitting: interrupted after k runs, its finished
records exported (as a commit would carry them), then continued on a fresh
clone that has only those records: only the missing runs are trained."""
import functools
import json

import numpy as np
import pytest

from empirics.profiles import InvarianceProfile, RobustnessProfile
from paper_figures.__main__ import main as figures_main
from pipeline import make, sweep
from pipeline.experiments import figure
from pipeline.runstore import RunStore

SCALE, DATASET = "full-cpu", "fashion-mnist"
FIGS = ("fig5", "fig3")


def _profiles(spec, n: int = 20):
    rng = np.random.default_rng(int(spec.key[:8], 16))
    inv = rng.random((len(spec.thetas), n)) < 0.5
    inv[0] = True
    rows = lambda a: tuple(tuple(bool(v) for v in r) for r in a)  # noqa: E731
    broken = tuple(int(b) for b in rng.integers(0, len(spec.epsilons) + 1, n))
    return (InvarianceProfile(spec.thetas, rows(inv), rows(inv), tuple(bool(v) for v in inv[0]),
                              spec.profile_seed),
            {0.0: RobustnessProfile(spec.epsilons, broken, broken, 0.0, spec.pgd_steps,
                                    spec.profile_seed)})


class FakeTrainer:
    """Stands in for training and profiling (seconds, not hours): stores
    synthetic profiles and remembers which runs it made; raises
    KeyboardInterrupt (a Ctrl-C, a session's hard stop) before run `stop_after`."""

    def __init__(self, stop_after=None):
        self.made, self.stop_after = [], stop_after

    def __call__(self, spec, store_root, options):
        if self.stop_after is not None and len(self.made) == self.stop_after:
            raise KeyboardInterrupt
        inv, rob = _profiles(spec)
        RunStore(store_root).save_profiles(spec, inv, rob, seconds=1.0)
        self.made.append(spec.key)
        return spec.key


@pytest.fixture
def trainer(monkeypatch):
    def install(fake):
        monkeypatch.setattr(make, "run_sweep", functools.partial(sweep.run_sweep, run_fn=fake))
        return fake
    return install


def _figs():
    return [figure(name, SCALE, DATASET) for name in FIGS]


def test_interrupted_sweep_continues_from_exported_records_training_only_the_rest(
        tmp_path, monkeypatch, trainer):
    figs = _figs()
    keys = {s.key for f in figs for s in f.runs}
    k = 5
    # sitting 1: the sweep is interrupted after k runs
    first = trainer(FakeTrainer(stop_after=k))
    monkeypatch.chdir(tmp_path / "..")
    with pytest.raises((KeyboardInterrupt, SystemExit)):  # the sweep turns Ctrl-C into exit 130
        make.ensure(figs, RunStore(tmp_path / "sitting1"))
    assert len(first.made) == k
    # its finished records are exported (partially) into the results folder a commit carries
    monkeypatch.chdir(tmp_path)
    assert figures_main(["export", "--scale", SCALE, "--dataset", DATASET, "--store",
                         str(tmp_path / "sitting1"), "--to", "results/exported",
                         "--partial"]) in (0, None)
    exported = RunStore(tmp_path / "results" / "exported")
    assert {s.key for f in figs for s in f.runs if exported.is_done(s)} == set(first.made)
    # sitting 2, a fresh clone: an empty store and the exported records only
    second = trainer(FakeTrainer())
    fresh = RunStore(tmp_path / "sitting2")
    make.ensure(figs, fresh, results=tmp_path / "results" / "exported")
    assert set(second.made) == keys - set(first.made)  # only the missing runs were trained
    assert not set(second.made) & set(first.made)
    assert fresh.missing([s for f in figs for s in f.runs]) == []
    # the adopted records are the exported ones, byte for byte
    for key in first.made:
        a = (tmp_path / "results" / "exported" / key / "profiles.json").read_bytes()
        assert (tmp_path / "sitting2" / key / "profiles.json").read_bytes() == a
    # a third call trains nothing
    third = trainer(FakeTrainer())
    make.ensure(figs, fresh, results=tmp_path / "results" / "exported")
    assert third.made == []


def test_adoption_supersedes_a_partial_checkpoint_and_ignores_no_results(tmp_path):
    spec = _figs()[0].runs[0]
    exported = RunStore(tmp_path / "results")
    inv, rob = _profiles(spec)
    exported.save_profiles(spec, inv, rob, seconds=1.0)
    store = RunStore(tmp_path / "store")
    partial = store.prepare(spec)
    (partial / "checkpoint.pt").write_bytes(b"epoch 1 of 3")
    assert make.adopt_exported([spec], store, None) == []
    assert make.adopt_exported([spec], store, tmp_path / "nowhere") == []
    assert make.adopt_exported([spec], store, tmp_path / "results") == [spec.key]
    assert store.is_done(spec) and not (partial / "checkpoint.pt").exists()
    assert json.loads((partial / "profiles.json").read_text()) == json.loads(
        (tmp_path / "results" / spec.key / "profiles.json").read_text())


def test_export_refuses_unfinished_runs_unless_partial(tmp_path, monkeypatch, trainer):
    trainer(FakeTrainer(stop_after=2))
    with pytest.raises((KeyboardInterrupt, SystemExit)):  # the sweep turns Ctrl-C into exit 130
        make.ensure(_figs(), RunStore(tmp_path / "s"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        figures_main(["export", "--scale", SCALE, "--dataset", DATASET, "--store",
                      str(tmp_path / "s"), "--to", "out"])
    assert stop.value.code == 2


def test_exported_run_lacking_a_declared_measurement_is_trained_again(tmp_path):
    """Records travel without checkpoints: a run whose export predates a
    measurement declared since (fig1's AutoAttack gap) is not adopted, so the
    sweep trains it again and makes the measurement; once the exported folder
    holds the measurement too, the run is adopted."""
    from pipeline.experiments import run_measurements
    fig1 = figure("fig1", SCALE, DATASET)
    measured = [s for s in fig1.runs if run_measurements(s)]
    plain = [s for s in fig1.runs if not run_measurements(s)]
    assert measured and plain
    exported = RunStore(tmp_path / "results")
    for spec in (measured[0], plain[0]):
        inv, rob = _profiles(spec)
        exported.save_profiles(spec, inv, rob, seconds=1.0)
    store = RunStore(tmp_path / "store")
    assert make.adopt_exported([measured[0], plain[0]], store, exported.root) == [plain[0].key]
    assert not store.is_done(measured[0])
    for m in run_measurements(measured[0]):  # the export now carries every measurement
        (exported.run_dir(measured[0]) / m.file).write_text(
            json.dumps({"key": measured[0].key, "measurement": m.to_dict(), "result": {}}))
    assert make.adopt_exported([measured[0]], store, exported.root) == [measured[0].key]


def test_run_accepts_a_check_run_set_that_plot_refuses(tmp_path, monkeypatch, trainer):
    """`run corollary` makes the corollary check's P4CNN run; nothing draws it."""
    fake = trainer(FakeTrainer())
    monkeypatch.setattr(make, "available", lambda *a, **k: None)  # no data set needed here
    monkeypatch.setattr(make, "add_missing_measurements", lambda *a, **k: [])
    monkeypatch.chdir(tmp_path)
    assert figures_main(["run", "corollary", "--scale", SCALE, "--dataset", DATASET,
                         "--store", "s", "--results", "none", "--quiet", "--jobs", "1"]) in (0, None)
    assert fake.made == [s.key for s in figure("corollary", SCALE, DATASET).runs]
    with pytest.raises(SystemExit) as stop:
        figures_main(["plot", "corollary", "--scale", SCALE, "--dataset", DATASET, "--store", "s"])
    assert stop.value.code == 2
