"""What `python -m paper_figures` does, as functions the verify layer can call.

- `run_figures(names, scale, store, ...)`: train and profile every run the
  figures declare that the store lacks (Theorem 1: run its check and store
  the result). Never plots.
- `plot_figure(name, scale, store, out_dir)`: draw from the store only; a
  missing run raises `MissingRunError` (a UsageError) naming it. Writes
  `<out_dir>/<name>.png`, `.pdf`, `.csv` (the plotted numbers) and `.json`
  (command, declaration, run keys, seeds, what the bands are, provenance),
  each atomically. Several training seeds per series value are pooled into
  one line (see `paper_figures.tables`).
- `run_and_plot(names, scale, store, jobs, ...)`: both, for the figures
  whose data set is available; returns {name: "plotted" | "skipped: why"}.
"""
from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

from core.errors import UsageError
from pipeline.experiments import FIGURE_NAMES, FigureSpec, figure
from core.io import atomic_write_bytes, atomic_write_json, atomic_write_text, provenance
from pipeline.runspec import config_hash
from pipeline.runstore import MissingRunError, RunStore
from pipeline.sweep import RunOptions, run_sweep

PROFILE_ORDER = {"train_rotation": ("robustness", "invariance"),
                 "adv_eps": ("invariance", "robustness")}
LEGEND_TITLE = {"train_rotation": "train/test rotation A/B (°)", "adv_eps": "PGD training budget"}


def default_out_dir(scale: str) -> Path:
    return Path("paper_figures") / scale


def check_names(names) -> tuple[str, ...]:
    names = tuple(names)
    bad = [n for n in names if n not in FIGURE_NAMES]
    if bad or not names:
        raise UsageError(f"unknown figure {bad[0]!r}; choose from {', '.join(FIGURE_NAMES)}"
                         if bad else "name at least one figure")
    return names


def unavailable(fig: FigureSpec, data_dir: str | None, download: bool) -> str | None:
    """Why `fig` cannot run here (its data set is missing), or None."""
    if not fig.runs:
        return None
    from empirics.data import load

    try:
        load(fig.dataset, "test", data_dir, download)
    except UsageError as err:
        return str(err).splitlines()[0]
    return None


def theory_result_path(store: RunStore, fig: FigureSpec) -> Path:
    return store.root / f"theorem1-{config_hash(fig.theory.to_dict())}.json"


def run_theory(fig: FigureSpec, store: RunStore, progress: bool) -> bool:
    """Run the Theorem 1 check into the store unless stored; True if run."""
    path = theory_result_path(store, fig)
    if path.is_file():
        return False
    from theory.check import run_check

    atomic_write_json(path, run_check(fig.theory, progress=progress).to_dict())
    return True


def run_figures(figs, store: RunStore, jobs: int = 1, ray: str | None = None,
                gpus_per_run: float = 0.0, options: RunOptions = RunOptions()) -> list[str]:
    """Fill the store for every figure in `figs` (one sweep over all runs)."""
    from pipeline.sweep import by_cost

    for fig in figs:
        if fig.theory is not None:
            run_theory(fig, store, options.progress)
    specs = by_cost([run for fig in figs for run in fig.runs])
    return run_sweep(specs, store, jobs=jobs, ray_address=ray, gpus_per_run=gpus_per_run,
                     options=options)


def load_records(fig: FigureSpec, store: RunStore) -> list:
    missing = store.missing(fig.runs)
    if missing:
        raise MissingRunError(
            f"{fig.name} ({fig.scale}): {len(missing)} of {len(fig.runs)} runs missing from "
            f"{store.root} (first: {missing[0].key} {missing[0].describe()}); run "
            f"`python -m paper_figures run {fig.name} --scale {fig.scale}` first")
    return [store.load(run) for run in fig.runs]


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
    from paper_figures import draw, tables

    records = load_records(fig, store)
    if fig.series == "curriculum":
        rows = tables.curriculum_rows(fig, records)
        inv = records[0].invariance
        sub = f"n = {inv.n} test images; PGD-{records[0].robustness[0.0].steps}"
        return draw.curriculum_figure(rows, _suptitle(fig), sub), tables.to_csv(rows)
    rows = tables.profile_rows(fig, records)
    plot = draw.profile_figure(rows, PROFILE_ORDER[fig.series], _suptitle(fig),
                               LEGEND_TITLE[fig.series], _subtitles(fig, records))
    return plot, tables.to_csv(rows)


