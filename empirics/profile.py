"""`python -m empirics.profile RUN_DIR`: the invariance and robustness
profiles of a trained run, written to RUN_DIR/profile.json and printed.

The record is the one schema of a model's profile (`invrob.evaluation/1`,
`empirics.evaluate.Evaluation.to_dict()` plus `test_points`), the same
document `invrob profile --model RUN_DIR` writes for the same measurement
(that one adds the spatial attacks, `rotation.spatial`). It names the
checkpoint's epoch (`model.epoch`, `model.finished`) and the test points.
The run folder's lock is held while measuring, so a folder being trained
is refused rather than measured half-way.

The numbers come from `empirics.profiles`; this file parses the command
line, loads the run and its test data, and writes the result. Grids are
`start:stop:step` (stop included), a comma list, or one number; numbers
may be fractions (8/255).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from core import validate
from core.device import pick_device
from core.errors import ArgumentParser, UsageError, exit_on_usage_error
from core.grids import parse_grid
from core.io import atomic_write_json, provenance
from core.lock import RunLock
from empirics.data import DATASETS, ImageData, SUBSET_SEED, load
from empirics.evaluate import Evaluation
from empirics.external import sha256
from empirics.profiles import InvarianceProfile, measure
from empirics.train import read_config
from empirics.train.loop import load_checkpointed
from empirics.train.folder import check_run_folder

PROG = "python -m empirics.profile"
PROFILE = "profile.json"


def load_run(run_dir: str | os.PathLike, device=None):
    """(model in eval mode on `device`, its TrainConfig, the `model` record):
    the run's last saved epoch, with that epoch and whether training finished."""
    model, config, ckpt, path = load_checkpointed(run_dir)
    record = {"kind": "run", "spec": str(run_dir), "weights": str(path),
              "weights_sha256": sha256(path), "kwargs": {}, "train_config": config.to_dict(),
              "epoch": int(ckpt["epoch"]), "finished": int(ckpt["epoch"]) == config.epochs}
    return model.to(pick_device(device)).eval(), config, record


def test_points(full: ImageData, n: int | None) -> tuple[ImageData, dict]:
    """The test images measured (a stratified subset of `n`, drawn with the
    fixed SUBSET_SEED, or the whole split) and the record naming them."""
    if n is not None and not 1 <= n <= len(full):
        raise UsageError(f"--n-test must be in [1, {len(full)}], got {n}")
    if n is None or n == len(full):
        return full, {"split": "test", "n": len(full), "of": len(full), "subset_seed": None,
                      "indices": None}
    idx = full.subset_indices(n, SUBSET_SEED)
    return full.subset(n, SUBSET_SEED), {"split": "test", "n": n, "of": len(full),
                                         "subset_seed": SUBSET_SEED, "indices": idx.tolist()}


def record_of(ev: Evaluation, points: dict, test_rotation: float = 0.0) -> dict:
    """The profile record of `ev` (both commands write this)."""
    d = ev.to_dict()
    if "pgd" in d["attacks"]:
        d["attacks"]["pgd"]["test_rotation"] = float(test_rotation)
    d["test_points"] = points
    return d


def run_lock(run_dir) -> RunLock:
    """The run folder's writer lock: training, profiling and writing
    profile.json exclude each other (re-entrant within a process)."""
    return RunLock(run_dir, f"run folder {run_dir}")


def profile_run(run_dir: str | os.PathLike, thetas, epsilons, test_rotation: float = 0.0,
                steps: int = 40, n_test: int | None = None, seed: int = 0,
                batch_size: int = 500, device=None, data_dir: str | None = None,
                progress: bool = False, command: str | None = None) -> dict:
    """Both profiles of the run in `run_dir` on its data set's test split
    (a stratified subset of `n_test` images if given), measured under the
    run folder's lock; the profile.json record."""
    dev = pick_device(device)
    read_config(run_dir)  # a folder that is no run is refused before the lock touches it
    with run_lock(run_dir):
        model, config, source = load_run(run_dir, dev)
        data, points = test_points(load(config.dataset, "test", data_dir or config.data_dir),
                                   n_test)
        inv, rob = measure(model, data.images, data.labels, thetas, epsilons, steps,
                           (test_rotation,), seed=seed, batch_size=batch_size, device=dev,
                           progress=progress)
    pgd = rob[float(test_rotation)]
    source.update({"class": type(model).__name__,
                   "n_parameters": sum(p.numel() for p in model.parameters()),
                   "input_normalization": None})
    ev = Evaluation(tuple(float(e) for e in epsilons), inv.clean_correct, tuple(pgd.broken_at),
                    None, int(steps), int(seed), DATASETS[config.dataset].num_classes, inv, None,
                    config.dataset, source, command, provenance())
    return record_of(ev, points, test_rotation)


def _cell(est) -> str:
    return f"{est.value:7.4f} [{est.ci_low:.3f}, {est.ci_high:.3f}]"


