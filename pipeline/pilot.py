"""The adversarial-training pilot: which PGD-k and which budget a short
adversarial training needs, measured before a sweep is declared.

`python -m pipeline.pilot --dataset fashion-mnist --eps 0.1 --steps 2,3,5
--epochs 1 --train-subset 10000 --out results/calibration/lenet-pilot.json`
trains one LeNet per (eps, k) (plus the eps-0 baseline) with the warm-up,
schedule and per-epoch held-out robust check of `TrainConfig`, and records
for each: clean test accuracy, held-out PGD-10 accuracy at the training eps
after every epoch, any robust-accuracy collapse, and training images/s.

`choose_steps` reads the record: the cheapest k whose final robust accuracy
is within `TOLERANCE` of the best k's (more PGD steps cost proportionally
more; a k that is no stronger is not worth its cost). The declarations cite
the record they were sized by.
"""
from __future__ import annotations

import shlex
import sys
import tempfile
from dataclasses import dataclass, replace

from core import validate
from core.errors import ArgumentParser, exit_on_usage_error
from core.grids import parse_grid
from core.io import atomic_write_json, provenance
from empirics.train import TrainConfig, train
from empirics.train.folder import robust_collapse

PROG = "python -m pipeline.pilot"
# Robust accuracy within 2 points of the best k counts as as strong: about two
# binomial standard errors of a 500-image check at accuracy 0.5 (sqrt(.25/500) = 0.022).
TOLERANCE = 0.02


@dataclass(frozen=True)
class PilotRow:
    """One pilot training: its config and what it reached."""

    adv_eps: float
    adv_steps: int
    clean_accuracy: float
    robust_accuracy: list  # per epoch (None where eps = 0)
    collapse: dict | None
    images_per_second: float
    train_seconds: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def pilot_row(config: TrainConfig, device=None, progress: bool = True) -> PilotRow:
    """Train `config` into a temporary folder and read off what it reached."""
    with tempfile.TemporaryDirectory(prefix="pilot-") as tmp:
        result = train(config, tmp, device=device, progress=progress)
    epochs = result.epochs
    seconds = sum(m.train_seconds for m in epochs)
    return PilotRow(config.adv_eps, config.adv_steps, epochs[-1].test_accuracy,
                    [m.robust_accuracy for m in epochs], robust_collapse(epochs),
                    sum(m.train_images for m in epochs) / seconds, seconds)


def choose_steps(rows) -> dict:
    """{eps: the cheapest k whose final robust accuracy is within TOLERANCE of
    the best k's at that eps} over the adversarial rows of a pilot."""
    by_eps: dict[float, list] = {}
    for r in rows:
        if r["adv_eps"] > 0:
            by_eps.setdefault(r["adv_eps"], []).append(r)
    chosen = {}
    for eps, rs in by_eps.items():
        best = max(r["robust_accuracy"][-1] for r in rs)
        ok = [r for r in rs if r["collapse"] is None and r["robust_accuracy"][-1] >= best - TOLERANCE]
        chosen[eps] = min(r["adv_steps"] for r in (ok or rs))
    return chosen


def parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description=(
        "Train one model per (training eps, PGD steps) on a budget and record clean accuracy, "
        "held-out PGD-10 accuracy per epoch, collapses and throughput; suggests the cheapest "
        "PGD-k that is as strong as the best."))
    p.add_argument("--model", default="lenet", help="model name (default lenet)")
    p.add_argument("--dataset", default="mnist5k", help="data set (default mnist5k)")
    p.add_argument("--data-dir", default=None, help="data folder (default ./data)")
    p.add_argument("--eps", default="0.1", help="training eps, comma list (default 0.1)")
    p.add_argument("--steps", default="3", help="PGD steps of training, comma list (default 3)")
    p.add_argument("--epochs", type=int, default=1, help="epochs per pilot run (default 1)")
    p.add_argument("--batch-size", type=int, default=50, help="batch size (default 50)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--adv-warmup", type=float, default=0.0, help="epochs of eps ramp (default 0)")
    p.add_argument("--lr-schedule", default="step", help="step or cosine (default step)")
    p.add_argument("--train-subset", type=int, default=None, help="stratified training images")
    p.add_argument("--test-subset", type=int, default=None, help="stratified test images")
    p.add_argument("--robust-check", type=int, default=500,
                   help="held-out images of the PGD-10 check (default 500)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    with exit_on_usage_error(PROG):
        args = parser().parse_args(argv)
        validate.output_file(args.out, "--out")
        device = validate.device(args.device, "--device")
        eps = parse_grid(args.eps, "--eps", 0.0, 1.0)
        steps = [validate.count(int(k), "--steps", 1, 1000)
                 for k in parse_grid(args.steps, "--steps", 1, 1000)]
        base = TrainConfig(model=args.model, dataset=args.dataset, data_dir=args.data_dir,
                           epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                           adv_warmup=args.adv_warmup, lr_schedule=args.lr_schedule,
                           train_subset=args.train_subset, test_subset=args.test_subset,
                           robust_check=args.robust_check, seed=args.seed)
        configs = [replace(base, adv_eps=0.0, adv_warmup=0.0)] + [
            replace(base, adv_eps=e, adv_steps=k) for e in eps if e > 0 for k in steps]
        rows = []
        for config in configs:
            row = pilot_row(config, device, progress=not args.quiet)
            rows.append(row.to_dict())
            attack = f"PGD-{row.adv_steps}" if row.adv_eps > 0 else "no attack"
            print(f"eps {row.adv_eps:g} {attack}: clean {row.clean_accuracy:.3f}, "
                  f"robust {row.robust_accuracy}, {row.images_per_second:.0f} img/s",
                  file=sys.stderr)
        doc = {"command": "python -m pipeline.pilot " + shlex.join(argv),
               "base_config": {k: v for k, v in base.to_dict().items() if k != "data_dir"},
               "rows": rows, "chosen_steps": {f"{e:g}": k for e, k in choose_steps(rows).items()},
               "tolerance": TOLERANCE, "provenance": provenance()}
        atomic_write_json(args.out, doc)
    return doc


if __name__ == "__main__":
    main()
