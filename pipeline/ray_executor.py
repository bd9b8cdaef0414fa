"""A sweep on a Ray cluster: one task per run, records back through Ray.

No node needs to see the driver's run store. A task trains and measures its
run in a store of its own node (``$INVROB_WORKER_STORE``, default
``<tmp>/invrob-worker-store``), then returns the run's small records (every
file ``RunStore.copy_records`` exports: spec, config, metrics, profiles and
the other measurements; never the checkpoint) as bytes. The driver writes
them into its store under the run's lock, atomically file by file and the
file that marks a run done last, exactly where a local run would have.

- Checkpoints stay on the worker's node unless a checkpoint storage is
  named (``pipeline.checkpoint_storage``): then a task copies its training
  state there after every epoch and fetches it before it starts, so a task
  retried on another node resumes from its last finished epoch.
- A task whose worker or node dies is retried up to ``MAX_RETRIES`` times
  (Ray's ``max_retries``); runs are keyed by their config, so a retry
  repeats the same run and the driver writes its records once.
- KeyboardInterrupt (Ctrl-C; the sweep turns SIGTERM into one) cancels every
  task still queued or running (``ray.cancel``) and waits until they have
  ended; records already returned are written first.
- Each task asks for ``CPUS_PER_RUN`` CPUs and ``gpus_per_run`` GPUs and
  trains on ``empirics.train.TRAIN_THREADS`` threads, whatever node runs
  it; both are in the run's provenance (``profiles.json``).
- Progress: a small actor collects which node runs what and at which epoch;
  the sweep bar shows runs done and in flight, node by node.

This module imports ray at its top; `pipeline.sweep` imports it only when a
sweep runs with a Ray address (ray is an optional extra).
"""
from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import ray
from tqdm.auto import tqdm

from core import validate
from core.errors import UsageError
from core.io import atomic_write_bytes
from core.lock import RunLock
from empirics.train import CHECKPOINT, METRICS, TRAIN_THREADS
from empirics.train.folder import remove_leftovers
from pipeline import checkpoint_storage
from pipeline.runstore import PROFILES_FILE, RunStore
from pipeline.sweep import RunHeld, holding, stop_on_sigterm

MAX_RETRIES = 3  # a task survives this many lost workers or nodes
CPUS_PER_RUN = TRAIN_THREADS  # a task's CPUs: the intra-op threads every run trains on
WORKER_STORE_ENV = "INVROB_WORKER_STORE"
WATCH_SECONDS = 0.5  # how often a task looks for a new checkpoint
CANCEL_WAIT_SECONDS = 30.0  # how long the driver waits for cancelled tasks to end


@dataclass(frozen=True)
class RunRecords:
    """What a task returns: its run's record files (relative path, bytes)
    and the node that made them."""

    key: str
    files: tuple[tuple[str, bytes], ...]
    node: str


def node_name() -> str:
    """This node as the progress bar names it: host and the start of Ray's node id."""
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    return f"{socket.gethostname()}:{node[:6]}" if node else socket.gethostname()


def worker_store() -> Path:
    """The run store of the node a task runs on."""
    return Path(os.environ.get(WORKER_STORE_ENV) or
                os.path.join(tempfile.gettempdir(), "invrob-worker-store"))


def gather_records(store: RunStore, spec) -> tuple[tuple[str, bytes], ...]:
    """Every record file `store.copy_records` exports for the finished `spec`."""
    with tempfile.TemporaryDirectory(prefix="invrob-records-") as tmp:
        store.copy_records([spec], tmp)
        folder = RunStore(tmp).run_dir(spec)
        return tuple((p.relative_to(folder).as_posix(), p.read_bytes())
                     for p in sorted(folder.rglob("*")) if p.is_file())


