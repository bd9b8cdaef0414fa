"""Training throughput: `empirics.train.train` against a bare PyTorch loop.

Same model, data (mnist5k train split), batch size, optimizer and device;
no rotation, no attack, so any difference is the loop's own overhead
(generators, metrics, progress, per-epoch evaluation and checkpoints).
Two figures for ours: the training loop alone (`EpochMetrics.train_seconds`)
and end to end (wall time of `train()` per epoch, including the test-set
evaluation and the atomic checkpoint). Also the cost of P4CNN relative to
StdCNN, and of rotation augmentation. Target: loop overhead under 5 %.

    python benchmarks/train_throughput.py [--epochs 2] [--repeats 3] [--json out.json]

Prints the device's name; at the default settings the loop's throughput
against the bare loop's goes to benchmarks/results/train_throughput-<device>.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.device import pick_device  # noqa: E402
from core.io import atomic_write_json, provenance  # noqa: E402
from empirics.train import TrainConfig, build, load_split, make_optimizer, train  # noqa: E402

import record  # noqa: E402


def bare_loop(config: TrainConfig, device: torch.device) -> float:
    """Images per second of a plain loop over the same data, model and optimizer."""
    data = load_split(config, "train")
    x_all, y_all = data.images.to(device), data.labels.to(device)
    model = build(config).to(device)
    opt = make_optimizer(config, model)
    gen = torch.Generator().manual_seed(0)
    model.train()
    start = time.perf_counter()
    for _ in range(config.epochs):
        order = torch.randperm(len(y_all), generator=gen).to(device)
        for i in range(0, len(order), config.batch_size):
            idx = order[i:i + config.batch_size]
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return config.epochs * len(y_all) / (time.perf_counter() - start)


def ours(config: TrainConfig, device: torch.device) -> tuple[float, float]:
    """(loop images/s, end-to-end images/s) of empirics.train.train."""
    load_split(config, "train")  # data parsing is a one-off, not training cost
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train(config, Path(tmp) / "run", device=device, progress=False)
        wall = time.perf_counter() - start
    images = sum(m.train_images for m in result.epochs)
    return images / sum(m.train_seconds for m in result.epochs), images / wall


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2, help="epochs per timed run (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="alternating timed runs each (default 3)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--device", default=None, help="default: cuda if available")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    p.add_argument("--record", action="store_true", help="write the results file at any settings")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    std = TrainConfig(model="stdcnn", epochs=args.epochs, batch_size=args.batch_size)
    p4 = TrainConfig(model="p4cnn", epochs=args.epochs, batch_size=args.batch_size)
    rot = TrainConfig(model="stdcnn", epochs=args.epochs, batch_size=args.batch_size,
                      train_rotation=180.0)
    runs = {"bare": [], "ours_loop": [], "ours_end_to_end": [], "p4cnn_loop": [], "rotation_loop": []}
    for _ in range(args.repeats):  # alternate, so drifting machine load hits all alike
        runs["bare"].append(bare_loop(std, device))
        loop, end = ours(std, device)
        runs["ours_loop"].append(loop)
        runs["ours_end_to_end"].append(end)
        runs["p4cnn_loop"].append(ours(p4, device)[0])
        runs["rotation_loop"].append(ours(rot, device)[0])
    med = {k: statistics.median(v) for k, v in runs.items()}
    report = {
        "device": str(device), "threads": args.threads, "batch_size": args.batch_size,
        "epochs": args.epochs, "repeats": args.repeats, "images_per_second": med,
        "loop_overhead": med["bare"] / med["ours_loop"] - 1,
        "end_to_end_overhead": med["bare"] / med["ours_end_to_end"] - 1,
        "p4cnn_over_stdcnn_cost": med["ours_loop"] / med["p4cnn_loop"],
        "rotation_cost": med["ours_loop"] / med["rotation_loop"],
        "provenance": provenance()}
    print(f"device {record.describe(device)}, {args.threads} thread(s), batch {args.batch_size}, "
          f"{args.epochs} epochs x {args.repeats} repeats (medians)")
    for k, v in med.items():
        print(f"  {k:<16} {v:9.0f} images/s")
    print(f"train() loop overhead vs bare loop: {100 * report['loop_overhead']:+.1f} % "
          f"(target < 5 %: {'met' if report['loop_overhead'] < 0.05 else 'NOT met'})")
    print(f"train() end to end (eval + checkpoint each epoch): "
          f"{100 * report['end_to_end_overhead']:+.1f} %")
    print(f"P4CNN / StdCNN cost per image: {report['p4cnn_over_stdcnn_cost']:.2f}x")
    print(f"rotation augmentation (theta 180) cost: {report['rotation_cost']:.2f}x")
    if args.json:
        atomic_write_json(args.json, report)
    if args.record or vars(args) == vars(p.parse_args([])):
        path = record.write("train_throughput", device, med["ours_loop"], med["bare"], "images/s",
                            {k: v for k, v in report.items() if k != "provenance"},
                            argv=["benchmarks/train_throughput.py",
                                  *(sys.argv[1:] if argv is None else argv)])
        print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
