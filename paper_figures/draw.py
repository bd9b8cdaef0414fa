"""Drawing: each function takes the plotted rows (`tables.Row`) and returns
a matplotlib Figure; it computes nothing the CSV does not hold.

- `profile_figure`: Figs. 1-6, one row of two panels as in the paper:
  robustness then invariance (Figs. 1-4), invariance then robustness
  (Figs. 5-6); one line per run in a sequential colormap, Wilson 95 %
  bands.
- `curriculum_figure`: grouped bars (clean / rotated / PGD accuracy, Wilson
  intervals) and the (invariance AUC, robustness AUC) plane.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FONT = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11,
        "legend.fontsize": 9, "figure.titlesize": 13}
CMAP = "viridis"
CMAP_RANGE = (0.0, 0.88)  # the lightest yellow of viridis is hard to read on white
BAR_COLORS = ("#4c72b0", "#dd8452", "#c44e52", "#55a868")  # clean, rotated, PGD, ...

PANEL_AXES = {
    "robustness": ("ε (L∞ budget of the PGD attack, pixel scale)", "accuracy",
                   "Robustness profile"),
    "invariance": ("θ (test images rotated by a random angle in [-θ°, θ°])",
                   "rate of invariance", "Rotation invariance profile"),
}


def series_colors(labels) -> dict:
    cmap = plt.get_cmap(CMAP)
    lo, hi = CMAP_RANGE
    k = max(len(labels) - 1, 1)
    return {label: cmap(lo + (hi - lo) * i / k) for i, label in enumerate(labels)}


def _ordered_labels(rows) -> list[str]:
    return list(dict.fromkeys(r.label for r in rows))


def _draw_panel(ax, rows, panel, colors, subtitle):
    xlabel, ylabel, title = PANEL_AXES[panel]
    for label, color in colors.items():
        pts = [r for r in rows if r.panel == panel and r.label == label]
        if not pts:
            continue
        xs = [r.x for r in pts]
        ax.fill_between(xs, [r.ci_low for r in pts], [r.ci_high for r in pts],
                        color=color, alpha=0.18, lw=0)
        ax.plot(xs, [r.y for r in pts], color=color, lw=1.8, marker="o", ms=3, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, ylim=(-0.02, 1.02), title=f"{title}\n{subtitle}")
    ax.grid(alpha=0.3)


def profile_figure(rows, order: tuple[str, str], suptitle: str, legend_title: str,
                   subtitles: dict):
    """Two panels `order` (e.g. ("robustness", "invariance")) from `rows`."""
    with plt.rc_context(FONT):
        fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.9))
        colors = series_colors(_ordered_labels(rows))
        for ax, panel in zip(axes, order):
            _draw_panel(ax, rows, panel, colors, subtitles.get(panel, ""))
        if any(r.panel == "invariance" for r in rows):
            axes[list(order).index("invariance")].set_xticks(range(0, 181, 30))
        axes[-1].legend(title=legend_title, loc="center left", bbox_to_anchor=(1.01, 0.5),
                        frameon=False)
        fig.suptitle(suptitle)
        fig.tight_layout()
    return fig


def curriculum_figure(rows, suptitle: str, subtitle: str):
    """Grouped accuracy bars (left) and the AUC plane (right)."""
    with plt.rc_context(FONT):
        fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2),
                                          gridspec_kw={"width_ratios": [1.3, 1]})
        bars = [r for r in rows if r.panel == "bars"]
        labels = _ordered_labels(bars)
        metrics = list(dict.fromkeys(r.metric for r in bars))
        width = 0.8 / len(metrics)
        shades = dict(zip(metrics, BAR_COLORS))
        for m, metric in enumerate(metrics):
            pts = [r for r in bars if r.metric == metric]
            xs = [r.x + (m - (len(metrics) - 1) / 2) * width for r in pts]
            err = [[r.y - r.ci_low for r in pts], [r.ci_high - r.y for r in pts]]
            left.bar(xs, [r.y for r in pts], width, yerr=err, capsize=3, color=shades[metric],
                     label=metric)
        left.set_xticks(range(len(labels)), labels, rotation=12)
        left.set(ylabel="accuracy", ylim=(0, 1.15), title=f"Accuracy (95 % Wilson intervals)\n{subtitle}")
        left.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        left.legend(loc="upper center", ncol=len(metrics), frameon=False)
        left.grid(axis="y", alpha=0.3)
        _auc_plane(right, [r for r in rows if r.panel == "auc"], series_colors(labels))
        fig.suptitle(suptitle)
        fig.tight_layout()
    return fig


def _auc_plane(ax, pts, colors):
    for r in pts:
        ax.errorbar(r.x, r.y, xerr=[[r.x - r.x_ci_low], [r.x_ci_high - r.x]],
                    yerr=[[r.y - r.ci_low], [r.ci_high - r.y]], fmt="o", ms=8, capsize=3,
                    color=colors[r.label], label=r.label)
    ax.set(xlabel="invariance AUC (area under the invariance profile)",
           ylabel="robustness AUC (area under accuracy vs ε)",
           title="Invariance vs robustness (95 % intervals over test points)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
