"""The numbers a figure plots, as rows: built from stored runs, written as
the figure's CSV, and the only thing the drawing code reads.

Columns: ``panel`` (robustness | invariance | bars | auc), ``label``
(legend text), ``metric``, ``x`` (eps, theta, or the invariance AUC),
``y``, ``ci_low``/``ci_high`` (95 % interval of y: Wilson for rates,
normal over test points for AUCs), ``x_ci_low``/``x_ci_high`` (auc panel
only), ``n`` (test points), ``run`` (run key).
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, fields

Z95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975)


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
                       float(d["x_ci_low"]), float(d["x_ci_high"])))
    return out


def _estimate_rows(panel, label, metric, xs, estimates, run) -> list[Row]:
    return [Row(panel, label, metric, float(x), e.value, e.ci_low, e.ci_high, e.n, run)
            for x, e in zip(xs, estimates)]


def profile_rows(fig, records) -> list[Row]:
    """Robustness (accuracy vs eps at test rotation 0) and invariance (rate
    vs theta) rows, one series per run of `fig`, in declaration order."""
    rows = []
    for run, rec in zip(fig.runs, records):
        label = fig.label(run, test_rotation=0.0)
        rob = rec.robustness[0.0]
        rows += _estimate_rows("robustness", label, "accuracy", rob.epsilons, rob.accuracy, run.key)
        inv = rec.invariance
        rows += _estimate_rows("invariance", label, "invariance", inv.thetas, inv.invariance, run.key)
    return rows


def trapezoid_weights(grid) -> list[float]:
    """Weights w with sum_j w_j f(grid_j) = trapezoid area / (grid[-1] - grid[0])."""
    g = [float(v) for v in grid]
    if len(g) == 1:
        return [1.0]
    span = g[-1] - g[0]
    w = [0.0] * len(g)
    for j in range(len(g) - 1):
        h = (g[j + 1] - g[j]) / (2 * span)
        w[j] += h
        w[j + 1] += h
    return w


def mean_ci(values) -> tuple[float, float, float]:
    """Mean of per-test-point values and its normal 95 % interval."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / max(n - 1, 1)
    half = Z95 * math.sqrt(var / n)
    return mean, mean - half, mean + half


def invariance_auc(inv) -> tuple[float, float, float]:
    """Normalised area under the invariance profile with a 95 % interval
    over test points (the area is the mean of per-point areas)."""
    w = trapezoid_weights(inv.thetas)
    per_point = [sum(wj * row[i] for wj, row in zip(w, inv.invariant)) for i in range(inv.n)]
    return mean_ci(per_point)


def robustness_auc(rob) -> tuple[float, float, float]:
    """Normalised area under the accuracy-vs-eps profile, 95 % interval over
    test points (point i is correct at eps_j iff broken_at[i] > j)."""
    w = trapezoid_weights(rob.epsilons)
    per_point = [sum(wj for j, wj in enumerate(w) if b > j) for b in rob.broken_at]
    return mean_ci(per_point)


def nearest_index(grid, value: float) -> int:
    return min(range(len(grid)), key=lambda j: abs(grid[j] - value))


def curriculum_rows(fig, records) -> list[Row]:
    """Per run: clean, rotated (largest theta) and PGD accuracy at the final
    curriculum eps (bars), and (invariance AUC, robustness AUC) (auc)."""
    from empirics.experiments import format_eps

    final_eps = max(r.train.adv_eps for r in fig.runs)
    rows = []
    for k, (run, rec) in enumerate(zip(fig.runs, records)):
        label, inv, rob = fig.label(run), rec.invariance, rec.robustness[0.0]
        j = nearest_index(rob.epsilons, final_eps)
        bars = (("clean", inv.clean_accuracy),
                (f"rotated ±{inv.thetas[-1]:g}°", inv.accuracy[-1]),
                (f"PGD ε={format_eps(rob.epsilons[j])}", rob.accuracy[j]))
        rows += [Row("bars", label, metric, float(k), e.value, e.ci_low, e.ci_high, e.n, run.key)
                 for metric, e in bars]
        xi, xlo, xhi = invariance_auc(inv)
        yr, ylo, yhi = robustness_auc(rob)
        rows.append(Row("auc", label, "auc", xi, yr, ylo, yhi, rob.n, run.key, xlo, xhi))
    return rows
