"""Paper-scale sweep: wall time of the Fig. 1 declaration's runs on a
full-size data set (Fashion-MNIST, 60,000 training and 10,000 test images).

The runs are `pipeline.experiments.figure("fig1", "paper", "fashion-mnist")`:
21 StdCNN trainings (training rotation 0 to 180 degrees, three seeds), each
followed by its invariance and PGD-40 robustness profiles, executed by
`pipeline.sweep.run_sweep` into a fresh run store with --jobs runs at once
(default `pipeline.sweep.default_jobs()`: several runs sharing the GPU). With
--peer-jobs J the same runs are executed again with J at once (e.g. 1: one
run at a time), and the ratio is that wall time over ours.

The declared protocol is sized for a GPU; on a CPU it is refused unless the
size is reduced (--runs, --epochs, --train-subset, --n-test) for a smoke
test, whose numbers are written only with --record.

    python benchmarks/paper_sweep.py --data-dir data                 # GPU, declared
    python benchmarks/paper_sweep.py --data-dir data --peer-jobs 1   # and one at a time
    python benchmarks/paper_sweep.py --data-dir data --runs 2 --epochs 1 \\
        --train-subset 500 --n-test 100                               # CPU smoke test
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import record

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.device import pick_device  # noqa: E402
from pipeline.experiments import figure, with_train  # noqa: E402
from pipeline.runstore import RunStore  # noqa: E402
from pipeline.sweep import RunOptions, default_jobs, run_sweep  # noqa: E402

PROG = "benchmarks/paper_sweep.py"
DATASET = "fashion-mnist"


def runs(args) -> tuple:
    """The declared runs, reduced by the size options."""
    specs = figure("fig1", "paper", DATASET).runs
    if args.runs is not None:
        specs = specs[:args.runs]
    changes = {k: v for k, v in (("epochs", args.epochs), ("train_subset", args.train_subset))
               if v is not None}
    if changes:
        specs = tuple(with_train(s, **changes) for s in specs)
    if args.n_test is not None:
        specs = tuple(dataclasses.replace(s, n_test=args.n_test) for s in specs)
    return specs


def sweep_seconds(specs, jobs: int, options: RunOptions) -> float:
    with tempfile.TemporaryDirectory() as store:
        start = time.perf_counter()
        run_sweep(specs, RunStore(store), jobs=jobs, options=options)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="data", help="folder holding FashionMNIST/ (default ./data)")
    p.add_argument("--jobs", type=int, default=None,
                   help="runs at once (default: pipeline.sweep.default_jobs() for the device)")
    p.add_argument("--peer-jobs", type=int, default=None,
                   help="also time the same runs with this many at once; ratio = theirs / ours")
    p.add_argument("--runs", type=int, default=None, help="only the first N declared runs")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: declared)")
    p.add_argument("--train-subset", type=int, default=None, help="training images per run")
    p.add_argument("--n-test", type=int, default=None, help="test images per profile")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--record", action="store_true", help="write the results file at any size")
    args = p.parse_args(argv)
    for name in ("jobs", "peer_jobs", "runs", "epochs", "train_subset", "n_test"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer")
    device = pick_device(args.device)
    declared = all(getattr(args, k) is None for k in ("runs", "epochs", "train_subset", "n_test"))
    if declared and device.type != "cuda":
        print(f"{PROG}: the declared protocol (21 runs of 50 epochs on 60,000 images) is sized "
              "for a GPU; on a CPU pass a reduced size (see --help) for a smoke test.")
        return 0
    specs = runs(args)
    jobs = args.jobs or default_jobs(device)
    options = RunOptions(data_dir=args.data_dir, device=str(device), progress=False)
    print(f"device: {record.describe(device)}")
    print(f"{len(specs)} run(s) of fig1 (paper) on {DATASET}, {specs[0].train.epochs} epochs, "
          f"{specs[0].train.train_subset or 'all'} training images, {specs[0].n_test} test "
          f"images; {jobs} at once")
    ours = sweep_seconds(specs, jobs, options)
    print(f"  wall time {ours:.1f} s ({ours / len(specs):.1f} s per run)")
    peer = None
    if args.peer_jobs is not None:
        peer = sweep_seconds(specs, args.peer_jobs, options)
        print(f"  with {args.peer_jobs} at once: {peer:.1f} s; ratio {peer / ours:.2f}x")
    if declared or args.record:
        details = {"runs": len(specs), "jobs": jobs, "peer_jobs": args.peer_jobs,
                   "epochs": specs[0].train.epochs, "train_subset": specs[0].train.train_subset,
                   "n_test": specs[0].n_test, "dataset": DATASET, "keys": [s.key for s in specs]}
        path = record.write("paper_sweep", device, ours, peer, "s", details,
                            argv=[PROG, *(sys.argv[1:] if argv is None else argv)])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
