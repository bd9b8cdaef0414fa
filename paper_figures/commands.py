"""What `python -m paper_figures` does. Training, measuring and the
Theorem 1 check belong to `pipeline.make`; this module only draws.

- `plot_figure(name, scale, store, out_dir)`: draw from the store only; a
  missing run raises `MissingRunError` (a UsageError) naming it. Writes
  `<out_dir>/<name>.png`, `.pdf`, `.csv` (the plotted numbers) and `.json`
  (command, declaration, run keys, seeds, a digest of the stored records it
  was drawn from, what the bands are, provenance),
  each atomically. Several training seeds per series value are pooled into
  one line (see `paper_figures.tables`).
- `run_and_plot(names, scale, store, jobs, ...)`: `pipeline.make.ensure`,
  then draw every figure that is missing or stale (`figure_current`: drawn
  from other runs or from records that changed since), for the figures whose
  data set is available.
"""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt

from core.errors import UsageError
from core.io import atomic_write_bytes, atomic_write_json, atomic_write_text, provenance
from paper_figures import draw, tables
from pipeline import make
from pipeline.experiments import CHECK_RUN_SETS, FIGURE_NAMES, FigureSpec, figure, scale_label
from pipeline.runstore import RunStore, portable_path
from pipeline.sweep import RunOptions
from theory.check import theorem1_figure

PROFILE_ORDER = {"train_rotation": ("robustness", "invariance"),
                 "adv_eps": ("invariance", "robustness")}
LEGEND_TITLE = {"train_rotation": "train/test rotation A/B (°)", "adv_eps": "PGD training budget"}


def default_results_dir(scale: str, dataset: str | None = None) -> Path:
    """Where `export` puts a scale's records by convention (results/SCALE[-DATASET]/),
    which `run` and `all` count as done when it exists."""
    return Path("results") / scale_label(scale, dataset)


def default_out_dir(scale: str, dataset: str | None = None) -> Path:
    return Path("paper_figures") / scale_label(scale, dataset)


def check_names(names, runnable: bool = False) -> tuple[str, ...]:
    """`names` when each is a figure (or, with `runnable`, also a check's run
    set such as the corollary's, which `run` makes but nothing draws)."""
    names = tuple(names)
    known = FIGURE_NAMES + (CHECK_RUN_SETS if runnable else ())
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise UsageError(f"unknown figure {bad[0]!r}; choose from {', '.join(known)}"
                         if bad else "name at least one figure")
    return names


SEEDS_NOTE = ("lines: mean over training seeds of the per-seed rates; bands: Wilson 95 % "
              "interval of the counts pooled over seeds (successes and n summed)")


def _subtitles(fig: FigureSpec, records) -> dict:
    rob, inv = records[0].robustness[0.0], records[0].invariance
    seeds = (f"\nmean of {len(fig.seeds)} training seeds, pooled Wilson 95 % band"
             if len(fig.seeds) > 1 else "")
    return {"robustness": f"PGD-{rob.steps}, untouched (B = 0) test images, n = {rob.n}{seeds}",
            "invariance": f"n = {inv.n} test images, one random angle each{seeds}"}


def _suptitle(fig: FigureSpec) -> str:
    return f"{fig.title}  [{fig.paper_ref}; {fig.scale} scale]"


def build(fig: FigureSpec, store: RunStore):
    """(matplotlib Figure, CSV text) of a run-based figure, from the store only."""
    records = make.records(fig, store)
    if fig.series == "curriculum":
        rows = tables.curriculum_rows(fig, records)
        inv = records[0].invariance
        sub = f"n = {inv.n} test images; PGD-{records[0].robustness[0.0].steps}"
        return draw.curriculum_figure(rows, _suptitle(fig), sub), tables.to_csv(rows)
    rows = tables.profile_rows(fig, records)
    plot = draw.profile_figure(rows, PROFILE_ORDER[fig.series], _suptitle(fig),
                               LEGEND_TITLE[fig.series], _subtitles(fig, records))
    return plot, tables.to_csv(rows)


