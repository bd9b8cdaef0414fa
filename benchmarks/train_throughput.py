"""Training throughput of `empirics.train.train` against a plain PyTorch loop.

StdCNN and P4CNN on mnist5k, batch 64, Adam, no augmentation. The peer:
`benchmarks/plain_loop.py`, the same computation written plainly (NCHW,
default Adam), which tests/test_train_speed.py holds to the same weights.
Ours, counting the training loop alone (`EpochMetrics.train_seconds`: no
test-set evaluation, no checkpoint):
- `train(..., channels_last=True)`: convolutions and pooling run NHWC; the
  weights agree with the peer's within float rounding (1e-5 on a tiny run,
  tests/test_train_speed.py);
- `train(...)` (default): bit for bit the peer's weights; its ratio shows
  the loop's overhead (target: none).
Both with the training loop's fixed intra-op thread count
(`empirics.train.TRAIN_THREADS`). Ratios: our images/s over the peer's
(> 1: ours faster), medians of alternating repeats. Target: channels-last
at least 1.3x the plain loop for both models on a CPU.

    python benchmarks/train_throughput.py                 # declared size
    python benchmarks/train_throughput.py --n 500 --repeats 1   # quick

Declared size: 2,000 training images, 1 epoch, 3 repeats; its numbers go to
benchmarks/results/train_throughput-<device>.json (`--device cuda`: on a GPU).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

import record
from plain_loop import plain_train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.device import pick_device  # noqa: E402
from empirics.train import TrainConfig, load_split, train  # noqa: E402
from empirics.train.loop import TRAIN_THREADS, intra_op_threads  # noqa: E402

PROG = "benchmarks/train_throughput.py"
MODELS = ("stdcnn", "p4cnn")
DECLARED = {"n": 2000, "epochs": 1, "repeats": 3}
BATCH = 64
TARGET = 1.3


def config(model: str, n: int, epochs: int) -> TrainConfig:
    return TrainConfig(model=model, dataset="mnist5k", epochs=epochs, batch_size=BATCH,
                       train_subset=n, test_subset=100)


def plain(cfg: TrainConfig, device: torch.device) -> float:
    """Images per second of the plain loop."""
    data = load_split(cfg, "train")
    _, seconds = plain_train(cfg, data.images, data.labels, device=device)
    return cfg.epochs * len(data) / seconds


def ours(cfg: TrainConfig, device: torch.device, channels_last: bool) -> float:
    """Images per second of train()'s training loop."""
    with tempfile.TemporaryDirectory() as tmp:
        result = train(cfg, Path(tmp) / "run", device=device, progress=False,
                       channels_last=channels_last)
    return sum(m.train_images for m in result.epochs) / sum(m.train_seconds for m in result.epochs)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=DECLARED["n"], help="training images (default 2000)")
    p.add_argument("--epochs", type=int, default=DECLARED["epochs"], help="epochs per run (default 1)")
    p.add_argument("--repeats", type=int, default=DECLARED["repeats"],
                   help="alternating timed runs each (default 3)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    p.add_argument("--record", action="store_true", help="write the results file at any size")
    args = p.parse_args(argv)
    if args.n < BATCH or args.epochs < 1 or args.repeats < 1:
        p.error(f"--n must be >= {BATCH}, --epochs and --repeats >= 1")
    device = pick_device(args.device)
    runs = {f"{m}_{k}": [] for m in MODELS for k in ("plain", "ours", "ours_exact")}
    with intra_op_threads(TRAIN_THREADS):
        print(f"device: {record.describe(device)}")
        for _ in range(args.repeats):  # alternate, so drifting machine load hits all alike
            for m in MODELS:
                cfg = config(m, args.n, args.epochs)
                load_split(cfg, "train")  # parsing the data set is a one-off, not training cost
                runs[f"{m}_plain"].append(plain(cfg, device))
                runs[f"{m}_ours"].append(ours(cfg, device, channels_last=True))
                runs[f"{m}_ours_exact"].append(ours(cfg, device, channels_last=False))
    med = {k: statistics.median(v) for k, v in runs.items()}
    ratios = {f"{m}{s}": med[f"{m}_ours{s}"] / med[f"{m}_plain"] for m in MODELS for s in ("", "_exact")}
    print(f"training, batch {BATCH}, {args.n} images x {args.epochs} epoch(s), "
          f"{TRAIN_THREADS} thread(s) (medians of {args.repeats})")
    for m in MODELS:
        print(f"  {m:<7} plain {med[f'{m}_plain']:7.0f}  ours channels-last {med[f'{m}_ours']:7.0f} "
              f"({ratios[m]:.2f}x, target >= {TARGET}: {'met' if ratios[m] >= TARGET else 'missed'})"
              f"  ours default {med[f'{m}_ours_exact']:7.0f} ({ratios[m + '_exact']:.2f}x) images/s")
    details = {"n": args.n, "epochs": args.epochs, "batch_size": BATCH, "repeats": args.repeats,
               "threads": TRAIN_THREADS, "images_per_second": med, "ratios": ratios, "runs": runs,
               "ours": "stdcnn, train(channels_last=True)", "peer": "stdcnn, benchmarks/plain_loop.py"}
    declared = all(getattr(args, k) == v for k, v in DECLARED.items())
    if declared or args.record:
        path = record.write("train_throughput", device, med["stdcnn_ours"], med["stdcnn_plain"],
                            "images/s", details,
                            argv=[PROG, *(sys.argv[1:] if argv is None else argv)])
        print(f"wrote {path}")
    return {"ratios": ratios, **details}


if __name__ == "__main__":
    main()
