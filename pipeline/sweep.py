"""Execute a sweep of declared runs into a run store: locally or on Ray.

- ``execute_run(spec, store_root, ...)`` is one unit of work: train the
  run's config into its store folder (resuming from its last checkpoint),
  then measure its invariance and robustness profiles on the test subset
  and store them (the write that marks the run done). Already-done runs
  return at once.
- ``run_sweep(specs, store, jobs=..., ray_address=None, ...)`` runs every
  spec that is not done. Locally: in this process when ``jobs == 1``, else
  a pool of ``jobs`` worker processes, one run per worker at a time, each
  with ``torch.set_num_threads(cores // jobs)``. With ``ray_address``
  (``"auto"``, ``"ray://host:10001"``, or ``"local"`` to start a Ray
  instance on this machine): one Ray task per run asking for
  ``num_gpus=gpus_per_run``; tasks write to ``store.root``, which must be on
  a file system shared by every node, and the cluster's Python must have
  this package installed.

Killing a sweep at any moment loses at most the epoch each run was in:
training checkpoints every epoch and the next sweep resumes from there.
"""
from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from multiprocessing import get_context
from typing import Callable

import torch
from tqdm.auto import tqdm

from core.device import pick_device
from empirics.data import ImageData, test_subset
from empirics.models.registry import relative_cost
from empirics.profiles import measure
from empirics.train import load_model, train
from pipeline.runstore import METRICS_FILE, PROFILES_FILE, RunStore


@dataclass(frozen=True)
class RunOptions:
    """How to execute runs (never part of a run's identity)."""

    data_dir: str | None = None
    download: bool = False
    device: str | None = None  # None: core.device.pick_device()
    progress: bool = True
    threads: int | None = None  # torch threads for the run; None: leave as is

    def quiet(self, threads: int | None = None) -> "RunOptions":
        """The same options for a worker: no progress bars, `threads` threads."""
        return replace(self, progress=False, threads=threads)


def test_data(spec, data_dir: str | None = None, download: bool = False) -> ImageData:
    """The test images a run's profiles are measured on: a stratified subset
    of `spec.n_test` test images drawn with `spec.profile_seed`."""
    return test_subset(spec.train.dataset, spec.n_test, spec.profile_seed, data_dir, download)


def execute_run(spec, store_root: str, options: RunOptions = RunOptions()) -> str:
    """Train (or resume) and profile one run into the store; return its key."""
    store = RunStore(store_root)
    if store.is_done(spec):
        return spec.key
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    device = pick_device(options.device)
    folder = store.prepare(spec)
    config = replace(spec.train, data_dir=options.data_dir)  # data_dir is not in the key
    train(config, folder, resume=True, device=device, progress=options.progress,
          download=options.download)
    model, _ = load_model(folder, device=device)
    test = test_data(spec, options.data_dir, options.download)
    invariance, robustness = measure(model, test.images, test.labels, spec.thetas, spec.epsilons,
                                     spec.pgd_steps, spec.test_rotations, seed=spec.profile_seed,
                                     device=device, progress=options.progress)
    store.save_profiles(spec, invariance, robustness, time.perf_counter() - start,
                        time.process_time() - cpu_start)
    return spec.key


RunFn = Callable[..., str]  # run_fn(spec, store_root, options) -> key


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


def threads_per_job(jobs: int) -> int:
    """CPU threads each of `jobs` concurrent runs may use."""
    return max(1, (os.cpu_count() or 1) // jobs)


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
    options = replace(options, threads=threads_per_job(1))
    done = []
    with tqdm(total=len(todo), desc="runs", unit="run", disable=not options.progress) as bar:
        for spec in todo:
            done.append(run_fn(spec, root, options))
            _report(bar, spec, root)
    return done


def _run_pool(todo, root, jobs, options, run_fn) -> list[str]:
    # Workers stay quiet (their bars would interleave); the sweep bar reports.
    quiet = options.quiet(threads=threads_per_job(jobs))
    done = []
    with ProcessPoolExecutor(max_workers=min(jobs, len(todo)),
                             mp_context=get_context("spawn")) as pool, \
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
        ray.init(address=None if address == "local" else address)
    quiet = options.quiet()  # the cluster's scheduler sets the threads
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