# ------------------------------------------------------------------ task side
@ray.remote(num_cpus=0)
class ProgressBoard:
    """Which node runs which run, at which epoch (written by tasks, read by the driver)."""

    def __init__(self):
        self.running: dict[str, tuple[str, int]] = {}

    def started(self, key: str, node: str) -> None:
        self.running[key] = (node, 0)

    def epoch(self, key: str, node: str, epoch: int) -> None:
        self.running[key] = (node, epoch)

    def ended(self, key: str) -> None:
        self.running.pop(key, None)

    def snapshot(self) -> dict[str, tuple[str, int]]:
        return dict(self.running)


class RunWatcher:
    """While a run trains: copy each new checkpoint to the storage (if any)
    and tell the progress board (if any) the run's epoch."""

    def __init__(self, key: str, folder: Path, storage=None, board=None):
        self.key, self.folder, self.storage, self.board = key, folder, storage, board
        self.node = node_name()
        self._seen = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-watcher", daemon=True)

    def _signature(self):
        try:
            st = (self.folder / CHECKPOINT).stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def poll(self) -> None:
        seen = self._signature()
        if seen is None or seen == self._seen:
            return
        self._seen = seen
        if self.storage is not None:
            checkpoint_storage.save_state(self.storage, self.key, self.folder)
        if self.board is not None:
            self.board.epoch.remote(self.key, self.node, _epochs_done(self.folder))

    def _loop(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            self.poll()

    def __enter__(self) -> "RunWatcher":
        if self.board is not None:
            self.board.started.remote(self.key, self.node)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()  # the last epoch's checkpoint, also when the run failed after it
        if self.board is not None:
            self.board.ended.remote(self.key)


def _epochs_done(folder: Path) -> int:
    try:
        return len(json.loads((folder / METRICS).read_text()).get("epochs", []))
    except (OSError, ValueError, AttributeError):
        return 0


def run_task(spec, options, run_fn, board=None) -> RunRecords:
    """The body of one Ray task: make the run in this node's store (resuming
    from the checkpoint storage when it is further along) and return its records."""
    store = RunStore(worker_store())
    folder = store.run_dir(spec)
    storage = (checkpoint_storage.open_storage(options.checkpoint_storage)
               if options.checkpoint_storage else None)
    if not store.is_done(spec):
        with RunLock(folder, what=f"run {spec.key} in {store.root}"):  # run_fn re-enters it
            if storage is not None:
                checkpoint_storage.restore_state(storage, spec.key, folder)
            with RunWatcher(spec.key, folder, storage, board):
                run_fn(spec, str(store.root), options)
    return RunRecords(spec.key, gather_records(store, spec), node_name())


# ---------------------------------------------------------------- driver side
def write_records(store: RunStore, spec, files) -> None:
    """Write a run's returned record files into `store` under the run's lock,
    each atomically, profiles (the done marker) last; a checkpoint of an
    earlier, unfinished local attempt is removed (it does not belong to
    these records). RunHeld when another live process holds the run."""
    files = dict(files)
    for name in files:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise UsageError(f"run {spec.key}: a task returned the record path {name!r}")
    if PROFILES_FILE not in files:
        raise UsageError(f"run {spec.key}: a task returned no {PROFILES_FILE}")
    folder = store.run_dir(spec)
    with holding(folder, f"run {spec.key} in {store.root}"):
        if store.is_done(spec):  # made meanwhile by another sweep: keep it
            return
        remove_leftovers(folder, tuple(PurePosixPath(n).name for n in files))
        (folder / CHECKPOINT).unlink(missing_ok=True)
        for name in sorted(files, key=lambda n: n == PROFILES_FILE):
            atomic_write_bytes(folder / name, files[name])


def connect(address: str) -> bool:
    """Join the Ray cluster at `address` ('local' starts one on this machine);
    True when this call started or joined it (and the sweep should leave it
    again). An unreachable address is a one-line UsageError within seconds."""
    if ray.is_initialized():
        return False
    validate.ray_address(address, "--ray")  # a socket probe: fails within seconds
    try:
        ray.init(address=None if address == "local" else address, log_to_driver=False)
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"`--ray` {address!r}: cannot connect ({first})") from None
    return True


