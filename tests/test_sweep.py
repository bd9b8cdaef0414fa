"""Sweep execution: skipping done runs, resuming interrupted ones, the
process pool and the Ray path, with a fake run function (no training)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from core.io import atomic_write_json
from core.lock import LOCK_FILE, process_start
from pipeline.runspec import RunSpec
from pipeline.runstore import RunStore
import pipeline.sweep as sweep_module
import torch
from pipeline.sweep import (RUNS_PER_GPU, RunOptions, SweepInterrupted, default_jobs, holding,
                            run_sweep)

CRASH_FILE = "crash-after-epochs"  # in the store root: the fake run dies after N epochs
SLEEP_ENV = "FAKE_RUN_EPOCH_SECONDS"  # how long each fake epoch takes (default 0)


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
    with holding(store.run_dir(spec), f"run {spec.key} in {store.root}"):
        return _fake_run(spec, store, options)


def _fake_run(spec: RunSpec, store: RunStore, options: RunOptions) -> str:
    folder = store.prepare(spec)
    with open(folder / "pids", "a") as fh:
        fh.write(f"{os.getpid()}\n")
    sleep = float(os.environ.get(SLEEP_ENV, "0"))
    crash = store.root / CRASH_FILE
    crash_after = int(crash.read_text()) if crash.is_file() else None
    ckpt = folder / "checkpoint.json"
    start = json.loads(ckpt.read_text())["epoch"] if ckpt.is_file() else 0
    for epoch in range(start, spec.train.epochs):
        if crash_after is not None and epoch >= crash_after:
            raise Interrupted(f"killed in epoch {epoch}")
        with open(folder / "epochs.log", "a") as fh:
            fh.write(f"{epoch}\n")
        time.sleep(sleep)
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


# ------------------------------------------------- a run another sweep holds
@pytest.fixture
def live_holder(tmp_path):
    """A live process (not this one) on this host, as another sweep's pid."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def hold(store: RunStore, spec: RunSpec, proc) -> None:
    """Write the lock another sweep (process `proc`) holds on the run."""
    folder = store.run_dir(spec)
    folder.mkdir(parents=True)
    (folder / LOCK_FILE).write_text(json.dumps({
        "pid": proc.pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00Z",
        "start_ticks": process_start(proc.pid)}))


@pytest.mark.parametrize("jobs", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_run_another_sweep_holds_is_skipped_and_named(tmp_path, live_holder, capsys, jobs):
    store, runs = RunStore(tmp_path), specs(n=3, epochs=1)
    hold(store, runs[1], live_holder)
    done = run_sweep(runs, store, jobs=jobs, options=QUIET, run_fn=fake_run)
    assert sorted(done) == sorted([runs[0].key, runs[2].key])  # the others went on
    assert store.missing(runs) == [runs[1]] and trained_epochs(store, runs[1]) == []
    err = capsys.readouterr().err
    assert "skipped 1 run(s) that another sweep is writing" in err
    assert f"run {runs[1].key}" in err and f"pid {live_holder.pid}" in err


# ------------------------------------------------------------ stopping a sweep
def test_sigterm_stops_an_inline_sweep_as_ctrl_c_does(tmp_path, capsys):
    store, runs = RunStore(tmp_path), specs(n=2, epochs=3)

    def terminated_during_the_second_run(spec, root, options):
        if spec.key == runs[1].key:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the sweep's handler interrupts this
        return fake_run(spec, root, options)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SweepInterrupted) as stopped:
        run_sweep(runs, store, options=QUIET, run_fn=terminated_during_the_second_run)
    assert stopped.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted: 1 run(s) finished" in err and "Traceback" not in err
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back
    assert store.missing(runs) == [runs[1]]


STOP_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_sweep import fake_run, specs
from pipeline.runstore import RunStore
from pipeline.sweep import RunOptions, run_sweep
if __name__ == "__main__":
    runs = specs(n=1, epochs=2) + specs(n=4, epochs=40)[1:]
    run_sweep(runs, RunStore({store!r}), jobs=2, options=RunOptions(progress=False),
              run_fn=fake_run)
