"""One writer per run folder and per store run (`core.lock.RunLock`), stale
locks taken over, workers that die with their sweep, output permissions."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.errors import UsageError
from core.io import atomic_write_json, atomic_write_text
from core.lock import LOCK_FILE, RunLock, pid_alive, process_start, read_owner
from empirics.train import TrainConfig
from pipeline.runspec import RunSpec
from pipeline.runstore import RunStore
from pipeline.sweep import RunOptions, run_sweep

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _holder(folder: Path, seconds: float) -> subprocess.Popen:
    """A process that takes RunLock(folder), says so, holds it `seconds`."""
    code = (f"import sys, time; from core.lock import RunLock\n"
            f"with RunLock({str(folder)!r}):\n"
            f"    print('locked', flush=True); time.sleep({seconds})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _wait_gone(pids, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if pid_alive(p)]
    return alive


# ---------------------------------------------------------------- the lock
def test_lock_records_its_owner_and_is_removed_on_release(tmp_path):
    with RunLock(tmp_path / "run"):
        owner = json.loads((tmp_path / "run" / LOCK_FILE).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        assert isinstance(owner["started"], str)
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_lock_is_reentrant_within_a_process(tmp_path):
    with RunLock(tmp_path):
        with RunLock(tmp_path):
            pass
        assert (tmp_path / LOCK_FILE).exists()  # the outer holder still holds it
    assert not (tmp_path / LOCK_FILE).exists()


def test_second_writer_gets_a_clear_error(tmp_path):
    proc = _holder(tmp_path, 30)
    try:
        with pytest.raises(UsageError, match=f"being written by pid {proc.pid} on "
                                             f"{socket.gethostname()}"):
            RunLock(tmp_path).acquire()
        assert read_owner(tmp_path / LOCK_FILE)["pid"] == proc.pid  # left untouched
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    proc = _holder(tmp_path, 30)
    proc.kill()
    proc.wait()
    assert read_owner(tmp_path / LOCK_FILE)["pid"] == proc.pid  # kill -9 left it behind
    with RunLock(tmp_path):
        assert read_owner(tmp_path / LOCK_FILE)["pid"] == os.getpid()


def test_lock_whose_pid_was_recycled_is_taken_over(tmp_path):
    # a live pid (this process) but a start time that is not its own
    (tmp_path / LOCK_FILE).write_text(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "started": "then",
        "start_ticks": process_start(os.getpid()) - 1}))
    with RunLock(tmp_path):
        assert read_owner(tmp_path / LOCK_FILE)["start_ticks"] == process_start(os.getpid())


def test_lock_from_another_host_is_never_taken_over(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": _dead_pid(), "host": "elsewhere-x",
                                                  "started": "then"}))
    with pytest.raises(UsageError, match="on elsewhere-x"):
        RunLock(tmp_path).acquire()


def test_many_processes_taking_over_one_stale_lock_leave_one_owner(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": _dead_pid(),
                                                  "host": socket.gethostname(), "started": "x"}))
    go = tmp_path / "go"
    code = textwrap.dedent(f"""
        import os, sys, time
        from core.errors import UsageError
        from core.lock import RunLock
        while not os.path.exists({str(go)!r}):
            time.sleep(0.005)
        try:
            with RunLock({str(tmp_path)!r}):
                print("owner", flush=True)
                time.sleep(2)
        except UsageError:
            print("refused", flush=True)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=ENV,
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    time.sleep(1.5)  # all started and polling
    go.write_text("")
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(outs) == ["owner", "refused", "refused", "refused"], outs
    assert not (tmp_path / ".lock.guard").exists()  # each take-over removes its guard


def test_a_take_over_and_the_next_owner_leave_no_guard_file(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": _dead_pid(),
                                                  "host": socket.gethostname(), "started": "x"}))
    with RunLock(tmp_path):
        assert not (tmp_path / ".lock.guard").exists()
    (tmp_path / ".lock.guard").write_text("")  # left by a take-over killed half-way
    with RunLock(tmp_path):
        pass
    assert sorted(os.listdir(tmp_path)) == []


# ---------------------------------------------------------------- trainers
@pytest.mark.slow
def test_two_trainers_on_one_out_the_second_gets_one_line(tmp_path, capsys):
    from empirics.train import main as train_main

    out = tmp_path / "run"
    argv = ["--out", str(out), "--epochs", "200", "--train-subset", "200", "--test-subset",
            "100", "--batch-size", "50", "--quiet"]
    first = subprocess.Popen([sys.executable, "-m", "empirics.train", *argv], cwd=ROOT, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / LOCK_FILE).exists() and time.monotonic() < deadline:
            assert first.poll() is None, first.stderr.read()
            time.sleep(0.05)
        for extra in ([], ["--resume"], ["--force"]):  # none may write while the first does
            with pytest.raises(SystemExit) as exc:
                train_main(argv + extra)
            lines = capsys.readouterr().err.strip().splitlines()
            assert exc.value.code == 2 and len(lines) == 1, (extra, lines)
            assert f"being written by pid {first.pid}" in lines[0], lines[0]
            assert first.poll() is None  # the first is still training, undisturbed
    finally:
        first.kill()
        first.wait()
    assert read_owner(out / LOCK_FILE)["pid"] == first.pid  # killed: its lock is stale now