def format_table(record: dict) -> str:
    """A readable table of both profiles of a profile record."""
    ev = Evaluation.from_dict(record)
    inv = InvarianceProfile.from_dict(record["rotation"]["invariance"])
    model = record["model"]
    epoch = (f"; checkpoint of epoch {model['epoch']}"
             + ("" if model.get("finished") else " (training unfinished)")) if "epoch" in model else ""
    lines = [f"invariance profile ({ev.n} test images{epoch}; angle uniform in [-theta, theta])",
             f"{'theta':>7}  {'invariance [95% CI]':>26}  {'accuracy [95% CI]':>26}"]
    lines += [f"{t:7g}  {_cell(i):>26}  {_cell(a):>26}"
              for t, i, a in zip(inv.thetas, inv.invariance, inv.accuracy)]
    rotation = record["attacks"]["pgd"].get("test_rotation", 0.0)
    lines += ["", f"robustness profile (PGD-{ev.pgd_steps}, test rotation {rotation:g} deg)",
              f"{'eps':>7}  {'accuracy [95% CI]':>26}"]
    lines += [f"{e:7.4g}  {_cell(a):>26}" for e, a in zip(ev.epsilons, ev.robust_accuracy("pgd"))]
    lines += ["", f"AUC: invariance {inv.auc():.4f}"]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Measure the rotation-invariance profile and the "
                       "PGD robustness profile of a trained run; writes RUN_DIR/profile.json "
                       "(the invrob.evaluation/1 record, naming the checkpoint's epoch) and "
                       "prints a table. Refuses a run folder that is being trained.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by python -m empirics.train")
    p.add_argument("--thetas", default="0:180:15", help="rotation ranges in degrees, each in "
                   "[0, 180]: START:STOP:STEP (stop included) or a comma list (default 0:180:15)")
    p.add_argument("--eps", default="0:0.3:0.05", help="PGD radii in pixel space, each in [0, 1], "
                   "numbers or fractions such as 8/255 (default 0:0.3:0.05)")
    p.add_argument("--test-rotation", type=float, default=0.0, metavar="B", help="attack test "
                   "images each first rotated by its own random angle in [-B, B] degrees, B in "
                   "[0, 180] (the paper's A/B convention; default 0)")
    p.add_argument("--steps", type=int, default=40, help=f"PGD steps, at most "
                   f"{validate.MAX_ATTACK_STEPS:,} (default 40; step 2.5*eps/steps)")
    p.add_argument("--n-test", type=int, default=None, help="use a stratified subset of N test "
                   f"images drawn with the fixed subset seed {SUBSET_SEED} (the same N always "
                   "gives the same images; default: the whole test split)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random test angles, in "
                   "[0, 2^63) (default 0)")
    p.add_argument("--batch-size", type=int, default=500, help="images per forward pass, at "
                   f"most {validate.MAX_BATCH:,} (default 500)")
    p.add_argument("--data-dir", default=None, help="data folder (default: the run's --data-dir)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def check_args(args: argparse.Namespace) -> None:
    """Sizes and paths of the command line, before any work."""
    validate.count(args.steps, "--steps", 1, validate.MAX_ATTACK_STEPS)
    validate.count(args.batch_size, "--batch-size", 1, validate.MAX_BATCH)
    validate.seed(args.seed, "--seed")
    if args.n_test is not None:
        validate.count(args.n_test, "--n-test", 1, validate.MAX_SAMPLES)
    if args.data_dir is not None:
        validate.folder_path(args.data_dir, "--data-dir")
    validate.input_dir(args.run_dir, "RUN_DIR")
    validate.output_dir(args.run_dir, "RUN_DIR")  # profile.json is written there
    validate.output_file(Path(args.run_dir) / PROFILE, "RUN_DIR")
    check_run_folder(args.run_dir, "RUN_DIR")


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    with exit_on_usage_error(PROG):
        thetas = parse_grid(args.thetas, "--thetas", 0.0, 180.0)
        epsilons = parse_grid(args.eps, "--eps", 0.0, 1.0)
        if not 0 <= args.test_rotation <= 180:
            raise UsageError(f"--test-rotation must be in [0, 180] degrees, got {args.test_rotation}")
        check_args(args)
        device = validate.device(args.device, "--device")
        read_config(args.run_dir)
        with run_lock(args.run_dir):
            record = profile_run(args.run_dir, thetas, epsilons, args.test_rotation, args.steps,
                                 args.n_test, args.seed, args.batch_size, device, args.data_dir,
                                 progress=not args.quiet,
                                 command=f"{PROG} {shlex.join(argv)}".rstrip())
            atomic_write_json(Path(args.run_dir) / PROFILE, record)
    print(format_table(record))
    print(f"wrote {Path(args.run_dir) / PROFILE}")
    return record


if __name__ == "__main__":
    main()
