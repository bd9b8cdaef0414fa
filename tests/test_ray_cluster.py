"""Sweeps on a real Ray cluster of three nodes on this machine (a head
without CPUs and two one-CPU workers, `ray.cluster_utils.Cluster`), with
real one- to three-epoch runs on small train subsets.

Each worker node has its own task-side run store (INVROB_WORKER_STORE,
differing from the driver's store), as nodes without a shared disk would:
every record must come back through Ray. Records are compared with those
of a `--jobs 1` sweep of the same specs, timing and provenance aside (the
same seed and thread count give bit-identical numbers on CPU nodes).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from empirics.train import CHECKPOINT, TRAIN_THREADS, TrainConfig
from pipeline.ray_executor import WORKER_STORE_ENV
from pipeline.runspec import RunSpec
from pipeline.runstore import PROFILES_FILE, RunStore
from pipeline.sweep import RunOptions, run_sweep

pytestmark = pytest.mark.slow
QUIET = RunOptions(progress=False)
ROOT = Path(__file__).resolve().parents[1]
# Keys that differ between two executions of the same run: wall and CPU
# times, and when / where / how it ran.
TIMING = {"seconds", "cpu_seconds", "train_seconds", "eval_seconds", "provenance", "created"}


def tiny_specs(n: int = 3, epochs: int = 1, train_subset: int = 200) -> list[RunSpec]:
    return [RunSpec(TrainConfig(model="stdcnn", epochs=epochs, train_subset=train_subset,
                                test_subset=50, seed=seed),
                    thetas=(0, 90), epsilons=(0, 0.1), pgd_steps=2, n_test=40)
            for seed in range(n)]


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def measurements(store: RunStore, spec) -> dict:
    """Every record file of a finished run, timing and provenance left out."""
    folder = store.run_dir(spec)
    out = {}
    for path in sorted(folder.rglob("*.json")):
        if not path.name.startswith("."):
            out[path.relative_to(folder).as_posix()] = _strip(json.loads(path.read_text()))
    return out


def add_worker(cluster, store: Path):
    return cluster.add_node(num_cpus=1, env_vars={WORKER_STORE_ENV: str(store)})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head (no CPUs: the driver and the progress actor only) and two
    one-CPU worker nodes, each with its own task-side store."""
    stores = tmp_path_factory.mktemp("worker-stores")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False})
    nodes = [add_worker(cluster, stores / f"node{i}") for i in range(2)]
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    try:
        yield cluster, stores, nodes
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same specs swept locally with --jobs 1."""
    store = RunStore(tmp_path_factory.mktemp("jobs1"))
    specs = tiny_specs(n=6, epochs=3, train_subset=300)
    run_sweep(specs, store, jobs=1, options=QUIET)
    return store, specs


def test_records_come_back_through_ray_without_a_shared_store(cluster, reference, tmp_path):
    _, stores, _ = cluster
    ref, specs = reference
    specs = specs[:2]
    store = RunStore(tmp_path / "driver-store")
    done = run_sweep(specs, store, ray_address="auto", options=QUIET)
    assert sorted(done) == sorted(s.key for s in specs)
    assert store.missing(specs) == []
    for spec in specs:
        assert measurements(store, spec) == measurements(ref, spec)  # bit-identical numbers
        # records only on the driver; the checkpoint stayed on the worker node that trained it
        assert not (store.run_dir(spec) / CHECKPOINT).exists()
        assert [p for p in stores.glob(f"node*/{spec.key}/{CHECKPOINT}")]
        execution = json.loads((store.run_dir(spec) / PROFILES_FILE).read_text())[
            "provenance"]["execution"]
        assert execution["executor"] == "ray" and execution["gpus_per_run"] == 0.0
        assert execution["threads"] == execution["cpus_per_run"] == TRAIN_THREADS
    local = json.loads((ref.run_dir(specs[0]) / PROFILES_FILE).read_text())
    assert local["provenance"]["execution"]["executor"] == "local"
    assert run_sweep(specs, store, ray_address="auto", options=QUIET) == []  # all done


def test_a_lost_worker_node_loses_nothing(cluster, reference, tmp_path):
    """A third node is killed while it trains a run: its task is retried on
    the others, and the store ends with the same keys and records as --jobs 1."""
    handle, stores, _ = cluster
    ref, specs = reference
    specs = specs[2:]  # not yet in any worker's store
    doomed_store = stores / "doomed"
    doomed = add_worker(handle, doomed_store)
    handle.wait_for_nodes()
    store = RunStore(tmp_path / "driver-store")
    outcome = {}

    def sweep():
        try:
            outcome["done"] = run_sweep(specs, store, ray_address="auto", options=replace_storage(
                tmp_path / "checkpoints"))
        except BaseException as err:  # noqa: BLE001 (reported by the assertion below)
            outcome["error"] = err

    driver = threading.Thread(target=sweep)
    driver.start()
    deadline = time.monotonic() + 120
    while not any(doomed_store.glob("*/spec.json")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert any(doomed_store.glob("*/spec.json")), "no run started on the third node"
    handle.remove_node(doomed, allow_graceful=False)
    driver.join(timeout=150)
    assert not driver.is_alive() and "error" not in outcome, outcome.get("error")
    assert sorted(outcome["done"]) == sorted(s.key for s in specs)
    assert sorted(p.name for p in store.root.iterdir()) == sorted(s.key for s in specs)
    for spec in specs:
        assert measurements(store, spec) == measurements(ref, spec)


def replace_storage(path: Path) -> RunOptions:
    return RunOptions(progress=False, checkpoint_storage=str(path))


DRIVER = """
import sys
from empirics.train import TrainConfig
from pipeline.runspec import RunSpec
from pipeline.runstore import RunStore
from pipeline.sweep import RunOptions, run_sweep
specs = [RunSpec(TrainConfig(model="stdcnn", epochs=200, train_subset=400, test_subset=50,
                             seed=seed), thetas=(0, 90), epsilons=(0, 0.1), pgd_steps=2,
                 n_test=40) for seed in range(3)]
run_sweep(specs, RunStore(sys.argv[1]), ray_address=sys.argv[2],
          options=RunOptions(progress=False))
"""


def _running_tasks() -> list[int]:
    """Pids of processes on this machine executing a sweep task (Ray names a
    worker process after the task it runs)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"ray::run_task" in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _cpus_free() -> float:
    return ray.available_resources().get("CPU", 0.0)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_the_driver_cancels_every_task(cluster, tmp_path, how):
    handle, _, nodes = cluster
    total = float(len(nodes))  # the fixture's one-CPU worker nodes
    deadline = time.monotonic() + 30
    while _cpus_free() < total and time.monotonic() < deadline:  # earlier tests' leases
        time.sleep(0.2)
    # a shell's background job inherits SIGINT ignored: the driver gets a terminal's default
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path / "store"),
                               handle.address], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while (_cpus_free() > 0 or len(_running_tasks()) < total) and \
                time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.1)
        assert _cpus_free() == 0 and _running_tasks(), "the sweep's tasks never ran"
        sent = time.monotonic()
        driver.send_signal(how)
        _, err = driver.communicate(timeout=60)
        stopped = time.monotonic() - sent
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, err
    assert "Traceback" not in err and "interrupted: 0 run(s) finished" in err, err
    assert stopped < 30, f"the driver took {stopped:.0f} s to stop"
    deadline = time.monotonic() + 30
    while (_running_tasks() or _cpus_free() < total) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _running_tasks() == [] and _cpus_free() == total
    assert not any((tmp_path / "store").glob(f"*/{PROFILES_FILE}"))
