"""`python -m empirics.profile RUN_DIR`: the invariance and robustness
profiles of a trained run, written to RUN_DIR/profile.json and printed.

The numbers come from `empirics.profiles`; this file only parses the
command line, loads the run and its test data, and writes the result.
Grids are `start:stop:step` (stop included), a comma list, or one number.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from core import validate
from core.device import pick_device
from core.errors import ArgumentParser, UsageError, exit_on_usage_error
from core.grids import parse_grid
from core.io import atomic_write_json, provenance
from empirics.data import load
from empirics.profiles import InvarianceProfile, RobustnessProfile, measure
from empirics.train import load_model

PROG = "python -m empirics.profile"
PROFILE = "profile.json"


def profile_run(run_dir: str | os.PathLike, thetas, epsilons, test_rotation: float = 0.0,
                steps: int = 40, n_test: int | None = None, seed: int = 0,
                batch_size: int = 500, device=None, data_dir: str | None = None,
                progress: bool = False) -> dict:
    """Both profiles of the run in `run_dir` on its data set's test split
    (a stratified subset of `n_test` images if given); the profile.json record."""
    dev = pick_device(device)
    model, config = load_model(run_dir, dev)
    data = load(config.dataset, "test", data_dir or config.data_dir)
    if n_test is not None:
        if not 1 <= n_test <= len(data):
            raise UsageError(f"--n-test must be in [1, {len(data)}], got {n_test}")
        data = data.subset(n_test, seed=0)
    inv, rob = measure(model, data.images, data.labels, thetas, epsilons, steps, (test_rotation,),
                       seed=seed, batch_size=batch_size, device=dev, progress=progress)
    return {"run_dir": str(run_dir), "n_test": len(data), "train_config": config.to_dict(),
            "invariance": inv.to_dict(), "robustness": rob[float(test_rotation)].to_dict(),
            "provenance": provenance()}


def _cell(est) -> str:
    return f"{est.value:7.4f} [{est.ci_low:.3f}, {est.ci_high:.3f}]"


def format_table(record: dict) -> str:
    """A readable table of both profiles of a profile.json record."""

    inv = InvarianceProfile.from_dict(record["invariance"])
    rob = RobustnessProfile.from_dict(record["robustness"])
    lines = [f"invariance profile ({record['n_test']} test images, angle uniform in [-theta, theta])",
             f"{'theta':>7}  {'invariance [95% CI]':>26}  {'accuracy [95% CI]':>26}"]
    lines += [f"{t:7g}  {_cell(i):>26}  {_cell(a):>26}"
              for t, i, a in zip(inv.thetas, inv.invariance, inv.accuracy)]
    lines += ["", f"robustness profile (PGD-{rob.steps}, test rotation {rob.test_rotation:g} deg)",
              f"{'eps':>7}  {'accuracy [95% CI]':>26}  {'fooling rate [95% CI]':>26}"]
    lines += [f"{e:7.4g}  {_cell(a):>26}  {_cell(f):>26}"
              for e, a, f in zip(rob.epsilons, rob.accuracy, rob.fooling_rate)]
    lines += ["", f"AUC: invariance {inv.auc():.4f}, robust accuracy {rob.auc():.4f}"]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Measure the rotation-invariance profile and the "
                       "PGD robustness profile of a trained run; writes RUN_DIR/profile.json "
                       "and prints a table.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by python -m empirics.train")
    p.add_argument("--thetas", default="0:180:15", help="rotation ranges in degrees, each in "
                   "[0, 180]: START:STOP:STEP (stop included) or a comma list (default 0:180:15)")
    p.add_argument("--eps", default="0:0.3:0.05", help="PGD radii in pixel space, each in [0, 1] "
                   "(default 0:0.3:0.05)")
    p.add_argument("--test-rotation", type=float, default=0.0, metavar="B", help="attack test "
                   "images each first rotated by its own random angle in [-B, B] degrees, B in "
                   "[0, 180] (the paper's A/B convention; default 0)")
    p.add_argument("--steps", type=int, default=40, help="PGD steps (default 40; step 2.5*eps/steps)")
    p.add_argument("--n-test", type=int, default=None, help="use a stratified subset of N test "
                   "images (default: the whole test split)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random test angles (default 0)")
    p.add_argument("--batch-size", type=int, default=500, help="images per forward pass (default 500)")
    p.add_argument("--data-dir", default=None, help="data folder (default: the run's --data-dir)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def check_args(args: argparse.Namespace) -> None:
    """Sizes and paths of the command line, before any work."""
    validate.count(args.steps, "--steps", 1, validate.MAX_STEPS)
    validate.count(args.batch_size, "--batch-size", 1, validate.MAX_SAMPLES)
    if args.n_test is not None:
        validate.count(args.n_test, "--n-test", 1, validate.MAX_SAMPLES)
    if args.data_dir is not None:
        validate.folder_path(args.data_dir, "--data-dir")
    validate.input_dir(args.run_dir, "RUN_DIR")
    validate.output_dir(args.run_dir, "RUN_DIR")  # profile.json is written there


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    with exit_on_usage_error(PROG):
        thetas = parse_grid(args.thetas, "--thetas", 0.0, 180.0)
        epsilons = parse_grid(args.eps, "--eps", 0.0, 1.0)
        if not 0 <= args.test_rotation <= 180:
            raise UsageError(f"--test-rotation must be in [0, 180] degrees, got {args.test_rotation}")
        check_args(args)
        device = validate.device(args.device, "--device")
        record = profile_run(args.run_dir, thetas, epsilons, args.test_rotation, args.steps,
                             args.n_test, args.seed, args.batch_size, device, args.data_dir,
                             progress=not args.quiet)
        atomic_write_json(Path(args.run_dir) / PROFILE, record)
    print(format_table(record))
    print(f"wrote {Path(args.run_dir) / PROFILE}")
    return record


if __name__ == "__main__":
    main()
