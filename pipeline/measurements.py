"""Make and store the measurements a run's declarations ask beyond its profiles.

`pipeline.experiments.run_measurements(spec)` says which (the AutoAttack
gap, the corollary's paired rot90 attack, the quoted-number PGD-40 runs);
this module makes each through the one measurement path, `empirics.evaluate`,
and stores it atomically beside profiles.json as `measure-<name>.json`:

    {"key", "measurement": the declaration, "result": Evaluation.to_dict()
     or the rot90 outcome, "seconds", "provenance"}

- `add_measurements(spec, store, model, device, options)`: make every
  declared measurement the run folder lacks (the run executor calls it after
  the profiles, under the run's lock; `pipeline.make` calls it for runs
  trained before a measurement was declared).
- `missing(spec, store)`: the declared measurements not stored yet.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from core.io import atomic_write_json, provenance
from empirics.data import DATASETS, ImageData, test_subset
from empirics.evaluate import evaluate, interior, paired_rot90
from pipeline.experiments import Measurement, run_measurements


def current(path: Path, m: Measurement) -> bool:
    """Whether `path` holds a readable record of exactly the declaration `m`
    (a record of an older declaration, e.g. another AutoAttack, is not)."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(stored, dict) and stored.get("measurement") == m.to_dict()


def missing(spec, store) -> tuple[Measurement, ...]:
    """The measurements declared for `spec` that its run folder lacks or holds
    only from another declaration."""
    folder = store.run_dir(spec)
    return tuple(m for m in run_measurements(spec) if not current(folder / m.file, m))


def points(spec, m: Measurement, data_dir=None, download: bool = False):
    """The test points of measurement `m` of run `spec` (see `Measurement`)."""
    subset = test_subset(spec.train.dataset, m.n_test or spec.n_test, spec.profile_seed,
                         data_dir, download)
    if m.points is None:
        return subset
    if m.pick == "first":
        k = min(m.points, len(subset))
        return ImageData(subset.images[:k], subset.labels[:k], subset.name)
    return subset.subset(min(m.points, len(subset)), seed=spec.profile_seed)


def measure(spec, m: Measurement, model, data_dir=None, download: bool = False,
            progress: bool = False) -> dict:
    """The result of measurement `m` on `model` (the trained model of `spec`)."""
    data = points(spec, m, data_dir, download)
    if m.attack == "rot90":
        images = interior(data.images) if m.images == "interior" else data.images
        return paired_rot90(model, images, m.epsilons, steps=m.steps).to_dict()
    classes = DATASETS[spec.train.dataset].num_classes
    return evaluate(model, data.images, data.labels, m.epsilons, attack=m.attack, steps=m.steps,
                    thetas=None, seed=spec.profile_seed, num_classes=classes,
                    dataset=spec.train.dataset, progress=progress).to_dict()


def add_measurements(spec, store, model, options) -> list[Path]:
    """Make and store every declared measurement of `spec` that its run
    folder lacks (the caller holds the run's lock). options: data_dir,
    download, progress (`pipeline.sweep.RunOptions`)."""
    written = []
    for m in missing(spec, store):
        start = time.perf_counter()
        result = measure(spec, m, model, options.data_dir, options.download, options.progress)
        path = store.run_dir(spec) / m.file
        atomic_write_json(path, {"key": spec.key, "measurement": m.to_dict(), "result": result,
                                 "seconds": time.perf_counter() - start,
                                 "provenance": provenance()})
        written.append(path)
    return written
