"""The paper's figures: `python -m paper_figures {run,plot,all,list}`.

Committed outputs live in `paper_figures/<scale>/<figure>.{png,pdf,csv,json}`.
`run_and_plot(names, scale, store, jobs, ...)` is the entry point for code.
"""
from paper_figures.commands import plot_figure, run_and_plot

__all__ = ["plot_figure", "run_and_plot"]
