"""The PNG of an `Evaluation`: robust accuracy over eps per attack (left),
rotation profiles over theta (right), Wilson 95 % bands; legends under the
axes, the title naming the model, the data set and the input normalisation."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from empirics.evaluate import Evaluation  # noqa: E402

LABELS = {"pgd": "PGD-{steps}", "autoattack": "AutoAttack (standard)",
          "worst_case": "worst case (per point)"}
COLORS = {"pgd": "#4c72b0", "autoattack": "#c44e52", "worst_case": "#222222",
          "random": "#4c72b0", "invariance": "#55a868", "worst_of_k": "#dd8452", "grid": "#c44e52"}


def _line(ax, x, estimates, label, color, style="-"):
    ax.plot(x, [e.value for e in estimates], style, marker="o", ms=3, color=color, label=label)
    ax.fill_between(x, [e.ci_low for e in estimates], [e.ci_high for e in estimates],
                    color=color, alpha=0.15, lw=0)


def _legend_below(ax):
    """The legend under the axes, where it can cover no curve."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)


def profile_figure(ev: Evaluation, title: str | None = None):
    """A matplotlib Figure of both profiles of `ev`."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5.4))
    names = list(ev.attacks) + (["worst_case"] if len(ev.attacks) > 1 else [])
    for name in names:
        _line(left, ev.epsilons, ev.robust_accuracy(name), LABELS[name].format(steps=ev.pgd_steps),
              COLORS[name], "--" if name == "worst_case" else "-")
    left.set(xlabel="ε (L∞ budget, pixel scale)", ylabel="robust accuracy", ylim=(-0.02, 1.02),
             title=f"Robustness profile (n = {ev.n})")
    _legend_below(left)
    if ev.invariance is not None and ev.spatial is not None:
        th = ev.invariance.thetas
        _line(right, th, ev.invariance.accuracy, "accuracy, random rotation", COLORS["random"])
        _line(right, th, ev.invariance.invariance, "rate of invariance, random rotation",
              COLORS["invariance"], ":")
        _line(right, th, ev.spatial.worst_of_k_accuracy, f"accuracy, worst of {ev.spatial.k}",
              COLORS["worst_of_k"])
        _line(right, th, ev.spatial.grid_accuracy, f"accuracy, grid of {ev.spatial.n_grid}",
              COLORS["grid"])
        _legend_below(right)
    right.set(xlabel="θ (rotations in [-θ°, θ°])", ylabel="rate", ylim=(-0.02, 1.02),
              title="Rotation profiles")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def profile_png(ev: Evaluation, title: str | None = None) -> bytes:
    fig = profile_figure(ev, title)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=120)
    finally:
        plt.close(fig)
    return buf.getvalue()