def in_flight(running: dict, done_by_node: Counter, specs: dict) -> str:
    """The bar's postfix: per node, runs done and the runs it trains with their epoch."""
    nodes = sorted(set(done_by_node) | {node for node, _ in running.values()})
    parts = []
    for node in nodes:
        here = [f"{_label(specs[key])} {key[:6]} {epoch}/{specs[key].train.epochs}"
                for key, (where, epoch) in sorted(running.items())
                if where == node and key in specs]
        text = f"{node}: {done_by_node.get(node, 0)} done"
        parts.append(text + (f", {len(here)} running ({', '.join(here)})" if here else ""))
    return "; ".join(parts)


def _label(spec) -> str:
    t = spec.train
    return f"{t.model} {t.train_rotation:g}°/ε{t.adv_eps:g}"


def _cause(err: Exception, spec) -> Exception:
    """A task's own UsageError as one line naming the run; other errors as they are."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, UsageError):
        first = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        return UsageError(f"run {spec.key}: {first}")
    return err


def run_on_ray(todo, store: RunStore, address: str, gpus_per_run: float, options, run_fn,
               finished, held: list) -> None:
    """Run every spec of `todo` as a Ray task and write its records into
    `store`; `finished(bar, spec, node)` is called for each run stored, and
    `held` gets a message for each run another sweep holds."""
    joined = connect(address)
    try:
        with stop_on_sigterm():  # again: ray.init installs its own SIGTERM handler
            _drive(todo, store, gpus_per_run, options, run_fn, finished, held)
    finally:
        if joined:
            ray.shutdown()


def _drive(todo, store, gpus_per_run, options, run_fn, finished, held) -> None:
    task_options = replace(options.quiet(), executor="ray", gpus_per_run=gpus_per_run)
    board = ProgressBoard.remote() if options.progress else None
    task = ray.remote(run_task).options(num_cpus=CPUS_PER_RUN, num_gpus=gpus_per_run,
                                        max_retries=MAX_RETRIES, retry_exceptions=False)
    specs = {task.remote(spec, task_options, run_fn, board): spec for spec in todo}
    by_key = {spec.key: spec for spec in todo}
    pending, nodes = list(specs), Counter()

    def collect(ready, bar):
        for ref in ready:
            spec = specs[ref]
            try:
                records = ray.get(ref)
                write_records(store, spec, records.files)
            except RunHeld as err:  # a task's RayTaskError is a RunHeld too
                held.append(str(getattr(err, "cause", None) or err).splitlines()[0])
                continue
            except ray.exceptions.RayTaskError as err:
                raise _cause(err, spec) from None
            nodes[records.node] += 1
            finished(bar, spec, records.node)

    with tqdm(total=len(todo), desc="runs (ray)", unit="run",
              disable=not options.progress) as bar:
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                collect(ready, bar)
                if board is not None and not bar.disable:
                    running = ray.get(board.snapshot.remote())
                    bar.set_postfix_str(in_flight(running, nodes, by_key))
        except BaseException:
            cancel(pending, lambda ready: collect(ready, bar))
            raise


def cancel(pending, collect) -> None:
    """Keep the records of tasks that have finished, cancel the others
    (`ray.cancel`, killing their workers) and wait until they have ended."""
    if not pending:
        return
    ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0)
    try:
        collect(ready)
    except Exception as err:  # noqa: BLE001 (stopping anyway: say what is lost, keep going)
        print(f"a finished run's records could not be kept: {str(err).splitlines()[0]}",
              file=sys.stderr)
    for ref in pending:
        ray.cancel(ref, force=True, recursive=True)
    if pending:
        ray.wait(pending, num_returns=len(pending), timeout=CANCEL_WAIT_SECONDS)
