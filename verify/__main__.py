"""python -m verify --scale quick: every claim of the paper checked against data.

Runs the Theorem 1 check, the MNIST sweeps the checks need (reusing the run
store; `python -m paper_figures` does the training and plotting), every
check, and writes `<out>/<scale>/report.md` and `checks.json`.
Exit status: 0 when it ran (whatever the verdicts), 1 when some check could
not run (an ERROR row; the report is still written), 2 for bad input.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from core import validate
from core.errors import ArgumentParser, exit_on_usage_error
from pipeline.experiments import MNIST_SHAPED, SCALES
from core.io import atomic_write_json, atomic_write_text, provenance
from pipeline.runstore import portable_path
from pipeline.sweep import CHANNELS_LAST_HELP
from verify import report
from verify.result import ERROR
from verify.run import MNIST_FIGURES, READINGS, VerifyConfig, run_verify, say

PROG = "python -m verify"
MIN_RESAMPLES = 100  # fewer cannot place a 95 % percentile interval (VerifyConfig)
REPORT_FILES = ("report.md", "checks.json")


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=(
        "Check every claim of the paper against data: claims (i) and (ii) as rank correlations "
        "of profile AUCs with paired bootstrap intervals, the quoted numbers of Sec. 2.1 under "
        "PGD in pixel and in normalised eps units, Theorem 1 on learned classifiers, the Sec. 1.1 "
        "rot90 corollary, and CuSP against fixed training. Trains what the run store lacks "
        f"(figures {', '.join(MNIST_FIGURES)}), then writes OUT/SCALE/report.md and checks.json. "
        "Exit 0 when it ran (whatever the verdicts), 1 when a check could not run, 2 for bad "
        "input."))
    p.add_argument("--scale", default="quick", choices=SCALES, help="figure scale: quick (CPU, "
                   "mnist5k; default), paper (the paper's protocol), full (all 60,000 training "
                   "images, sized for 15 minutes of one GPU) or full-cpu (all 60,000 Fashion-MNIST "
                   "training images, sized for a few hours of 2 CPU cores)")
    p.add_argument("--dataset", default=None, choices=MNIST_SHAPED, help="an MNIST-shaped data "
                   "set replacing the scale's default (mnist5k for quick, mnist otherwise), "
                   "e.g. fashion-mnist; the report goes to OUT/SCALE-DATASET/")
    p.add_argument("--store", default="run_store", help="run store folder (default run_store)")
    p.add_argument("--out", default="reports", help="reports folder; the report goes to "
                   "OUT/SCALE/ (default reports)")
    p.add_argument("--figures", default="paper_figures", help="where paper_figures writes "
                   "SCALE/*.png (default paper_figures)")
    p.add_argument("--jobs", type=int, default=1, help="runs trained in parallel (default 1)")
    p.add_argument("--data-dir", default=None, help="folder with MNIST/CIFAR-10 files for the "
                   "full data sets (mnist5k needs none)")
    p.add_argument("--channels-last", action="store_true", help=CHANNELS_LAST_HELP)
    p.add_argument("--no-sweep", action="store_true", help="do not train: check what the run "
                   "store already holds (missing runs give ERROR rows)")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples, "
                   f"{MIN_RESAMPLES} to {validate.MAX_STEPS:,} (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed, in [0, 2^63) (default 0)")
    return p


def check_args(args) -> None:
    """Paths and sizes of the command line, before any work."""
    (validate.folder_path if args.no_sweep else validate.output_dir)(args.store, "--store")
    validate.output_dir(args.out, "--out")
    validate.folder_path(args.figures, "--figures")
    if args.data_dir is not None:
        validate.folder_path(args.data_dir, "--data-dir")
    validate.count(args.jobs, "--jobs", 1, validate.MAX_JOBS)
    validate.count(args.resamples, "--resamples", MIN_RESAMPLES, validate.MAX_STEPS)
    validate.seed(args.seed, "--seed")


def config_from_args(args) -> VerifyConfig:
    check_args(args)
    config = VerifyConfig(scale=args.scale, dataset=args.dataset, store=args.store, out=args.out,
                          figures_dir=args.figures, jobs=args.jobs, data_dir=args.data_dir,
                          sweep=not args.no_sweep, channels_last=args.channels_last, n_resamples=args.resamples, seed=args.seed)
    validate.output_files([config.report_dir / name for name in REPORT_FILES], "--out")
    return config


def figure_files(config: VerifyConfig) -> list[Path]:
    root = Path(config.figures_dir)
    return sorted((root / config.label).glob("*.png"))


def commands(config: VerifyConfig, argv) -> list[str]:
    s = config.scale + (f" --dataset {config.dataset}" if config.dataset else "")
    return [f"python -m paper_figures all --scale {s}   # trains what the store lacks, plots",
            f"{PROG} {shlex.join(argv)}".rstrip()]


def write_outputs(config: VerifyConfig, results, notes, argv) -> Path:
    out = config.report_dir
    prov = {**provenance(), "run_store": portable_path(config.store),
            "command": f"{PROG} {shlex.join(argv)}".rstrip()}
    md = report.markdown(results, config.label, figure_files(config), out,
                         commands(config, argv), prov, notes, READINGS)
    paths = ("store", "out", "figures_dir", "data_dir")
    settings = {k: portable_path(v) if k in paths and v is not None else v
                for k, v in config.to_dict().items()}
    atomic_write_json(out / "checks.json", {"scale": config.label, "config": settings,
                                            "notes": list(notes), "provenance": prov,
                                            "checks": [r.to_dict() for r in results]})
    atomic_write_text(out / "report.md", md)
    return out / "report.md"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    with exit_on_usage_error(PROG):
        config = config_from_args(args)
    results, notes = run_verify(config)
    say("4/4 writing the report ...")
    path = write_outputs(config, results, notes, argv)
    print(report.text_table(results))
    errors = sum(r.verdict == ERROR for r in results)
    print(f"\nreport:  {path}\nchecks:  {path.parent / 'checks.json'}\n"
          f"figures: {Path(config.figures_dir) / config.label}/")
    if errors:
        print(f"{errors} check(s) could not run (ERROR rows); see the report", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
