"""The run store: a run is done only once its profiles are written whole;
partial, foreign or corrupt folders are not mistaken for finished runs."""
from __future__ import annotations

import json
import os

import pytest

from pipeline.experiments import figure
from core.io import atomic_write_json
from empirics.profiles import InvarianceProfile, RobustnessProfile
from pipeline.runstore import PROFILES_FILE, MissingRunError, RunRecord, RunStore


@pytest.fixture
def run():
    return figure("fig1", "quick").runs[2]


def profiles(run, n: int = 6):
    k = len(run.thetas)
    inv = InvarianceProfile(run.thetas, ((True,) * n,) * k, ((True,) * (n - 1) + (False,),) * k,
                            (True,) * n, seed=0)
    rob = RobustnessProfile(run.epsilons, tuple(range(n)), tuple(range(n)), 0.0, run.pgd_steps, 0)
    return inv, {0.0: rob}


def test_save_then_load_round_trips(tmp_path, run):
    store = RunStore(tmp_path)
    inv, rob = profiles(run)
    atomic_write_json(store.prepare(run) / "metrics.json", {"finished": True})
    store.save_profiles(run, inv, rob, seconds=1.5)
    rec = store.load(run)
    assert isinstance(rec, RunRecord) and rec.spec == run and rec.run_dir == store.run_dir(run)
    assert rec.invariance == inv and rec.robustness == rob
    assert rec.metrics == {"finished": True} and rec.seconds == 1.5
    assert store.run_dir(run).name == run.key


def test_partial_run_is_not_done(tmp_path, run):
    store = RunStore(tmp_path)
    folder = store.prepare(run)
    for name in ("config.json", "metrics.json"):  # training checkpointed, profiles not yet
        atomic_write_json(folder / name, {})
    (folder / f".{PROFILES_FILE}.abc.tmp").write_text('{"key": "%s"' % run.key)  # torn temp file
    assert not store.is_done(run) and store.missing([run]) == [run]
    with pytest.raises(MissingRunError):
        store.load(run)


def test_corrupt_or_foreign_profiles_are_not_done(tmp_path, run):
    store = RunStore(tmp_path)
    path = store.prepare(run) / PROFILES_FILE
    path.write_text('{"key": "' + run.key)  # truncated by some other writer
    assert not store.is_done(run)
    path.write_text(json.dumps({"key": "0" * 16}))  # another run's file copied in
    assert not store.is_done(run)


def test_crash_during_the_final_write_leaves_the_run_undone(tmp_path, run, monkeypatch):
    store = RunStore(tmp_path)
    store.prepare(run)

    def crash(src, dst):
        raise KeyboardInterrupt  # killed between writing the temp file and the rename

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save_profiles(run, *profiles(run), seconds=0.0)
    monkeypatch.undo()
    assert not store.is_done(run)
    assert [p.name for p in store.run_dir(run).iterdir()] == ["spec.json"]  # temp file removed


def test_profiles_must_cover_the_declared_test_rotations(tmp_path, run):
    inv, rob = profiles(run)
    with pytest.raises(ValueError, match="test_rotations"):
        RunStore(tmp_path).save_profiles(run, inv, {90.0: rob[0.0]}, seconds=0.0)