# ---------------------------------------------------------------- sweeps
TINY = TrainConfig(epochs=1, train_subset=100, test_subset=100, batch_size=50)


def test_a_folder_being_written_is_reported_as_such_not_as_a_finished_run(tmp_path):
    from empirics.train import train

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TINY.to_dict()))  # what the writer wrote first
    proc = _holder(run, 30)
    try:
        with pytest.raises(UsageError, match=f"being written by pid {proc.pid}"):
            train(TINY, run, progress=False)
        with pytest.raises(UsageError, match=f"being written by pid {proc.pid}"):
            train(TINY, run, resume=True, progress=False)
    finally:
        proc.kill()
        proc.wait()
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE, "config.json"]


def _spec() -> RunSpec:
    return RunSpec(TINY, thetas=(0.0, 90.0), epsilons=(0.0, 0.1), pgd_steps=1, n_test=50)


class _Stop(Exception):
    pass


def test_two_sweeps_on_one_store_one_writer_per_run(tmp_path, monkeypatch, capsys):
    import pipeline.sweep as sweep

    spec, store = _spec(), RunStore(tmp_path)
    # Sweep A: real execute_run, whose training stands still (a slow epoch),
    # then is killed -9 while holding the run.
    code = textwrap.dedent(f"""
        import json, time
        import pipeline.sweep as sweep
        from pipeline.runspec import RunSpec
        from pipeline.runstore import RunStore
        def slow_train(*args, **kwargs):
            print("training", flush=True)
            time.sleep(60)
        sweep.train = slow_train
        spec = RunSpec.from_dict(json.loads({json.dumps(spec.to_dict())!r}))
        sweep.run_sweep([spec], RunStore({str(tmp_path)!r}),
                        options=sweep.RunOptions(progress=False))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "training"
        calls = []

        def record_and_stop(*args, **kwargs):
            calls.append(1)
            raise _Stop

        monkeypatch.setattr(sweep, "train", record_and_stop)
        # sweep B skips the run and names it at the end (pipeline.sweep.RunHeld)
        assert run_sweep([spec], store, options=RunOptions(progress=False)) == []
        assert re.search(f"run {spec.key} .* being written by pid {proc.pid}",
                         capsys.readouterr().err)
        assert calls == []  # sweep B never touched the run
    finally:
        proc.kill()
        proc.wait()
    # A died holding the run: B takes the stale lock over and works on it.
    with pytest.raises(_Stop):
        run_sweep([spec], store, options=RunOptions(progress=False))
    assert calls == [1]
    assert not (store.run_dir(spec) / LOCK_FILE).exists()


SLOW_RUN = '''
import os, time
from pathlib import Path

def slow_run(spec, store_root, options):
    Path(store_root, f"worker-{os.getpid()}").write_text(str(os.getppid()))
    time.sleep(120)
    return spec.key
'''


@pytest.mark.slow
def test_killed_sweep_leaves_no_worker_behind(tmp_path):
    (tmp_path / "slowrun.py").write_text(SLOW_RUN)
    store = tmp_path / "store"
    store.mkdir()
    specs = [RunSpec(TrainConfig(seed=s, epochs=1), thetas=(0.0,), epsilons=(0.0,),
                     pgd_steps=1, n_test=10).to_dict() for s in range(2)]
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        from slowrun import slow_run
        from pipeline.runspec import RunSpec
        from pipeline.runstore import RunStore
        from pipeline.sweep import RunOptions, run_sweep
        specs = [RunSpec.from_dict(d) for d in json.loads({json.dumps(specs)!r})]
        if __name__ == "__main__":
            run_sweep(specs, RunStore({str(store)!r}), jobs=2,
                      options=RunOptions(progress=False), run_fn=slow_run)
    """)
    script = tmp_path / "sweep_main.py"
    script.write_text(code)
    parent = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=ENV)
    try:
        deadline = time.monotonic() + 60
        while len(list(store.glob("worker-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = [int(p.name.split("-")[1]) for p in store.glob("worker-*")]
        assert len(workers) == 2 and all(pid_alive(w) for w in workers)
        assert {int(p.read_text()) for p in store.glob("worker-*")} == {parent.pid}
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    left = _wait_gone(workers, 5.0)
    for pid in left:  # do not leave them running whatever the verdict
        os.kill(pid, signal.SIGKILL)
    assert left == []


# ---------------------------------------------------------------- permissions
def test_output_files_get_the_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write_json(tmp_path / "b.json", {})
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    expected = stat.S_IMODE((tmp_path / "plain").stat().st_mode)  # what open() gives
    assert expected == 0o640
    for name in ("a.txt", "b.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected
