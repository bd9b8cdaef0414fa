"""Execute a sweep of declared runs into a run store: locally or on Ray.

- ``execute_run(spec, store_root, options)`` is one unit of work: train the
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
  (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``, or ``"local"`` to
  start a Ray instance on this machine): one Ray task per run
  (``pipeline.ray_executor``); the tasks return the runs' records and this
  process writes them into ``store``, so no node needs to see it.

Stopping: Ctrl-C or SIGTERM stops a sweep within seconds. Finished runs
stay stored; a run in progress loses at most the epoch it was in (training
checkpoints every epoch and the next sweep resumes from there). The sweep
prints one line and raises ``SweepInterrupted`` (a SystemExit, status 130):
no traceback. The pool's workers ignore the terminal's SIGINT and are killed
by the sweep; killing the sweep itself (SIGKILL) kills them too.

One writer per store run: ``execute_run`` holds ``core.lock.RunLock`` on the
run's folder for training and profiles. A run that another live sweep holds
raises ``RunHeld``; the sweep skips it, goes on with the others and names it
at the end. A lock left by a killed sweep is taken over.
"""
from __future__ import annotations

import ctypes
import json
import os
import socket
import signal
import sys
import threading
import time
from contextlib import contextmanager
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
from pipeline.experiments import run_measurements
from pipeline.measurements import add_measurements
from pipeline.runstore import METRICS_FILE, PROFILES_FILE, SPEC_FILE, RunStore


@dataclass(frozen=True)
class RunOptions:
    """How to execute runs (never part of a run's identity)."""

    data_dir: str | None = None
    download: bool = False
    device: str | None = None  # None: core.device.pick_device()
    progress: bool = True
    checkpoint_storage: str | None = None  # Ray only: where tasks keep checkpoints
    executor: str = "local"  # "local" or "ray": recorded in each run's provenance
    gpus_per_run: float = 0.0  # what a Ray task asks for: recorded in provenance
    # Train the runs without an attack channels-last (1.3-1.5x faster on a
    # CPU; weights equal to float rounding): recorded in provenance.
    channels_last: bool = False

    def quiet(self) -> "RunOptions":
        """The same options for a worker: no progress bars."""
        return replace(self, progress=False)


def test_data(spec, data_dir: str | None = None, download: bool = False) -> ImageData:
    """The test images a run's profiles are measured on: a stratified subset
    of `spec.n_test` test images drawn with `spec.profile_seed`."""
    return test_subset(spec.train.dataset, spec.n_test, spec.profile_seed, data_dir, download)


class RunHeld(UsageError):
    """Another live process (another sweep) is writing this run."""


@contextmanager
def holding(folder, what: str):
    """Hold the RunLock of `folder`; RunHeld when another live process holds it."""
    lock = RunLock(folder, what=what)
    try:
        lock.acquire()
    except UsageError as err:
        try:
            lock.check()
        except UsageError:
            raise RunHeld(str(err)) from None
        raise
    try:
        yield lock
    finally:
        lock.release()


CHANNELS_LAST_HELP = ("train the runs without an attack channels-last: 1.3-1.5x faster on a "
                      "CPU, weights equal to float rounding rather than bit for bit; recorded "
                      "in each run's provenance (runs with an attack always train as declared)")


def channels_last_for(config, options: RunOptions) -> bool:
    """Whether `config` trains channels-last under `options`: only a run
    without an attack may (`empirics.train.train` says why)."""
    return options.channels_last and not config.attacked


def execution(options: RunOptions, device, channels_last: bool = False) -> dict:
    """How a run was executed, for its provenance (never part of its key)."""
    return {"executor": options.executor, "host": socket.gethostname(), "device": str(device),
            "threads": TRAIN_THREADS, "cpus_per_run": TRAIN_THREADS,
            "gpus_per_run": float(options.gpus_per_run), "channels_last": channels_last}


def execute_run(spec, store_root: str, options: RunOptions = RunOptions()) -> str:
    """Train (or resume) and profile one run into the store; return its key.
    RunHeld when another live sweep is writing the run."""
    store = RunStore(store_root)
    if store.is_done(spec):
        return spec.key
    with holding(store.run_dir(spec), f"run {spec.key} in {store.root}"), \
            intra_op_threads(TRAIN_THREADS):
        if store.is_done(spec):  # finished by another sweep meanwhile
            return spec.key
        remove_leftovers(store.run_dir(spec), (SPEC_FILE, PROFILES_FILE))
        start, cpu_start = time.perf_counter(), time.process_time()
        device = pick_device(options.device)
        folder = store.prepare(spec)
        config = replace(spec.train, data_dir=options.data_dir)  # data_dir is not in the key
        nhwc = channels_last_for(config, options)
        train(config, folder, resume=True, device=device, progress=options.progress,
              download=options.download, channels_last=nhwc)
        model, _ = load_model(folder, device=device)
        test = test_data(spec, options.data_dir, options.download)
        invariance, robustness = measure(model, test.images, test.labels, spec.thetas,
                                         spec.epsilons, spec.pgd_steps, spec.test_rotations,
                                         seed=spec.profile_seed, device=device,
                                         progress=options.progress)
        store.save_profiles(spec, invariance, robustness, time.perf_counter() - start,
                            time.process_time() - cpu_start,
                            execution=execution(options, device, nhwc))
        add_measurements(spec, store, model, options)  # the declared measurements beyond profiles
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


class SweepInterrupted(SystemExit):
    """Ctrl-C or SIGTERM stopped a sweep (exit status 130; the sweep has
    already said what is stored and what resumes)."""


INTERRUPTED_STATUS = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def run_sweep(specs, store: RunStore, jobs: int = 1, ray_address: str | None = None,
              gpus_per_run: float = 0.0, options: RunOptions = RunOptions(),
              run_fn: RunFn = execute_run) -> list[str]:
    """Execute every spec of `specs` missing from `store`; return the keys run.
    Runs another live sweep holds are skipped and named on stderr at the end."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"`jobs` must be a positive integer, got {jobs!r}")
    if not gpus_per_run >= 0:
        raise ValueError(f"`gpus_per_run` must be >= 0, got {gpus_per_run!r}")
    if options.checkpoint_storage is not None and ray_address is None:
        raise UsageError("`--checkpoint-storage` applies to Ray sweeps only (local runs "
                         "checkpoint into --store); add --ray ADDRESS")
    todo = store.missing(specs)
    if not todo:
        return []
    root = str(store.root)
    done, held, interrupted = [], [], False
    try:
        with stop_on_sigterm():
            if ray_address is not None:
                _run_ray(todo, store, ray_address, gpus_per_run, options, run_fn, done, held)
            elif jobs == 1:
                _run_inline(todo, root, options, run_fn, done, held)
            else:
                _run_pool(todo, root, jobs, options, run_fn, done, held)
    except KeyboardInterrupt:
        interrupted = True  # raised below, so that the interrupt's frames (a pool) are freed
    finally:
        _report_held(held)
    if interrupted:
        left = len(todo) - len(done) - len(held)
        print(f"interrupted: {len(done)} run(s) finished and stored in {root}; {left} not "
              "finished, the next sweep resumes them from their last finished epoch",
              file=sys.stderr, flush=True)
        raise SweepInterrupted(INTERRUPTED_STATUS)
    return done


def _report_held(held: list[str]) -> None:
    if held:
        print(f"skipped {len(held)} run(s) that another sweep is writing; run this sweep again "
              "once it has finished:", file=sys.stderr)
        for line in held:
            print(f"  {line.split('; wait for it')[0]}", file=sys.stderr, flush=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextmanager
def stop_on_sigterm():
    """While a sweep runs in the main thread, SIGTERM stops it as Ctrl-C does
    (raises KeyboardInterrupt); the previous handler comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# Forward-backward passes per (point, eps) of the standard AutoAttack: on one CPU thread it
# took 212 s and 112 s for 100 points x 2 eps on the quick StdCNNs at A = 0 / 180, where
# 10 epochs on 4,000 images took about 21 s (40,000 passes).
AUTOATTACK_PASSES = 1200


def measurement_cost(m, n_test: int) -> float:
    """Passes of a declared measurement (`pipeline.experiments.Measurement`)
    of a run whose profiles use `n_test` test images."""
    points = m.points or m.n_test or n_test
    per_eps = AUTOATTACK_PASSES if m.attack == "autoattack" else m.steps
    return points * len(m.epsilons) * per_eps


