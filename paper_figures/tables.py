"""The numbers a figure plots, as rows: built from stored runs, written as
the figure's CSV, and the only thing the drawing code reads.

Columns: ``panel`` (robustness | invariance | bars | auc), ``label``
(legend text), ``metric``, ``x`` (eps, theta, or the invariance AUC),
``y``, ``ci_low``/``ci_high`` (95 % interval of y: Wilson for rates,
normal over test points for AUCs), ``x_ci_low``/``x_ci_high`` (auc panel
only), ``n`` (test points, summed over seeds), ``run`` (run keys, ";"
between seeds), ``seeds`` (training seeds, e.g. "0,1,2").

Profile panels have one row per (series value, x). With several training
seeds, ``y`` is the mean over seeds of the per-seed rates and
``ci_low``/``ci_high`` the Wilson 95 % interval of the counts pooled over
seeds (successes and n summed); with one seed both are that run's own.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, fields

from core import auc
from core.estimate import Estimate
from pipeline.experiments import format_eps


@dataclass(frozen=True)
class Row:
    panel: str
    label: str
    metric: str
    x: float
    y: float
    ci_low: float
    ci_high: float
    n: int
    run: str
    x_ci_low: float = math.nan
    x_ci_high: float = math.nan
    seeds: str = "0"


COLUMNS = tuple(f.name for f in fields(Row))


def to_csv(rows) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v)
                         for k, v in asdict(row).items()})
    return buf.getvalue()


def from_csv(text: str) -> list[Row]:
    out = []
    for d in csv.DictReader(io.StringIO(text)):
        out.append(Row(d["panel"], d["label"], d["metric"], float(d["x"]), float(d["y"]),
                       float(d["ci_low"]), float(d["ci_high"]), int(d["n"]), d["run"],
                       float(d["x_ci_low"]), float(d["x_ci_high"]), d.get("seeds", "0")))
    return out


def seeds_text(runs) -> str:
    """The training seeds of `runs` as the CSV writes them: "0,1,2"."""
    return ",".join(str(run.train.seed) for run in runs)


def pooled(estimates) -> tuple[float, float, float, int]:
    """(mean of the per-seed rates, Wilson 95 % interval of the pooled
    counts, pooled n) of one point's per-seed `Estimate`s."""

    estimates = list(estimates)
    both = Estimate.from_counts(sum(e.successes for e in estimates),
                                sum(e.n for e in estimates))
    mean = sum(e.value for e in estimates) / len(estimates)
    return mean, both.ci_low, both.ci_high, both.n


def _pooled_rows(panel, label, metric, xs, per_seed, runs) -> list[Row]:
    """One row per x; `per_seed[s][j]` is seed s's Estimate at xs[j]."""
    key, seeds = ";".join(run.key for run in runs), seeds_text(runs)
    return [Row(panel, label, metric, float(x), *pooled(s[j] for s in per_seed)[:3],
                sum(s[j].n for s in per_seed), key, seeds=seeds)
            for j, x in enumerate(xs)]


def profile_rows(fig, records) -> list[Row]:
    """Robustness (accuracy vs eps at test rotation 0) and invariance (rate
    vs theta) rows, one series per series value of `fig` (its runs of all
    seeds pooled), in declaration order."""
    by_key = {run.key: rec for run, rec in zip(fig.runs, records)}
    rows = []
    for runs in fig.groups().values():
        recs = [by_key[run.key] for run in runs]
        label = fig.label(runs[0], test_rotation=0.0)
        rob = [rec.robustness[0.0] for rec in recs]
        rows += _pooled_rows("robustness", label, "accuracy", rob[0].epsilons,
                             [r.accuracy for r in rob], runs)
        inv = [rec.invariance for rec in recs]
        rows += _pooled_rows("invariance", label, "invariance", inv[0].thetas,
                             [r.invariance for r in inv], runs)
    return rows


def invariance_auc(inv) -> tuple[float, float, float]:
    """Normalised area under the invariance profile with its 95 % interval
    over test points (`core.auc.interval`)."""
    return auc.interval(auc.invariance_points(inv.thetas, inv.invariant))


def robustness_auc(rob) -> tuple[float, float, float]:
    """Normalised area under the accuracy-vs-eps profile with its 95 %
    interval over test points (`core.auc.interval`)."""
    return auc.interval(auc.robustness_points(rob.epsilons, rob.broken_at))


def nearest_index(grid, value: float) -> int:
    return min(range(len(grid)), key=lambda j: abs(grid[j] - value))


def curriculum_rows(fig, records) -> list[Row]:
    """Per run: clean, rotated (largest theta) and PGD accuracy at the final
    curriculum eps (bars), and (invariance AUC, robustness AUC) (auc)."""

    final_eps = max(r.train.adv_eps for r in fig.runs)
    rows = []
    for k, (run, rec) in enumerate(zip(fig.runs, records)):
        label, inv, rob = fig.label(run), rec.invariance, rec.robustness[0.0]
        j = nearest_index(rob.epsilons, final_eps)
        bars = (("clean", inv.clean_accuracy),
                (f"rotated ±{inv.thetas[-1]:g}°", inv.accuracy[-1]),
                (f"PGD ε={format_eps(rob.epsilons[j])}", rob.accuracy[j]))
        seeds = seeds_text([run])
        rows += [Row("bars", label, metric, float(k), e.value, e.ci_low, e.ci_high, e.n, run.key,
                     seeds=seeds) for metric, e in bars]
        xi, xlo, xhi = invariance_auc(inv)
        yr, ylo, yhi = robustness_auc(rob)
        rows.append(Row("auc", label, "auc", xi, yr, ylo, yhi, rob.n, run.key, xlo, xhi, seeds))
    return rows