def load_theory(fig: FigureSpec, store: RunStore) -> dict:
    path = theory_result_path(store, fig)
    if not path.is_file():
        raise MissingRunError(f"theorem1 ({fig.scale}): no stored check result in {store.root}; "
                              f"run `python -m paper_figures run theorem1 --scale {fig.scale}`")
    return json.loads(path.read_text())


def theory_csv(result: dict) -> str:
    """Each classifier's spatial and adversarial accuracy with 95 % intervals."""
    lines = ["classifier,spatial,spatial_ci_low,spatial_ci_high,"
             "adversarial,adversarial_ci_low,adversarial_ci_high,n"]
    for c in result["classifiers"]:
        s, a = c["spatial"], c["adversarial"]
        lines.append(f"{c['name']},{s['estimate']!r},{s['ci'][0]!r},{s['ci'][1]!r},"
                     f"{a['estimate']!r},{a['ci'][0]!r},{a['ci'][1]!r},{s['n']}")
    return "\n".join(lines) + "\n"


def _draw_files(fig: FigureSpec, store: RunStore, png: Path, pdf: Path) -> str:
    """Write the PNG and PDF of `fig`; return its CSV text."""
    if fig.theory is not None:
        from theory.check import theorem1_figure

        result = load_theory(fig, store)
        theorem1_figure(result, png)
        theorem1_figure(result, pdf)
        return theory_csv(result)
    import matplotlib.pyplot as plt

    plot, csv_text = build(fig, store)
    for path, fmt in ((png, "png"), (pdf, "pdf")):
        buf = io.BytesIO()
        plot.savefig(buf, format=fmt, dpi=150, bbox_inches="tight",
                     metadata={"CreationDate": None} if fmt == "pdf" else None)
        atomic_write_bytes(path, buf.getvalue())
    plt.close(plot)
    return csv_text


def plot_figure(name: str, scale: str = "quick", store: RunStore | str = "run_store",
                out_dir: str | os.PathLike | None = None, command: str | None = None) -> list[Path]:
    """Draw figure `name` from the store; return the files written."""
    fig = figure(name, scale)
    store = store if isinstance(store, RunStore) else RunStore(store)
    out = Path(out_dir) if out_dir is not None else default_out_dir(scale)
    if fig.theory is not None:
        load_theory(fig, store)  # fail before writing anything
    else:
        load_records(fig, store)
    out.mkdir(parents=True, exist_ok=True)
    png, pdf, csv_path, json_path = (out / f"{name}.{ext}" for ext in ("png", "pdf", "csv", "json"))
    atomic_write_text(csv_path, _draw_files(fig, store, png, pdf))
    atomic_write_json(json_path, {
        "command": command or " ".join(["python -m paper_figures", *sys.argv[1:]]),
        "figure": name, "scale": scale, "store": str(store.root),
        "declaration": fig.to_dict(), "run_keys": list(fig.keys), "seeds": list(fig.seeds),
        "bands": SEEDS_NOTE if len(fig.seeds) > 1 else "Wilson 95 % interval of each rate",
        "outputs": [p.name for p in (png, pdf, csv_path, json_path)], "provenance": provenance()})
    return [png, pdf, csv_path, json_path]


def run_and_plot(names=FIGURE_NAMES, scale: str = "quick", store: RunStore | str = "run_store",
                 jobs: int = 1, ray: str | None = None, gpus_per_run: float = 0.0,
                 data_dir: str | None = None, download: bool = False,
                 out_dir: str | os.PathLike | None = None, progress: bool = True,
                 device: str | None = None, command: str | None = None) -> dict[str, str]:
    """Run and plot every figure of `names` whose data set is available.
    Returns {name: "plotted" | "skipped: <reason>"}."""
    store = store if isinstance(store, RunStore) else RunStore(store)
    figs = [figure(n, scale) for n in check_names(names)]
    status, ready = {}, []
    for fig in figs:
        why = unavailable(fig, data_dir, download)
        if why is None:
            ready.append(fig)
        else:
            status[fig.name] = f"skipped: {why}"
    run_figures(ready, store, jobs, ray, gpus_per_run,
                RunOptions(data_dir, download, device, progress))
    for fig in ready:
        plot_figure(fig.name, scale, store, out_dir, command)
        status[fig.name] = "plotted"
    return {n: status[n] for n in names}
