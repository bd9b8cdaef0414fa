"""A run store: one folder per declared run, named by the run's config hash.

Layout (``root`` is ``run_store/`` by default and is never committed)::

    root/<spec.key>/spec.json       the RunSpec (written when the run starts)
    root/<spec.key>/config.json     } written by empirics.train.train: the
    root/<spec.key>/checkpoint.pt   } training run folder, checkpointed
    root/<spec.key>/metrics.json    } atomically after every epoch
    root/<spec.key>/profiles.json   written atomically: the run is done
    root/<spec.key>/measure-*.json  the declared measurements beyond the
                                    profiles (pipeline.measurements)

A run is *done* exactly when ``profiles.json`` exists, parses and names the
run's key. Every file is written with ``core.io.atomic_write_*``, so an
interrupted run never leaves a half-written file that looks whole; a run
without ``profiles.json`` is resumed (``train(..., resume=True)`` continues
from the last finished epoch) and its profiles are measured again.

Ray tasks need not see the root: they return their records and the sweep
writes them here (``pipeline.ray_executor``).

API for readers (the verify layer, the figure commands)::

    store = RunStore("run_store")
    store.is_done(spec) -> bool
    store.missing(specs) -> list[RunSpec]
    store.load(spec) -> RunRecord     # raises MissingRunError if not done
    store.run_dir(spec) -> Path       # the checkpoint folder:
                                      # empirics.train.load_model(run_dir)

``RunRecord(spec, metrics, invariance, robustness, seconds, run_dir,
cpu_seconds, measurements)``:
``metrics`` is the training ``metrics.json`` as a dict, ``invariance`` an
``InvarianceProfile``, ``robustness`` a dict from test rotation B (float,
degrees; the paper's A/B legend convention) to a ``RobustnessProfile``,
``measurements`` a dict from a measurement's name to its stored record.

Records that travel (``copy_records``, ``record_files``) are the small JSON
files of a run folder, never its checkpoint, and carry no machine paths: a
string field holding an absolute path (``data_dir`` of a training config)
is written as null.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UsageError
from core.io import atomic_write_bytes, atomic_write_json, provenance
from empirics.profiles import InvarianceProfile, RobustnessProfile
from pipeline.runspec import RunSpec

DEFAULT_ROOT = "run_store"
SPEC_FILE = "spec.json"
METRICS_FILE = "metrics.json"
PROFILES_FILE = "profiles.json"
CONFIG_FILE = "config.json"
RECORD_FILES = (SPEC_FILE, CONFIG_FILE, METRICS_FILE, PROFILES_FILE)  # what results travel as
MEASUREMENT_GLOB = "measure-*.json"  # plus these (pipeline.measurements)


def record_files(folder: str | os.PathLike) -> list[Path]:
    """The small record files a run folder holds (RECORD_FILES, then every
    measurement, by name): what travels with results, never checkpoints."""
    folder = Path(folder)
    fixed = [folder / name for name in RECORD_FILES if (folder / name).is_file()]
    return fixed + sorted(p for p in folder.glob(MEASUREMENT_GLOB) if p.is_file())


def portable_path(path: str | os.PathLike) -> str | None:
    """`path` as a record that travels may name it: relative to the working
    folder (the repository) when inside it, else None (a machine's folder)."""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return None


def without_machine_paths(value):
    """`value` (parsed JSON) with every string that is an absolute path
    replaced by None: records that travel name no folder of the machine."""
    if isinstance(value, dict):
        return {k: without_machine_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_machine_paths(v) for v in value]
    if isinstance(value, str) and (value.startswith("/") or value[1:3] in (":\\", ":/")):
        return None
    return value


class MissingRunError(UsageError):
    """A run the caller needs is not (completely) in the store."""


@dataclass(frozen=True)
class RunRecord:
    """Everything the store holds about one finished run."""

    spec: RunSpec
    metrics: dict
    invariance: InvarianceProfile
    robustness: dict  # float B (test rotation, degrees) -> RobustnessProfile
    seconds: float  # wall time of the call that trained and profiled it
    run_dir: Path
    cpu_seconds: float | None = None  # its process CPU time (all threads)
    measurements: dict = field(default_factory=dict)  # name -> stored measurement record


class RunStore:
    """A folder of runs keyed by ``RunSpec.key``."""

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def run_dir(self, spec: RunSpec) -> Path:
        """The run's folder (training checkpoint and profiles)."""
        return self.root / spec.key

    def prepare(self, spec: RunSpec) -> Path:
        """Create the run folder and record its spec; return the folder."""
        folder = self.run_dir(spec)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / SPEC_FILE).is_file():
            atomic_write_json(folder / SPEC_FILE, {"key": spec.key, "spec": spec.to_dict()})
        return folder

    def is_done(self, spec: RunSpec) -> bool:
        """True when the run's profiles are stored (the last write of a run)."""
        payload = self._read_profiles(spec)
        return payload is not None

    def missing(self, specs) -> list:
        """The specs among `specs` that are not done, duplicates removed, in order."""
        seen, out = set(), []
        for spec in specs:
            if spec.key not in seen and not self.is_done(spec):
                out.append(spec)
            seen.add(spec.key)
        return out

    def save_profiles(self, spec: RunSpec, invariance, robustness: dict,
                      seconds: float, cpu_seconds: float | None = None,
                      execution: dict | None = None) -> Path:
        """Store the measured profiles atomically; this marks the run done.
        `robustness` maps test rotation B -> profile; profiles need `to_dict()`.
        `seconds` / `cpu_seconds`: wall and process CPU time of the run;
        `execution`: how it ran (executor, threads, GPUs), kept in its provenance."""
        if set(map(float, robustness)) != set(spec.test_rotations):
            raise ValueError("`robustness` must have one profile per spec.test_rotations")
        payload = {
            "key": spec.key,
            "spec": spec.to_dict(),
            "seconds": float(seconds),
            "cpu_seconds": None if cpu_seconds is None else float(cpu_seconds),
            "invariance": invariance.to_dict(),
            "robustness": [{"test_rotation": float(b), "profile": p.to_dict()}
                           for b, p in sorted(robustness.items())],
            "provenance": {**provenance(), **({"execution": execution} if execution else {})},
        }
        path = self.prepare(spec) / PROFILES_FILE
        atomic_write_json(path, payload)
        return path

    def load(self, spec: RunSpec) -> RunRecord:
        """The finished run; MissingRunError if it is not done."""
        payload = self._read_profiles(spec)
        if payload is None:
            raise MissingRunError(f"run {spec.key} ({spec.describe()}) is not in {self.root}")

        folder = self.run_dir(spec)
        metrics_path = folder / METRICS_FILE
        try:  # a damaged record is one UsageError naming its file, never a traceback
            metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        except (OSError, ValueError) as err:
            raise UsageError(f"damaged record {metrics_path}: {type(err).__name__}") from None
        try:
            robustness = {float(item["test_rotation"]): RobustnessProfile.from_dict(item["profile"])
                          for item in payload["robustness"]}
            invariance = InvarianceProfile.from_dict(payload["invariance"])
            cpu = payload.get("cpu_seconds")
            seconds, cpu = float(payload.get("seconds", 0.0)), None if cpu is None else float(cpu)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            raise UsageError(f"damaged record {folder / PROFILES_FILE}: {type(err).__name__}: "
                             f"{str(err)[:120]}") from None
        return RunRecord(spec, metrics, invariance, robustness, seconds, folder, cpu,
                         self._measurements(spec))

    def _measurements(self, spec: RunSpec) -> dict:
        """{name: record} of every measurement stored for `spec` (a file that
        does not parse or names another run is skipped, as for profiles)."""
        out = {}
        for path in sorted(self.run_dir(spec).glob(MEASUREMENT_GLOB)):
            try:
                payload = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(payload, dict) and payload.get("key") == spec.key:
                out[payload["measurement"]["name"]] = payload
        return out

    def copy_records(self, specs, dest: str | os.PathLike) -> list[Path]:
        """Copy the small records of every finished run of `specs` (spec,
        config, metrics, profiles, measurements: `record_files`; never
        checkpoints) into the store `dest`, atomically file by file, without
        machine paths (`without_machine_paths`). Returns the files written."""
        dest, written = RunStore(dest), []
        for spec in specs:
            if not self.is_done(spec):
                raise MissingRunError(f"run {spec.key} ({spec.describe()}) is not in {self.root}")
            for src in record_files(self.run_dir(spec)):
                target = dest.run_dir(spec) / src.name
                raw = src.read_bytes()
                try:
                    payload = json.loads(raw)
                except ValueError:  # not JSON: copied as it is
                    payload = None
                clean = without_machine_paths(payload)
                if clean == payload:  # byte for byte: digests of the records stay the same
                    atomic_write_bytes(target, raw)
                else:
                    atomic_write_json(target, clean)
                written.append(target)
        return written

    def _read_profiles(self, spec: RunSpec) -> dict[str, Any] | None:
        path = self.run_dir(spec) / PROFILES_FILE
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError):  # absent, or not JSON (written by other tools)
            return None
        if not isinstance(payload, dict) or payload.get("key") != spec.key:
            return None
        return payload
