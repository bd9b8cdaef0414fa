"""Make what is missing: the one owner of "the results these declarations need".

Both `paper_figures` (which draws) and `verify` (which judges) ask here and
never train or measure by themselves:

- `available(fig, data_dir, download)`: why a declaration cannot run here
  (its data set is missing), or None.
- `ensure(figs, store, ...)`: train and profile every declared run the
  store lacks, and run every declared Theorem 1 check it lacks.
- `records(fig, store)`: the finished runs of a declaration (raises
  `MissingRunError` naming the first missing run and the command that makes it).
- `theorem_result(fig, store)`: the stored Theorem 1 check of a declaration.
- `test_data(spec, data_dir)`: the test images a run's profiles were measured on
  (defined next to the sweep that measures them).
- `model_of(record)`: a stored run's model (`NeedsCheckpoint` when the store
  holds its records only).
- `remeasure_pgd(record, epsilons, steps, data_dir)`: a fresh robustness
  profile of a stored run on those same images (the quoted numbers).
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
from empirics.data import load
from empirics.profiles import RobustnessProfile, robustness_profile
from empirics.train import CHECKPOINT, load_model
from pipeline.experiments import FigureSpec
from pipeline.runstore import PROFILES_FILE, MissingRunError, RunRecord, RunStore
from pipeline.sweep import RunOptions, by_cost, run_sweep, test_data
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


def ensure(figs, store: RunStore, jobs: int = 1, ray: str | None = None,
           gpus_per_run: float = 0.0, options: RunOptions = RunOptions()) -> list[str]:
    """Fill the store for every declaration in `figs` (one sweep over all
    their runs, longest first); return the keys of the runs made."""
    for fig in figs:
        if fig.theory is not None:
            _ensure_theory(fig, store, options.progress)
    specs = by_cost([run for fig in figs for run in fig.runs])
    return run_sweep(specs, store, jobs=jobs, ray_address=ray, gpus_per_run=gpus_per_run,
                     options=options)


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


def remeasure_pgd(record: RunRecord, epsilons, steps: int = 40, data_dir: str | None = None,
                  device=None, progress: bool = False) -> RobustnessProfile:
    """A fresh robustness profile (B = 0) of a stored run at `epsilons`,
    on the very test images its stored profiles used."""
    model = model_of(record, device)
    test = test_data(record.spec, data_dir)
    return robustness_profile(model, test.images, test.labels, sorted(set(epsilons)),
                              steps=steps, seed=record.spec.profile_seed, device=device,
                              progress=progress)


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


def export_records(figs, store: RunStore, dest: str | Path) -> list[Path]:
    """Copy everything `figs` are drawn and judged from, without checkpoints,
    into the store `dest` (a results folder to commit): every run's small
    records and every Theorem 1 result. Returns the files written."""
    written = []
    for fig in figs:
        written += store.copy_records(fig.runs, dest)
        if fig.theory is not None:
            src = theory_result_path(store, fig)
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
