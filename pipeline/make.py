"""Make what is missing: the one owner of "the results these declarations need".

Both `paper_figures` (which draws) and `verify` (which judges) ask here and
never train or measure by themselves:

- `available(fig, data_dir, download)`: why a declaration cannot run here
  (its data set is missing), or None.
- `ready(names, scale, dataset, data_dir, download)`: the declarations of
  `names` that can run here, and why each other one cannot (what both
  `python -m paper_figures` and `python -m verify` make before they read).
- `ensure(figs, store, ...)`: train and profile every declared run the
  store lacks, make every declared measurement a trained run lacks
  (`pipeline.measurements`), and run every declared Theorem 1 check it lacks.
- `records(fig, store)`: the finished runs of a declaration (raises
  `MissingRunError` naming the first missing run and the command that makes it).
- `theorem_result(fig, store)`: the stored Theorem 1 check of a declaration.
- `model_of(record)`: a stored run's model (`NeedsCheckpoint` when the store
  holds its records only).
- `export_records(figs, store, dest)`: the small records (never checkpoints)
  copied into a results folder that plots and reports regenerate from.
- `records_digest(fig, store)`: a hash of every stored result a figure is
  drawn from, so that a drawn figure knows when it went stale;
  `is_current(fig, store, meta_path)` compares a product's record of it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from core.errors import UsageError
from core.io import atomic_write_bytes
from core.device import pick_device
from core.lock import RunLock
from empirics.data import load
from empirics.train import CHECKPOINT, TRAIN_THREADS, intra_op_threads, load_model
from pipeline import measurements
from pipeline.experiments import FigureSpec, declared, figure
from pipeline.runstore import PROFILES_FILE, MissingRunError, RunRecord, RunStore
from pipeline.sweep import RunOptions, by_cost, run_sweep
from theory.check import run_check
from theory.result import TheoremCheck


def available(fig: FigureSpec, data_dir: str | None = None, download: bool = False) -> str | None:
    """Why `fig` cannot run here (its data set is missing), or None."""
    if not fig.runs:
        return None
    try:
        load(fig.dataset, "test", data_dir, download)
    except UsageError as err:
        return str(err).splitlines()[0]
    return None


def ready(names, scale: str, dataset: str | None = None, data_dir: str | None = None,
          download: bool = False) -> tuple[list[FigureSpec], dict[str, str]]:
    """(the declarations of `names` at `scale` that can run here, {name:
    "skipped: why"} for the others: not declared at this scale, or their
    data set is missing)."""
    figs, skipped = [], {}
    for name in names:
        if not declared(name, scale):
            skipped[name] = f"skipped: not declared at scale {scale}"
            continue
        fig = figure(name, scale, dataset)
        why = available(fig, data_dir, download)
        if why is None:
            figs.append(fig)
        else:
            skipped[name] = f"skipped: {why}"
    return figs, skipped


def theory_result_path(store: RunStore, fig: FigureSpec) -> Path:
    """Where the Theorem 1 check of `fig` is stored: keyed by its whole config."""
    return store.root / f"theorem1-{fig.theory.key}.json"


def _ensure_theory(fig: FigureSpec, store: RunStore, progress: bool) -> bool:
    """Run the Theorem 1 check of `fig` into the store unless stored; True if run."""
    path = theory_result_path(store, fig)
    if path.is_file():
        return False
    run_check(fig.theory, progress=progress).save(path)
    return True


def complete(spec, store: RunStore) -> bool:
    """Whether `store` holds run `spec` finished with every measurement
    declared for it (what a results folder must hold for the run to count
    as done)."""
    return store.is_done(spec) and not measurements.missing(spec, store)


def adopt_exported(specs, store: RunStore, results: str | Path | None) -> list[str]:
    """Runs of `specs` that the results folder `results` holds finished
    (exported records) and `store` does not: their records are copied into
    the store, so that a sweep on a fresh clone continues where the exported
    one stopped and trains only what neither holds. A partial checkpoint the
    store kept for such a run is removed (the finished records supersede it).
    A run whose exported records lack a measurement declared since is not
    adopted: records travel without checkpoints, so only training it again
    can make that measurement.
    Returns the keys adopted; none when `results` is None or not a folder."""
    if results is None or not Path(results).is_dir() or Path(results) == Path(store.root):
        return []
    exported = RunStore(results)
    adopt = [spec for spec in dict((s.key, s) for s in store.missing(specs)).values()
             if complete(spec, exported)]
    for spec in adopt:
        store.run_dir(spec).mkdir(parents=True, exist_ok=True)
        with RunLock(store.run_dir(spec), what=f"run {spec.key} in {store.root}"):
            (store.run_dir(spec) / CHECKPOINT).unlink(missing_ok=True)
            exported.copy_records([spec], store.root)
    return [spec.key for spec in adopt]


def ensure(figs, store: RunStore, jobs: int = 1, ray: str | None = None,
           gpus_per_run: float = 0.0, options: RunOptions = RunOptions(),
           results: str | Path | None = None) -> list[str]:
    """Fill the store for every declaration in `figs` (one sweep over all
    their runs, longest first); return the keys of the runs made. Runs that
    the results folder `results` holds already count as done
    (`adopt_exported`)."""
    for fig in figs:
        if fig.theory is not None:
            _ensure_theory(fig, store, options.progress)
    adopt_exported([run for fig in figs for run in fig.runs], store, results)
    specs = by_cost([run for fig in figs for run in fig.runs])
    made = run_sweep(specs, store, jobs=jobs, ray_address=ray, gpus_per_run=gpus_per_run,
                     options=options)
    add_missing_measurements(specs, store, options)
    return made


def add_missing_measurements(specs, store: RunStore, options: RunOptions = RunOptions()) -> list:
    """Make every declared measurement that a finished run of `specs` lacks,
    from its checkpoint, under the run's lock: runs trained before a
    measurement was declared gain it without retraining. A run whose
    checkpoint is absent (records only) is left as it is; its readers say
    what is missing. Returns the files written."""
    written = []
    for spec in dict((s.key, s) for s in specs).values():
        folder = store.run_dir(spec)
        if (not store.is_done(spec) or not (folder / CHECKPOINT).is_file()
                or not measurements.missing(spec, store)):
            continue
        with RunLock(folder, what=f"run {spec.key} in {store.root}"), \
                intra_op_threads(TRAIN_THREADS):
            model = load_model(folder, device=pick_device(options.device))[0]
            written += measurements.add_measurements(spec, store, model, options)
    return written


def records(fig: FigureSpec, store: RunStore) -> list[RunRecord]:
    """Every finished run of `fig`, in declaration order."""
    missing = store.missing(fig.runs)
    if missing:
        raise MissingRunError(
            f"{fig.name} ({fig.scale}): {len(missing)} of {len(fig.runs)} runs missing from "
            f"{store.root} (first: {missing[0].key} {missing[0].describe()}); run "
            f"`python -m paper_figures run {fig.name} --scale {fig.scale}` first")
    return [store.load(run) for run in fig.runs]


def theorem_result(fig: FigureSpec, store: RunStore) -> TheoremCheck:
    """The stored Theorem 1 check of `fig`."""
    path = theory_result_path(store, fig)
    if not path.is_file():
        raise MissingRunError(f"theorem1 ({fig.scale}): no stored check result in {store.root}; "
                              f"run `python -m paper_figures run theorem1 --scale {fig.scale}`")
    try:
        return TheoremCheck.load(path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"corrupt Theorem 1 result {path}: {type(err).__name__}") from None


class NeedsCheckpoint(MissingRunError):
    """The store holds a run's records but not its checkpoint (a results
    folder that travelled without them): what needs the model cannot run."""


def model_of(record: RunRecord, device=None):
    """The trained model of a stored run, in eval mode."""
    if not (record.run_dir / CHECKPOINT).is_file():
        raise NeedsCheckpoint(f"run {record.spec.key} has records but no checkpoint in "
                              f"{record.run_dir.parent} (a records-only results folder)")
    return load_model(record.run_dir, device=device)[0]


def records_digest(fig: FigureSpec, store: RunStore) -> str:
    """sha256 (16 hex digits) over every stored result `fig` is drawn from:
    each run's profiles.json, or the Theorem 1 result file."""
    h = hashlib.sha256()
    paths = ([theory_result_path(store, fig)] if fig.theory is not None
             else [store.run_dir(run) / PROFILES_FILE for run in fig.runs])
    for path in paths:
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()[:16]