def _draw_files(fig: FigureSpec, store: RunStore, png: Path, pdf: Path) -> str:
    """Write the PNG and PDF of `fig`; return its CSV text."""
    if fig.theory is not None:
        result = make.theorem_result(fig, store)
        theorem1_figure(result, png)
        theorem1_figure(result, pdf)
        return result.csv()
    plot, csv_text = build(fig, store)
    for path, fmt in ((png, "png"), (pdf, "pdf")):
        buf = io.BytesIO()
        plot.savefig(buf, format=fmt, dpi=150, bbox_inches="tight",
                     metadata={"CreationDate": None} if fmt == "pdf" else None)
        atomic_write_bytes(path, buf.getvalue())
    plt.close(plot)
    return csv_text


def plot_figure(name: str, scale: str = "quick", store: RunStore | str = "run_store",
                out_dir: str | os.PathLike | None = None, command: str | None = None,
                dataset: str | None = None) -> list[Path]:
    """Draw figure `name` from the store; return the files written."""
    fig = figure(name, scale, dataset)
    store = store if isinstance(store, RunStore) else RunStore(store)
    out = Path(out_dir) if out_dir is not None else default_out_dir(scale, dataset)
    if fig.theory is not None:
        make.theorem_result(fig, store)  # fail before writing anything
    else:
        make.records(fig, store)
    out.mkdir(parents=True, exist_ok=True)
    png, pdf, csv_path, json_path = (out / f"{name}.{ext}" for ext in ("png", "pdf", "csv", "json"))
    atomic_write_text(csv_path, _draw_files(fig, store, png, pdf))
    atomic_write_json(json_path, {
        "command": command or " ".join(["python -m paper_figures", *sys.argv[1:]]),
        "figure": name, "scale": scale, "dataset": fig.dataset, "store": portable_path(store.root),
        "declaration": fig.to_dict(), "run_keys": list(fig.keys), "seeds": list(fig.seeds),
        "records_digest": make.records_digest(fig, store),
        "bands": SEEDS_NOTE if len(fig.seeds) > 1 else "Wilson 95 % interval of each rate",
        "outputs": [p.name for p in (png, pdf, csv_path, json_path)], "provenance": provenance()})
    return [png, pdf, csv_path, json_path]


def figure_current(fig: FigureSpec, store: RunStore, out_dir: str | os.PathLike) -> bool:
    """True when `out_dir` holds `fig` drawn from exactly the results the
    store holds now (same runs, same stored records)."""
    out = Path(out_dir)
    return (out / f"{fig.name}.png").is_file() and make.is_current(fig, store, out / f"{fig.name}.json")


def run_and_plot(names=FIGURE_NAMES, scale: str = "quick", store: RunStore | str = "run_store",
                 jobs: int = 1, ray: str | None = None, gpus_per_run: float = 0.0,
                 data_dir: str | None = None, download: bool = False,
                 out_dir: str | os.PathLike | None = None, progress: bool = True,
                 device: str | None = None, command: str | None = None,
                 dataset: str | None = None,
                 checkpoint_storage: str | None = None,
                 results: str | os.PathLike | None = None,
                 channels_last: bool = False) -> dict[str, str]:
    """Make what the figures of `names` whose data set is available still
    miss, then draw those that are missing or stale. `names` may include
    check run sets (the corollary's run), made in the same sweep, never drawn.
    Runs the results folder `results` holds count as done (`make.adopt_exported`).
    Returns {name: "plotted" | "up to date" | "made" | "skipped: <reason>"}."""
    store = store if isinstance(store, RunStore) else RunStore(store)
    out = Path(out_dir) if out_dir is not None else default_out_dir(scale, dataset)
    names = check_names(names, runnable=True)
    ready, status = make.ready(names, scale, dataset, data_dir, download)
    make.ensure(ready, store, jobs, ray, gpus_per_run,
                RunOptions(data_dir, download, device, progress,
                           checkpoint_storage=checkpoint_storage, channels_last=channels_last),
                results=results)
    for fig in ready:
        if fig.name in CHECK_RUN_SETS:
            status[fig.name] = "made"
            continue
        if figure_current(fig, store, out):
            status[fig.name] = "up to date"
        else:
            plot_figure(fig.name, scale, store, out, command, dataset)
            status[fig.name] = "plotted"
    return {n: status[n] for n in names}