def estimated_cost(spec) -> float:
    """Relative cost of a run: training passes, profile attack passes and
    the passes of its declared measurements (so that a sweep starts the runs
    that carry AutoAttack first and no core idles at its end)."""
    t = spec.train
    n_train = t.train_subset or 4000
    passes = t.epochs * n_train * (1 + (t.adv_steps if t.attacked else 0))
    profile = spec.n_test * spec.pgd_steps * len(spec.epsilons) / 4
    extra = sum(measurement_cost(m, spec.n_test) for m in run_measurements(spec))
    return relative_cost(t.model) * (passes + profile + extra)


def by_cost(specs) -> list:
    """`specs` with the most expensive first (shortest makespan in a pool)."""
    return sorted(specs, key=estimated_cost, reverse=True)


def _report(bar, spec, root: str, node: str | None = None) -> None:
    """Name the run just finished (its wall time, and its node on Ray) on the
    sweep bar, or as a plain line when there is no bar (a log file, not a terminal)."""
    bar.update(1)
    line = f"done {spec.key} {spec.describe()}"
    try:
        seconds = json.loads((RunStore(root).run_dir(spec) / PROFILES_FILE).read_text())["seconds"]
        line += f" in {seconds:.0f} s"
    except (OSError, ValueError, KeyError):  # a fake run function may store no time
        pass
    if node:
        line += f" on {node}"
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


def _run_inline(todo, root, options, run_fn, done, held) -> None:
    with tqdm(total=len(todo), desc="runs", unit="run", disable=not options.progress) as bar:
        for spec in todo:
            try:
                done.append(run_fn(spec, root, options))
            except RunHeld as err:
                held.append(str(err))
                continue
            _report(bar, spec, root)


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


def _worker_start(parent: int) -> None:
    """A pool worker: dies with the sweep; leaves Ctrl-C to it (a terminal
    sends SIGINT to the whole process group, and the sweep stops the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's workers now and reap them: an interrupted run resumes
    from its last checkpoint (every write is atomic; its lock is taken over)."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.kill()
    for process in workers:
        process.join(timeout=5)
    pool.shutdown(wait=True)  # its workers are gone: this reaps its queues at once


def _run_pool(todo, root, jobs, options, run_fn, done, held) -> None:
    # Workers stay quiet (their bars would interleave); the sweep bar reports.
    quiet = options.quiet()
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=get_context("spawn"),
                               initializer=_worker_start, initargs=(os.getpid(),))
    try:
        with tqdm(total=len(todo), desc="runs", unit="run", disable=not options.progress) as bar:
            specs = {pool.submit(run_fn, spec, root, quiet): spec for spec in todo}
            pending = set(specs)
            try:
                while pending:
                    finished, pending = wait(pending, timeout=2.0, return_when=FIRST_COMPLETED)
                    for future in finished:
                        try:
                            done.append(future.result())
                        except RunHeld as err:
                            held.append(str(err))
                            continue
                        _report(bar, specs[future], root)
                    if not bar.disable:
                        bar.set_postfix_str(_in_flight(root, [specs[f] for f in pending
                                                              if f.running()]))
            except Exception:  # a run failed: the others finish the run they are in
                for future in pending:
                    future.cancel()
                raise
    except KeyboardInterrupt:
        _stop_workers(pool)
        raise
    pool.shutdown(wait=True)


def _run_ray(todo, store, address, gpus_per_run, options, run_fn, done, held) -> None:
    try:  # local: ray is an optional extra, and importing it takes seconds
        from pipeline import ray_executor
    except ImportError as err:
        raise UsageError("`--ray` needs the optional extra: pip install 'invrob[ray]'") from err
    free = []
    for spec in todo:  # runs a local sweep is writing now are not sent to the cluster
        try:
            RunLock(store.run_dir(spec), what=f"run {spec.key} in {store.root}").check()
            free.append(spec)
        except UsageError as err:
            held.append(str(err))
    def finished(bar, spec, node):
        done.append(spec.key)
        _report(bar, spec, str(store.root), node)

    if free:
        ray_executor.run_on_ray(free, store, address, gpus_per_run, options, run_fn,
                                finished, held)
