"""Execute a sweep of declared runs into a run store: locally or on Ray.

- ``execute_run(spec, store_root, ...)`` is one unit of work: train the
  run's config into its store folder (resuming from its last checkpoint),
  then measure its invariance and robustness profiles on the test subset
  and store them (the write that marks the run done). Already-done runs
  return at once.
- ``run_sweep(specs, store, jobs=..., ray_address=None, ...)`` runs every
  spec that is not done. Locally: in this process when ``jobs == 1``, else
  a pool of ``jobs`` worker processes, one run per worker at a time; the
  workers die with the sweep process (``PR_SET_PDEATHSIG`` on Linux, and a
  watchdog thread that exits when the parent is gone). Every run, however
  scheduled, uses ``empirics.train.TRAIN_THREADS`` torch intra-op threads,
  so its result does not depend on ``jobs``. With ``ray_address``
  (``"auto"``, ``"ray://host:10001"``, or ``"local"`` to start a Ray
  instance on this machine): one Ray task per run asking for
  ``num_gpus=gpus_per_run``; tasks write to ``store.root``, which must be on
  a file system shared by every node, and the cluster's Python must have
  this package installed.

Killing a sweep at any moment loses at most the epoch each run was in:
training checkpoints every epoch and the next sweep resumes from there.
One writer per store run: ``execute_run`` holds ``core.lock.RunLock`` on the
run's folder for training and profiles; a second sweep gets a UsageError
for that run, and a lock left by a killed sweep is taken over.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from multiprocessing import get_context
from typing import Callable

from tqdm.auto import tqdm

from core import validate
from core.device import pick_device
from core.errors import UsageError
from core.lock import RunLock
from empirics.data import ImageData, test_subset
from empirics.models.registry import relative_cost
from empirics.profiles import measure
from empirics.train import TRAIN_THREADS, intra_op_threads, load_model, train
from empirics.train.folder import remove_leftovers
from pipeline.runstore import METRICS_FILE, PROFILES_FILE, SPEC_FILE, RunStore


@dataclass(frozen=True)
class RunOptions:
    """How to execute runs (never part of a run's identity)."""

    data_dir: str | None = None
    download: bool = False
    device: str | None = None  # None: core.device.pick_device()
    progress: bool = True

    def quiet(self) -> "RunOptions":
        """The same options for a worker: no progress bars."""
        return replace(self, progress=False)


def test_data(spec, data_dir: str | None = None, download: bool = False) -> ImageData:
    """The test images a run's profiles are measured on: a stratified subset
    of `spec.n_test` test images drawn with `spec.profile_seed`."""
    return test_subset(spec.train.dataset, spec.n_test, spec.profile_seed, data_dir, download)


def execute_run(spec, store_root: str, options: RunOptions = RunOptions()) -> str:
    """Train (or resume) and profile one run into the store; return its key."""
    store = RunStore(store_root)
    if store.is_done(spec):
        return spec.key
    with RunLock(store.run_dir(spec), what=f"run {spec.key} in {store.root}"), \
            intra_op_threads(TRAIN_THREADS):
        if store.is_done(spec):  # finished by another sweep meanwhile
            return spec.key
        remove_leftovers(store.run_dir(spec), (SPEC_FILE, PROFILES_FILE))
        start, cpu_start = time.perf_counter(), time.process_time()
        device = pick_device(options.device)
        folder = store.prepare(spec)
        config = replace(spec.train, data_dir=options.data_dir)  # data_dir is not in the key
        train(config, folder, resume=True, device=device, progress=options.progress,
              download=options.download)
        model, _ = load_model(folder, device=device)
        test = test_data(spec, options.data_dir, options.download)
        invariance, robustness = measure(model, test.images, test.labels, spec.thetas,
                                         spec.epsilons, spec.pgd_steps, spec.test_rotations,
                                         seed=spec.profile_seed, device=device,
                                         progress=options.progress)
        store.save_profiles(spec, invariance, robustness, time.perf_counter() - start,
                            time.process_time() - cpu_start)
    return spec.key


RunFn = Callable[..., str]  # run_fn(spec, store_root, options) -> key

# Runs sharing one GPU by default: on an H200, four StdCNN trainings at once
# gave 3x the throughput of one (issue 11). Every run uses the default device
# (cuda:0), so the runs share that GPU.
RUNS_PER_GPU = 4


def default_jobs(device=None) -> int:
    """Runs to train at once when --jobs is not given: RUNS_PER_GPU when the
    runs go to a CUDA device, else min(2, CPU cores) (each run uses the fixed
    TRAIN_THREADS intra-op threads)."""
    device = pick_device(device)
    if device.type == "cuda":
        return RUNS_PER_GPU
    return max(1, min(2, os.cpu_count() or 1))


def run_sweep(specs, store: RunStore, jobs: int = 1, ray_address: str | None = None,
              gpus_per_run: float = 0.0, options: RunOptions = RunOptions(),
              run_fn: RunFn = execute_run) -> list[str]:
    """Execute every spec of `specs` missing from `store`; return the keys run."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"`jobs` must be a positive integer, got {jobs!r}")
    if not gpus_per_run >= 0:
        raise ValueError(f"`gpus_per_run` must be >= 0, got {gpus_per_run!r}")
    todo = store.missing(specs)
    if not todo:
        return []
    root = str(store.root)
    if ray_address is not None:
        return _run_ray(todo, root, ray_address, gpus_per_run, options, run_fn)
    if jobs == 1:
        return _run_inline(todo, root, options, run_fn)
    return _run_pool(todo, root, jobs, options, run_fn)


def estimated_cost(spec) -> float:
    """Relative cost of a run: training passes plus profile attack passes."""
    t = spec.train
    attacked = t.adv_eps > 0 or t.curriculum is not None
    n_train = t.train_subset or 4000
    passes = t.epochs * n_train * (1 + (t.adv_steps if attacked else 0))
    profile = spec.n_test * spec.pgd_steps * len(spec.epsilons) / 4
    return relative_cost(t.model) * (passes + profile)


def by_cost(specs) -> list:
    """`specs` with the most expensive first (shortest makespan in a pool)."""
    return sorted(specs, key=estimated_cost, reverse=True)


def _report(bar, spec, root: str) -> None:
    """Name the run just finished (and its wall time) on the sweep bar, or as a
    plain line when there is no bar (a log file, not a terminal)."""
    bar.update(1)
    line = f"done {spec.key} {spec.describe()}"
    try:
        seconds = json.loads((RunStore(root).run_dir(spec) / PROFILES_FILE).read_text())["seconds"]
        line += f" in {seconds:.0f} s"
    except (OSError, ValueError, KeyError):  # a fake run function may store no time
        pass
    if bar.disable:
        print(line, file=sys.stderr, flush=True)
    else:
        bar.write(line, file=sys.stderr)


def _in_flight(root: str, specs) -> str:
    """'model theta/eps: epoch k/E' for each started run, read from its metrics.json."""
    parts = []
    for spec in specs:
        folder = RunStore(root).run_dir(spec)
        if not folder.is_dir():  # queued in a worker's pipe, not started
            continue
        try:
            k = len(json.loads((folder / METRICS_FILE).read_text()).get("epochs", []))
        except (OSError, ValueError, AttributeError):
            k = 0
        t = spec.train
        parts.append(f"{t.model} {t.train_rotation:g}°/ε{t.adv_eps:g}: epoch {k}/{t.epochs}")
    return "; ".join(parts)


def _run_inline(todo, root, options, run_fn) -> list[str]:
    done = []
    with tqdm(total=len(todo), desc="runs", unit="run", disable=not options.progress) as bar:
        for spec in todo:
            done.append(run_fn(spec, root, options))
            _report(bar, spec, root)
    return done


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCHDOG_SECONDS = 0.5


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(WATCHDOG_SECONDS)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(parent: int) -> None:
    """Make this (worker) process die when process `parent` does: the kernel
    sends SIGKILL on the parent's exit (Linux), and a daemon thread checks
    the parent pid every WATCHDOG_SECONDS (elsewhere, or if prctl fails)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # died before the prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watchdog",
                     daemon=True).start()


