"""Where a robustness profile changes, and whether an eps grid resolves it.

A PGD accuracy curve is resolved by a grid when at least `MIN_POINTS` grid
values lie between `start`, the eps where accuracy first falls below
`START_FRACTION` (90 %) of clean accuracy, and `stop`, the eps where it first
reaches `STOP_ACCURACY` (5 %); both are read off the measured curve by
linear interpolation between grid points.

- `resolution(epsilons, accuracy)` -> `Resolution` of one measured curve.
- `suggest_grid(resolutions)`: a grid 0:top:step whose step puts at least
  `MIN_POINTS` values inside the narrowest measured range and whose top
  lies past every curve's `stop`.
- `python -m pipeline.calibrate RUN_DIR [RUN_DIR ...] --eps 0:0.1:0.0025`:
  the coarse pass: PGD profiles of trained run folders on a fine, wide grid,
  each curve's range and the suggested grid, written to `--out` (JSON) so
  that a declaration can cite it.
"""
from __future__ import annotations

import math
import shlex
import sys
from dataclasses import asdict, dataclass

from core import validate
from core.errors import ArgumentParser, UsageError, exit_on_usage_error
from core.grids import parse_grid
from core.io import atomic_write_json, provenance
from empirics.data import test_subset
from empirics.profiles import robustness_profile
from empirics.train import load_model

START_FRACTION = 0.9
STOP_ACCURACY = 0.05
MIN_POINTS = 8
PROG = "python -m pipeline.calibrate"


@dataclass(frozen=True)
class Resolution:
    """The eps range [start, stop] where one PGD accuracy curve changes and
    how many grid values lie in it; None where the curve never gets there."""

    clean: float
    start: float | None
    stop: float | None
    points: int

    @property
    def resolved(self) -> bool:
        return self.start is not None and self.stop is not None and self.points >= MIN_POINTS

    def to_dict(self) -> dict:
        return {**asdict(self), "resolved": self.resolved}


def _crossing(epsilons, accuracy, level: float, strict: bool) -> float | None:
    """First eps where the curve goes below (strict) or to (not strict)
    `level`, interpolated linearly on the segment where it happens."""
    for k, a in enumerate(accuracy):
        if (a < level) if strict else (a <= level):
            if k == 0:
                return float(epsilons[0])
            e0, e1, a0, a1 = epsilons[k - 1], epsilons[k], accuracy[k - 1], a
            return float(e0 + (e1 - e0) * (a0 - level) / (a0 - a1)) if a0 != a1 else float(e1)
    return None


def resolution(epsilons, accuracy) -> Resolution:
    """Where the curve `accuracy` (one value per eps, eps[0] = 0 the clean
    accuracy) changes, and how many grid values lie in that range."""
    epsilons, accuracy = [float(e) for e in epsilons], [float(a) for a in accuracy]
    if len(epsilons) != len(accuracy) or len(epsilons) < 2 or epsilons[0] != 0.0:
        raise ValueError("`epsilons` must start at 0 and match `accuracy` in length (>= 2 values)")
    clean = accuracy[0]
    start = _crossing(epsilons, accuracy, START_FRACTION * clean, strict=True)
    stop = _crossing(epsilons, accuracy, STOP_ACCURACY, strict=False)
    inside = 0 if start is None or stop is None else sum(start <= e <= stop for e in epsilons)
    return Resolution(clean, start, stop, inside)


def _nice_step(step: float) -> float:
    """The largest of 1, 2, 2.5, 5 x 10^k not above `step`."""
    k = math.floor(math.log10(step))
    for m in (5, 2.5, 2, 1):
        if m * 10 ** k <= step:
            return round(m * 10 ** k, 12)
    return round(10 ** k, 12)


def suggest_grid(resolutions) -> tuple[float, ...]:
    """0:top:step with at least MIN_POINTS + 1 steps across the narrowest
    range and top the first grid value past the largest stop."""
    found = [r for r in resolutions if r.start is not None and r.stop is not None]
    if not found:
        raise UsageError("no measured curve crosses both levels: widen --eps")
    width = min(r.stop - r.start for r in found)
    step = _nice_step(max(width, 1e-6) / (MIN_POINTS + 1))
    top = math.ceil(max(r.stop for r in found) / step + 1) * step
    return tuple(round(k * step, 10) for k in range(int(round(top / step)) + 1))


# ------------------------------------------------------------ command line
def parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="The coarse pass behind a declaration's eps grid: "
                       "PGD profiles of trained run folders on a wide grid, the range where "
                       "each curve changes (below 90 % of clean accuracy .. 5 % accuracy) and "
                       "a grid that puts at least 8 points inside every range.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="folders written by "
                   "python -m empirics.train")
    p.add_argument("--eps", default="0:0.3:0.005", help="the wide grid (default 0:0.3:0.005)")
    p.add_argument("--steps", type=int, default=10, help="PGD steps (default 10)")
    p.add_argument("--n-test", type=int, default=1000, help="stratified test images (default 1000)")
    p.add_argument("--data-dir", default=None, help="data folder (default: the run's)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--out", required=True, help="JSON file to write")
    return p


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    with exit_on_usage_error(PROG):
        epsilons = parse_grid(args.eps, "--eps", 0.0, 1.0)
        if epsilons[0] != 0.0:
            raise UsageError(f"--eps must start at 0, got {args.eps!r}")
        validate.count(args.steps, "--steps", 1, validate.MAX_STEPS)
        validate.count(args.n_test, "--n-test", 1, validate.MAX_SAMPLES)
        out = validate.output_file(args.out, "--out")
        device = validate.device(args.device, "--device")
        rows = []
        for run in args.run_dirs:
            model, config = load_model(validate.input_dir(run, "RUN_DIR"), device)
            test = test_subset(config.dataset, args.n_test, 0, args.data_dir or config.data_dir)
            prof = robustness_profile(model, test.images, test.labels, epsilons,
                                      steps=args.steps, device=device,
                                      progress=sys.stderr.isatty())
            acc = [e.value for e in prof.accuracy]
            rows.append({"run_dir": run, "model": config.model, "dataset": config.dataset,
                         "train_rotation": config.train_rotation, "adv_eps": config.adv_eps,
                         "epochs": config.epochs, "accuracy": acc,
                         "resolution": resolution(epsilons, acc).to_dict()})
        grid = suggest_grid(Resolution(r["resolution"]["clean"], r["resolution"]["start"],
                                       r["resolution"]["stop"], r["resolution"]["points"])
                            for r in rows)
        record = {"command": f"{PROG} {shlex.join(argv)}", "epsilons": list(epsilons),
                  "pgd_steps": args.steps, "n_test": args.n_test, "runs": rows,
                  "suggested_grid": list(grid), "min_points": MIN_POINTS,
                  "provenance": provenance()}
        atomic_write_json(out, record)
    for r in rows:
        res = r["resolution"]
        print(f"{r['run_dir']}: clean {res['clean']:.3f}, changes over eps "
              f"[{res['start']}, {res['stop']}]")
    print(f"suggested grid: 0:{grid[-1]:g}:{grid[1]:g} ({len(grid)} points); wrote {out}")
    return record


if __name__ == "__main__":
    main()
