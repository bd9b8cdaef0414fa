"""Sweep execution: skipping done runs, resuming interrupted ones, the
process pool and the Ray path, with a fake run function (no training)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from core.io import atomic_write_json
from pipeline.runspec import RunSpec
from pipeline.runstore import RunStore
import pipeline.sweep as sweep_module
import torch
from pipeline.sweep import RUNS_PER_GPU, RunOptions, default_jobs, run_sweep

CRASH_FILE = "crash-after-epochs"  # in the store root: the fake run dies after N epochs


@dataclass(frozen=True)
class FakeConfig:
    model: str = "stdcnn"
    dataset: str = "mnist5k"
    theta: float = 0.0
    eps: float = 0.0
    epochs: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FakeProfile:
    value: float

    def to_dict(self) -> dict:
        return {"value": self.value}


class Interrupted(RuntimeError):
    pass


def fake_run(spec: RunSpec, store_root: str, options: RunOptions) -> str:
    """Mimics execute_run: one checkpoint per epoch, resume from it, then
    profiles. Every epoch actually trained is logged to epochs.log."""
    store = RunStore(store_root)
    folder = store.prepare(spec)
    crash = Path(store_root) / CRASH_FILE
    crash_after = int(crash.read_text()) if crash.is_file() else None
    ckpt = folder / "checkpoint.json"
    start = json.loads(ckpt.read_text())["epoch"] if ckpt.is_file() else 0
    for epoch in range(start, spec.train.epochs):
        if crash_after is not None and epoch >= crash_after:
            raise Interrupted(f"killed in epoch {epoch}")
        with open(folder / "epochs.log", "a") as fh:
            fh.write(f"{epoch}\n")
        atomic_write_json(ckpt, {"epoch": epoch + 1})
    store.save_profiles(spec, FakeProfile(1.0), {b: FakeProfile(b) for b in spec.test_rotations}, 0.0)
    return spec.key


def specs(n: int = 3, epochs: int = 3) -> list[RunSpec]:
    return [RunSpec(FakeConfig(theta=30.0 * i, epochs=epochs), thetas=(0, 90),
                    epsilons=(0, 0.1), pgd_steps=2, n_test=10) for i in range(n)]


def trained_epochs(store: RunStore, spec: RunSpec) -> list[int]:
    log = store.run_dir(spec) / "epochs.log"
    return [int(x) for x in log.read_text().split()] if log.is_file() else []


QUIET = RunOptions(progress=False)


def test_sweep_runs_missing_then_nothing(tmp_path):
    store = RunStore(tmp_path)
    runs = specs()
    assert sorted(run_sweep(runs, store, options=QUIET, run_fn=fake_run)) == sorted(
        s.key for s in runs)
    assert store.missing(runs) == []
    # a second sweep finds everything done and trains nothing
    assert run_sweep(runs, store, options=QUIET, run_fn=fake_run) == []
    assert all(trained_epochs(store, s) == [0, 1, 2] for s in runs)


def test_interrupted_sweep_resumes_without_redoing_epochs(tmp_path):
    store = RunStore(tmp_path)
    runs = specs(n=2, epochs=4)
    (tmp_path / CRASH_FILE).write_text("2")
    with pytest.raises(Interrupted):
        run_sweep(runs, store, options=QUIET, run_fn=fake_run)
    # the interrupted run is not done and kept its finished epochs
    assert not store.is_done(runs[0]) and trained_epochs(store, runs[0]) == [0, 1]
    (tmp_path / CRASH_FILE).unlink()
    assert run_sweep(runs, store, options=QUIET, run_fn=fake_run) == [s.key for s in runs]
    # each epoch trained exactly once across both sweeps
    assert [trained_epochs(store, s) for s in runs] == [[0, 1, 2, 3]] * 2


def test_duplicate_specs_run_once(tmp_path):
    store = RunStore(tmp_path)
    run = specs(n=1)[0]
    assert run_sweep([run, run], store, options=QUIET, run_fn=fake_run) == [run.key]


def test_bad_jobs_rejected(tmp_path):
    with pytest.raises(ValueError, match="jobs"):
        run_sweep(specs(), RunStore(tmp_path), jobs=0, run_fn=fake_run)


@pytest.mark.slow
def test_process_pool_runs_every_spec(tmp_path):
    store = RunStore(tmp_path)
    runs = specs(n=3)
    done = run_sweep(runs, store, jobs=2, options=QUIET, run_fn=fake_run)
    assert sorted(done) == sorted(s.key for s in runs)
    assert store.missing(runs) == []


@pytest.mark.slow
def test_ray_local_instance_fills_the_same_store(tmp_path):
    ray = pytest.importorskip("ray")
    here = str(Path(__file__).resolve().parent)
    # workers must import this module (fake_run, FakeConfig) by name
    path = os.pathsep.join([here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        store = RunStore(tmp_path)
        runs = specs(n=2, epochs=2)
        done = run_sweep(runs, store, ray_address="auto", options=QUIET, run_fn=fake_run)
        assert sorted(done) == sorted(s.key for s in runs)
        assert store.missing(runs) == []
        assert [trained_epochs(store, s) for s in runs] == [[0, 1]] * 2
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_real_run_trains_profiles_and_is_never_recomputed(tmp_path):
    from pipeline.sweep import execute_run
    from empirics.train import TrainConfig

    run = RunSpec(TrainConfig(model="stdcnn", epochs=1, train_subset=200, test_subset=50),
                  thetas=(0, 90), epsilons=(0, 0.1), pgd_steps=2, n_test=40)
    store = RunStore(tmp_path)
    assert run_sweep([run], store, options=QUIET) == [run.key]
    rec = store.load(run)
    assert rec.invariance.n == 40 and rec.robustness[0.0].epsilons == (0.0, 0.1)
    assert rec.metrics["epochs"][0]["epoch"] == 1
    ckpt = store.run_dir(run) / "checkpoint.pt"
    stamp = ckpt.stat().st_mtime_ns
    assert run_sweep([run], store, options=QUIET) == []
    assert execute_run(run, str(tmp_path), QUIET) == run.key  # done: returns at once
    assert ckpt.stat().st_mtime_ns == stamp


def test_default_jobs_shares_a_gpu_and_keeps_the_cpu_default(monkeypatch):
    assert default_jobs("cpu") == max(1, min(2, os.cpu_count() or 1))
    monkeypatch.setattr(sweep_module, "pick_device", lambda name=None: torch.device("cuda"))
    assert default_jobs() == RUNS_PER_GPU > 1
