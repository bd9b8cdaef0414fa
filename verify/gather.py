"""Pull the checks' inputs out of finished runs (`RunRecord`s of the store).

Everything here turns stored records (profiles, and the measurements the
pipeline made beyond them: `RunRecord.measurements`) into the plain arrays
`verify.checks` takes. Nothing here measures.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from core import auc
from core.errors import UsageError
from core.outcomes import correct_by_eps
from pipeline.experiments import declared_measurement
from pipeline.runstore import MissingRunError

KNOBS = {"rotation": "train_rotation", "eps": "adv_eps"}


def knob_value(record, knob: str) -> float:
    """The training rotation ("rotation") or PGD training eps ("eps") of a run."""
    return float(getattr(record.spec.train, KNOBS[knob]))


def _same(records, attr, what: str):
    values = {repr(attr(r)) for r in records}
    if len(values) != 1:
        raise UsageError(f"runs of one sweep must share {what}; found {sorted(values)}")
    return attr(records[0])


@dataclass(frozen=True)
class Sweep:
    """Per-point AUC contributions of one model family along a training knob.

    invariance_auc, robustness_auc: (M knob values, S seeds, n test points),
    paired across models (same test subset, same seeded angles)."""

    x: tuple[float, ...]
    seeds: tuple[int, ...]
    invariance_auc: np.ndarray
    robustness_auc: np.ndarray
    keys: tuple[str, ...]
    n_test: int
    clean_accuracy: tuple[float, ...]  # per knob value, mean over seeds
    unfooled_auc: np.ndarray  # (M, S, n): robustness as 1 - fooling rate (the paper's definition)
    clean_correct: np.ndarray | None = None  # (M, S, n): correct on the clean test point


def sweep_outcomes(records, knob: str, test_rotation: float = 0.0) -> Sweep:
    """Group `records` by the knob's value; keep the seeds every group has."""
    if knob not in KNOBS:
        raise ValueError(f"`knob` must be one of {tuple(KNOBS)}, got {knob!r}.")
    records = list(records)
    if not records:
        raise UsageError("no finished runs for this sweep")
    _same(records, lambda r: (r.spec.n_test, r.spec.profile_seed), "the test subset")
    thetas = _same(records, lambda r: r.invariance.thetas, "the theta grid")
    groups = defaultdict(dict)
    for r in records:
        groups[knob_value(r, knob)][r.spec.train.seed] = r
    x = tuple(sorted(groups))
    if len(x) < 3:
        raise UsageError(f"a trend needs runs at >= 3 values of the training {knob}, got {list(x)}")
    seeds = tuple(sorted(set.intersection(*(set(g) for g in groups.values()))))
    if not seeds:
        raise UsageError("no training seed is shared by every run of the sweep")
    inv, rob, unfooled, keys, clean, clean_pts = [], [], [], [], [], []
    for value in x:
        clean_pts.append([np.asarray(groups[value][s].invariance.clean_correct, dtype=np.float64)
                          for s in seeds])
        clean.append(float(np.mean([groups[value][s].invariance.clean_correct for s in seeds])))
        inv.append([auc.invariance_points(thetas, groups[value][s].invariance.invariant)
                    for s in seeds])
        rob.append([_robustness_auc(groups[value][s], test_rotation) for s in seeds])
        unfooled.append([_robustness_auc(groups[value][s], test_rotation, "fooled_at")
                         for s in seeds])
        keys += [groups[value][s].spec.key for s in seeds]
    return Sweep(x, seeds, np.asarray(inv), np.asarray(rob), tuple(keys), records[0].spec.n_test,
                 tuple(clean), np.asarray(unfooled), np.asarray(clean_pts))


def one_seed(sweep: Sweep, k: int) -> Sweep:
    """The sweep restricted to its k-th training seed."""
    pick = slice(k, k + 1)
    return Sweep(sweep.x, (sweep.seeds[k],), sweep.invariance_auc[:, pick],
                 sweep.robustness_auc[:, pick], sweep.keys, sweep.n_test, sweep.clean_accuracy,
                 sweep.unfooled_auc[:, pick],
                 None if sweep.clean_correct is None else sweep.clean_correct[:, pick])


def _robustness_auc(record, test_rotation: float, outcome: str = "broken_at") -> np.ndarray:
    """Per-point AUC of PGD accuracy ("broken_at") or of 1 - fooling rate
    ("fooled_at": prediction unchanged, the paper's Sec. 2 definition)."""
    if test_rotation not in record.robustness:
        raise UsageError(f"run {record.spec.key} has no robustness profile at test rotation "
                         f"{test_rotation:g}")
    prof = record.robustness[test_rotation]
    return auc.robustness_points(prof.epsilons, getattr(prof, outcome))


class MissingMeasurement(MissingRunError):
    """A run's records lack a measurement its declaration asks for."""


def measurement(record, name: str) -> dict:
    """The stored result of measurement `name` of a run (`pipeline.measurements`),
    made exactly as its declaration says: a record of another declaration
    (other test points, another attack) is missing, not read."""
    found = record.measurements.get(name)
    declared = declared_measurement(record.spec, name)
    if found is None or (declared is not None and found.get("measurement") != declared.to_dict()):
        what = "no stored" if found is None else "only an outdated record of"
        raise MissingMeasurement(
            f"run {record.spec.key} has {what} measurement {name!r}; `python -m paper_figures "
            "run` with this scale makes it from the run's checkpoint")
    return found["result"]


def attacked_correct(result: dict, attack: str = "pgd") -> tuple[tuple[float, ...], np.ndarray]:
    """(eps grid, (n_eps, n) bool correct) of a stored evaluation under `attack`."""
    eps = tuple(float(e) for e in result["eps"])
    return eps, correct_by_eps(result["per_point"][f"{attack}_broken_at"], len(eps))


def find(records, **want):
    """The records whose training config matches every `field=value` given
    (floats compared to 1e-9), sorted by seed."""
    def ok(r):
        for name, value in want.items():
            have = getattr(r.spec.train, name)
            if isinstance(value, float) or isinstance(have, float):
                if have is None or abs(float(have) - float(value)) > 1e-9:
                    return False
            elif have != value:
                return False
        return True
    return sorted((r for r in records if ok(r)), key=lambda r: r.spec.train.seed)


def curriculum_outcomes(record, eps: float, theta: float | None = None) -> tuple[dict, dict]:
    """Per-point correct arrays of a run: clean, rotated (invariance profile
    at `theta`, default its largest theta) and PGD (B = 0) at the grid eps
    closest to `eps`. Returns (outcomes, what was read)."""
    inv = record.invariance
    theta = max(inv.thetas) if theta is None else theta
    k = int(np.argmin([abs(t - theta) for t in inv.thetas]))
    prof = record.robustness.get(0.0)
    if prof is None:
        raise UsageError(f"run {record.spec.key} has no robustness profile at B = 0")
    j = int(np.argmin([abs(e - eps) for e in prof.epsilons]))
    outcomes = {"clean": np.asarray(inv.clean_correct, bool),
                "rotated": np.asarray(inv.correct[k], bool),
                "pgd": correct_by_eps(prof.broken_at, len(prof.epsilons))[j]}
    return outcomes, {"theta": inv.thetas[k], "eps": prof.epsilons[j]}