def export_records(figs, store: RunStore, dest: str | Path, partial: bool = False) -> list[Path]:
    """Copy everything `figs` are drawn and judged from, without checkpoints,
    into the store `dest` (a results folder to commit): every run's small
    records and every Theorem 1 result. Returns the files written.
    `partial`: copy the finished runs only (a sweep still going: its records
    are committed as they finish) instead of refusing while any is missing."""
    written = []
    for fig in figs:
        runs = fig.runs
        if partial:
            missing = {s.key for s in store.missing(runs)}
            runs = tuple(r for r in runs if r.key not in missing)
        written += store.copy_records(runs, dest)
        if fig.theory is not None:
            src = theory_result_path(store, fig)
            if partial and not src.is_file():
                continue
            if not src.is_file():
                theorem_result(fig, store)  # raises MissingRunError naming the command
            target = Path(dest) / src.name
            atomic_write_bytes(target, src.read_bytes())
            written.append(target)
    return written


def is_current(fig: FigureSpec, store: RunStore, meta_path: str | Path) -> bool:
    """True when the JSON at `meta_path` (written next to a product drawn
    from `fig`, such as a figure) names exactly `fig`'s runs and the digest
    of the records the store holds for them now."""
    try:
        meta = json.loads(Path(meta_path).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(meta, dict) and meta.get("run_keys") == list(fig.keys)
            and meta.get("records_digest") == records_digest(fig, store))