def _run_pool(todo, root, jobs, options, run_fn) -> list[str]:
    # Workers stay quiet (their bars would interleave); the sweep bar reports.
    quiet = options.quiet()
    done = []
    with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=get_context("spawn"),
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool, \
            tqdm(total=len(todo), desc="runs", unit="run", disable=not options.progress) as bar:
        specs = {pool.submit(run_fn, spec, root, quiet): spec for spec in todo}
        pending = set(specs)
        try:
            while pending:
                finished, pending = wait(pending, timeout=2.0, return_when=FIRST_COMPLETED)
                for future in finished:
                    done.append(future.result())
                    _report(bar, specs[future], root)
                if not bar.disable:
                    bar.set_postfix_str(_in_flight(root, [specs[f] for f in pending if f.running()]))
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return done


def _run_ray(todo, root, address, gpus_per_run, options, run_fn) -> list[str]:
    try:
        import ray
    except ImportError as err:
        raise ValueError("`--ray` needs the optional extra: pip install 'invrob[ray]'") from err
    if not ray.is_initialized():
        validate.ray_address(address, "--ray")  # fails within seconds when unreachable
        try:
            ray.init(address=None if address == "local" else address)
        except (ConnectionError, RuntimeError, TimeoutError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UsageError(f"`--ray` {address!r}: cannot connect ({first})") from None
    quiet = options.quiet()
    task = ray.remote(num_cpus=1, num_gpus=gpus_per_run)(run_fn)
    pending = [task.remote(spec, root, quiet) for spec in todo]
    done = []
    with tqdm(total=len(todo), desc="runs (ray)", unit="run",
              disable=not options.progress) as bar:
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            done.extend(ray.get(finished))
            bar.update(len(finished))
    return done
