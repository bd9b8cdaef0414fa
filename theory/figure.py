"""The Theorem 1 figure, drawn from a check result (or its JSON dict):
exact achievable region and frontier, the bound line, the corollary's
forbidden corner, and every classifier with its 95% intervals."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle

from core.io import atomic_write_bytes
from theory.result import ClassifierResult, TheoremCheck, as_check

MARKERS = "osD^vP*Xhp<>"


def _draw_bound(ax, p: float, c: float, rhs: float) -> None:
    if c == 0:
        ax.axvline(rhs, color="crimson", lw=1.8, ls="--", zorder=5, label=f"bound: spatial = {rhs:.3g}")
        return
    s = np.linspace(0, 1, 200)
    ax.plot(s, (rhs - s) / c, color="crimson", lw=1.8, ls="--", zorder=5,
            label=f"bound: spatial + {c:.3g}·adv = {rhs:.3g}")


def _draw_classifiers(ax, classifiers: tuple[ClassifierResult, ...]) -> None:
    colors = colormaps["tab20"](range(len(classifiers)))
    for i, c in enumerate(classifiers):
        s, a = c.spatial, c.adversarial
        xerr = [[s.value - s.ci_low], [s.ci_high - s.value]]
        yerr = [[a.value - a.ci_low], [a.ci_high - a.value]]
        ax.errorbar(s.value, a.value, xerr=xerr, yerr=yerr, fmt=MARKERS[i % len(MARKERS)],
                    color=colors[i], ms=7, mfc="none" if i % 2 else colors[i], capsize=3, lw=1.2,
                    label=f"{c.name} ({s.value:.3f}, {a.value:.3f})")


def theorem1_figure(result: TheoremCheck | dict, path: str | os.PathLike) -> Path:
    """Draw the figure for a `TheoremCheck` or its `to_dict()`; writes PNG,
    or PDF/SVG when the suffix says so. Returns the path written."""
    res = as_check(result)
    prm, bd, fro = res.config, res.bound, res.frontier
    p, path = prm.p, Path(path)
    fig = Figure(figsize=(10.5, 6.2))
    ax = fig.subplots()
    if len(fro.region) >= 3:
        ax.add_patch(Polygon(fro.region, closed=True, fc="#cfe3f5", ec="#7aa6cc",
                             label="achievable by some classifier (exact)"))
    ax.plot([q[0] for q in fro.points], [q[1] for q in fro.points], color="navy", lw=5, alpha=0.8,
            label=f"Pareto frontier (lhs {fro.min_lhs:.4f}..{fro.max_lhs:.4f})")
    _draw_bound(ax, p, bd.coefficient, bd.rhs)
    ax.add_patch(Rectangle((p, p), 1 - p, 1 - p, fc="crimson", alpha=0.12, hatch="//",
                           ec="crimson", label=f"corollary: both > p = {p:g} impossible"))
    _draw_classifiers(ax, res.classifiers)
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), aspect="equal",
           xlabel="spatial accuracy  Pr[f(r(X)) = Y]",
           ylabel="adversarial accuracy  Pr[f(X + A(X)) = Y]",
           title=f"Theorem 1 on D(p={p:g}, d={prm.d}), mu={prm.mu:g}, eta={prm.eta:g}, "
                 f"q={prm.q:g}; n={prm.n:,} samples, 95% intervals")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fmt = path.suffix.lstrip(".").lower() or "png"
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt if fmt in ("png", "pdf", "svg") else "png", dpi=150)
    atomic_write_bytes(path, buf.getvalue())
    return path
