"""python -m paper_figures {run,plot,all,list,export}: regenerate the paper's figures.

    python -m paper_figures run fig1 --scale quick     # train + profile what is missing
    python -m paper_figures plot fig1 --scale quick    # draw from the run store only
    python -m paper_figures all --scale quick          # every figure whose data is here
    python -m paper_figures list --scale quick         # declarations and store status
    python -m paper_figures export --scale full-cpu --to results/full-cpu  # records only
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core import validate
from core.errors import ArgumentParser, UsageError, exit_on_usage_error
from paper_figures.commands import (check_names, default_out_dir, default_results_dir, plot_figure,
                                    run_and_plot)
from pipeline import make
from pipeline.checkpoint_storage import open_storage
from pipeline.experiments import (CHECK_RUN_SETS, FIGURE_NAMES, MNIST_SHAPED, SCALES, declared,
                                  figure)
from pipeline.runstore import DEFAULT_ROOT, RunStore
from pipeline.sweep import CHANNELS_LAST_HELP, RunOptions, default_jobs

PROG = "python -m paper_figures"
FIGURE_FILES = ("png", "pdf", "csv", "json")  # what `plot` writes per figure


def _default_jobs() -> int:
    return default_jobs()  # runs sharing the GPU on CUDA, else min(2, cores)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", default="quick", choices=SCALES,
                   help="quick: mnist5k on a CPU in minutes; paper: the paper's settings (GPU); "
                   "full: the MNIST-shaped figures on all 60,000 training images, sized for 15 "
                   "minutes of one GPU; full-cpu: Fig. 1 on all 60,000 images, about half an "
                   "hour of 2 CPU cores")
    p.add_argument("--dataset", default=None, choices=MNIST_SHAPED,
                   help="an MNIST-shaped data set replacing the scale's default for Figs. 1, 3, "
                   "5 and the curriculum (e.g. fashion-mnist; figures go to "
                   "paper_figures/SCALE-DATASET/)")
    p.add_argument("--store", default=DEFAULT_ROOT,
                   help=f"run store folder, one sub-folder per run (default {DEFAULT_ROOT}/)")


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=int, default=_default_jobs(),
                   help="runs trained at once, one process each; every run uses the same fixed "
                        "number of torch threads (empirics.train.TRAIN_THREADS), so results do "
                        "not depend on --jobs "
                        "(default: on CUDA 4 runs share the GPU, pipeline.sweep.RUNS_PER_GPU; "
                        "else min(2, cores))")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run on a Ray cluster ('auto', ray://host:port, host:port, or 'local' "
                        "for a Ray instance on this machine), one task per run; each task "
                        "returns its run's records and this process writes them into --store "
                        "(no shared file system needed)")
    p.add_argument("--gpus-per-run", type=float, default=0.0,
                   help="GPUs each Ray task asks for, fractions allowed (default 0); recorded "
                        "in each run's provenance")
    p.add_argument("--checkpoint-storage", metavar="URI", default=None,
                   help="with --ray: where tasks keep their checkpoints (a local path, or any "
                        "URI pyarrow.fs or fsspec opens, e.g. s3://bucket/folder), so a task "
                        "retried on another node resumes from its last epoch (default: each "
                        "checkpoint stays on the node that trained it)")
    p.add_argument("--data-dir", default=None,
                   help="folder holding MNIST/ or cifar-10-batches-py/ (default ./data; "
                        "mnist5k needs none)")
    p.add_argument("--download", action="store_true", help="download missing data (needs internet)")
    p.add_argument("--results", metavar="FOLDER", default=None,
                   help="a results folder of exported records (`export --to`): runs it holds "
                        "count as done, so a sweep on a fresh clone trains only what is missing "
                        "from both (default: results/SCALE[-DATASET]/ when it exists; "
                        "'none' to ignore it)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--channels-last", action="store_true", help=CHANNELS_LAST_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None,
                   help="folder for <fig>.png/.pdf/.csv/.json (default paper_figures/<scale>/)")


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Regenerate the paper's figures: declared sweeps, a resumable run "
                "store (a finished run is never recomputed; an interrupted one resumes from its "
                f"last epoch), local or Ray execution.\nFigures: {', '.join(FIGURE_NAMES)}.",
                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    run = sub.add_parser("run", help="train and profile every missing run of the figures")
    run.add_argument("figures", nargs="+", metavar="FIG",
                     help=", ".join(FIGURE_NAMES + CHECK_RUN_SETS) + " (corollary: the "
                     "corollary check's P4CNN run, which no figure draws)")
    plot = sub.add_parser("plot", help="draw figures from the run store (never trains)")
    plot.add_argument("figures", nargs="+", metavar="FIG", help=", ".join(FIGURE_NAMES))
    every = sub.add_parser("all", help="run and plot every figure whose data set is available "
                           "(and make the check runs verify needs, in the same sweep)")
    lst = sub.add_parser("list", help="list the figures, their runs and which are stored")
    export = sub.add_parser("export", help="copy the small records of every declared run "
                            "(spec, config, metrics, profiles, Theorem 1 results; never "
                            "checkpoints) into a results folder that plot and verify read "
                            "with --store")
    export.add_argument("--to", required=True, metavar="FOLDER",
                        help="results folder to write (a run store without checkpoints)")
    export.add_argument("--partial", action="store_true",
                        help="export the finished runs only while a sweep is still going (its "
                             "records can be committed as they finish); default: refuse "
                             "until every declared run is done")
    for q in (run, plot, every, lst, export):
        _common(q)
    for q in (run, every):
        _run_options(q)
    for q in (plot, every):
        _out(q)
    return p


def _options(args):
    return RunOptions(args.data_dir, args.download, args.device, not args.quiet,
                      checkpoint_storage=args.checkpoint_storage, channels_last=args.channels_last)


def _results(args):
    """The results folder whose records count as done (None: none)."""
    if args.results is None:
        return default_results_dir(args.scale, args.dataset)
    return None if args.results.lower() == "none" else args.results


def _cmd_run(args) -> None:
    figs = [figure(n, args.scale, args.dataset) for n in check_names(args.figures, runnable=True)]
    for fig in figs:  # as `all`: the data first, before the store is touched
        why = make.available(fig, args.data_dir, args.download)
        if why is not None:
            raise UsageError(f"{fig.name}: {why}")
    done = make.ensure(figs, RunStore(args.store), args.jobs, args.ray, args.gpus_per_run,
                       _options(args), results=_results(args))
    total = sum(len(f.runs) for f in figs)
    print(f"{len(done)} run(s) trained and profiled into {args.store}; "
          f"{total - len(done)} were stored already")
    if any(f.theory is not None for f in figs):
        print(f"Theorem 1 check stored in {args.store}")


def _cmd_plot(args) -> None:
    for name in check_names(args.figures):
        paths = plot_figure(name, args.scale, args.store, args.out, dataset=args.dataset)
        print(f"{name}: wrote {', '.join(str(p) for p in paths)}")


def _cmd_all(args) -> None:
    status = run_and_plot(FIGURE_NAMES + CHECK_RUN_SETS, args.scale, args.store, args.jobs,
                          args.ray, args.gpus_per_run, args.data_dir, args.download, args.out,
                          not args.quiet, args.device, dataset=args.dataset,
                          checkpoint_storage=args.checkpoint_storage,
                          results=_results(args), channels_last=args.channels_last)
    for name, what in status.items():
        print(f"{name}: {what}")


def _cmd_list(args) -> None:
    store = RunStore(args.store)
    for name in FIGURE_NAMES:
        if not declared(name, args.scale):
            print(f"{name:<11} not declared at scale {args.scale}")
            continue
        fig = figure(name, args.scale, args.dataset)
        done = len(fig.runs) - len(store.missing(fig.runs))
        print(f"{name:<11} {fig.paper_ref:<28} {fig.dataset:<9} {done}/{len(fig.runs)} runs stored")
        for run in fig.runs:
            cost = ""
            if store.is_done(run):
                rec = store.load(run)
                cpu = "" if rec.cpu_seconds is None else f", {rec.cpu_seconds:.0f} s CPU"
                cost = f"  ({rec.seconds:.0f} s wall{cpu})"
            mark = "done" if cost else "    "
            label = fig.label(run) + (f" seed {run.train.seed}" if len(fig.seeds) > 1 else "")
            print(f"    {mark} {run.key}  {label:<22} {run.describe()}{cost}")


def _cmd_export(args) -> None:
    names = [n for n in (*FIGURE_NAMES, *CHECK_RUN_SETS) if declared(n, args.scale)]
    figs = [figure(n, args.scale, args.dataset) for n in names]
    store = RunStore(args.store)
    written = make.export_records(figs, store, args.to, partial=args.partial)
    print(f"wrote {len(written)} record files of {', '.join(names)} into {args.to}")
    held = RunStore(args.to)  # runs an earlier export put there count as done
    missing = sum(1 for f in figs for run in store.missing(f.runs)
                  if not make.complete(run, held))
    if missing:
        print(f"{missing} declared run(s) not finished yet, not exported; `run` or `all` "
              f"with --results {args.to} continues from these records")


def check_args(args) -> None:
    """Paths, device, sizes and the Ray address of the command line, before any work."""
    trains = args.command in ("run", "all")
    (validate.output_dir if trains else validate.folder_path)(args.store, "--store")
    if args.command in ("plot", "all"):
        out = args.out if args.out is not None else default_out_dir(args.scale, args.dataset)
        validate.output_dir(out, "--out")
        names = check_names(args.figures) if args.command == "plot" else FIGURE_NAMES
        validate.output_files([Path(out) / f"{name}.{ext}" for name in names
                               for ext in FIGURE_FILES], "--out")
    if getattr(args, "to", None) is not None:
        validate.output_dir(args.to, "--to")
    if trains:
        validate.count(args.jobs, "--jobs", 1, validate.MAX_JOBS)
        validate.finite(args.gpus_per_run, "--gpus-per-run")
        if args.gpus_per_run < 0:
            raise UsageError(f"`--gpus-per-run` must be >= 0, got {args.gpus_per_run}")
        if args.data_dir is not None:
            (validate.output_dir if args.download else validate.folder_path)(args.data_dir,
                                                                              "--data-dir")
        validate.device(args.device, "--device")
        if args.ray is not None:
            validate.ray_address(args.ray, "--ray")
        if args.checkpoint_storage is not None:
            if args.ray is None:
                raise UsageError("`--checkpoint-storage` applies to Ray sweeps only (local runs "
                                 "checkpoint into --store); add --ray ADDRESS")
            open_storage(args.checkpoint_storage, "--checkpoint-storage")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    with exit_on_usage_error(PROG):
        check_args(args)
        {"run": _cmd_run, "plot": _cmd_plot, "all": _cmd_all, "list": _cmd_list,
         "export": _cmd_export}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