"""


def _pids(store: RunStore, runs) -> set[int]:
    found = set()
    for spec in runs:
        path = store.run_dir(spec) / "pids"
        if path.is_file():
            found |= {int(x) for x in path.read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text(
        ).rsplit(")", 1)[1].split()[:1]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_stopping_a_two_job_sweep_takes_seconds_and_keeps_everything(tmp_path, how):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) or
    SIGTERM to the sweep: it stops within seconds, with one line and no
    traceback; the finished run is stored, the two in progress resume, the
    queued one never started, and no worker is left."""
    store = RunStore(tmp_path / "store")
    runs = specs(n=1, epochs=2) + specs(n=4, epochs=40)[1:]
    script = tmp_path / "sweep_main.py"
    script.write_text(STOP_SCRIPT.format(tests=str(Path(__file__).parent), store=str(store.root)))
    env = {**os.environ, SLEEP_ENV: "0.25"}
    # a shell's background job inherits SIGINT ignored: the sweep gets a terminal's default
    sweep = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE,
                             text=True, start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (store.is_done(runs[0]) and all(trained_epochs(store, s) for s in runs[1:3])):
            assert time.monotonic() < deadline and sweep.poll() is None, "the runs never started"
            time.sleep(0.05)
        workers = _pids(store, runs)
        sent = time.monotonic()
        if how == "ctrl-c":
            os.killpg(sweep.pid, signal.SIGINT)
        else:
            sweep.send_signal(signal.SIGTERM)
        _, err = sweep.communicate(timeout=60)
        stopped = time.monotonic() - sent
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.wait()
    assert sweep.returncode == 130, err
    assert stopped < 5, f"the sweep took {stopped:.1f} s to stop"
    assert "Traceback" not in err and "interrupted: 1 run(s) finished" in err, err
    assert len(workers) == 2 and not [p for p in workers if _alive(p)]
    assert store.missing(runs) == runs[1:] and trained_epochs(store, runs[3]) == []
    # the interrupted runs resume: every epoch trained, none checkpointed twice
    assert sorted(run_sweep(runs, store, options=QUIET, run_fn=fake_run)) == sorted(
        s.key for s in runs[1:])
    for spec in runs[1:3]:
        log = trained_epochs(store, spec)
        assert sorted(set(log)) == list(range(40)) and len(log) <= 41


# ------------------------------------------------------ channels-last option
def test_channels_last_applies_to_runs_without_an_attack_only(tmp_path, monkeypatch):
    from empirics.train import TrainConfig
    from pipeline.sweep import channels_last_for, execute_run, execution
    plain = TrainConfig(model="stdcnn", epochs=2)
    attacked = TrainConfig(model="lenet", epochs=2, adv_eps=0.1, adv_steps=2)
    on = RunOptions(channels_last=True)
    assert channels_last_for(plain, on) and not channels_last_for(plain, RunOptions())
    assert not channels_last_for(attacked, on)
    assert execution(on, torch.device("cpu"), True)["channels_last"] is True
    seen = []

    class Stop(Exception):
        pass

    def fake_train(config, folder, **kw):
        seen.append(kw["channels_last"])
        raise Stop
    monkeypatch.setattr(sweep_module, "train", fake_train)
    for config in (plain, attacked):
        with pytest.raises(Stop):
            execute_run(RunSpec(config, thetas=(0,), epsilons=(0,), pgd_steps=1, n_test=10),
                        str(tmp_path), on)
    assert seen == [True, False]


@pytest.mark.parametrize("scale, dataset", [("quick", None), ("full-cpu", "fashion-mnist")])
def test_runs_that_carry_autoattack_start_first(scale, dataset):
    # the seed-0 StdCNNs that also run AutoAttack, the costliest measurement, start first,
    # so that no core idles at the end of a sweep while the last one attacks
    from pipeline.experiments import figure, run_measurements
    from pipeline.sweep import by_cost
    runs = figure("fig1", scale, dataset).runs
    measured = [r for r in runs if any(m.attack == "autoattack" for m in run_measurements(r))]
    assert measured and set(by_cost(runs)[:len(measured)]) == set(measured)
