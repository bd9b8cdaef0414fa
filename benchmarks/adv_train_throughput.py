"""PGD-40 adversarial training throughput: `empirics.train.train` against the
same computation written as a plain PyTorch loop.

LeNet on mnist5k, batch 50, Adam, PGD-40 at eps 0.3 (step 2.5 * eps / 40,
random start) on every batch, the model trained on the adversarial images
only. Ours: `train()` for one epoch, counting its training loop alone
(`EpochMetrics.train_seconds`: no test-set evaluation, no checkpoint); its
attack turns the parameters' requires_grad off, so each PGD step's backward
computes the input's gradient only. The peers: `benchmarks/plain_loop.py`
(eval mode during the attack, parameters requiring gradients), whose PGD
takes its gradient either as advertorch does (`loss.backward()`, then
`x_adv.grad`: the weight gradients are computed too, then thrown away) or
as torchattacks does (`torch.autograd.grad(loss, x_adv)`: the engine
already skips the weight gradients). tests/test_train_speed.py holds both
peers to ours, weight for weight, bit for bit. Also, for information, the
plain loop with channels-last inputs (NHWC convolutions): faster, but its
weights drift from the others' beyond rounding (PGD's sign steps amplify
rounding), so `train()` does not offer it for adversarial runs.

All with the training loop's fixed intra-op thread count
(`empirics.train.TRAIN_THREADS`), on the CPU unless --device says otherwise. Ratios: our images/s over a
peer's (> 1: ours faster), medians of alternating repeats. Target: at least
1.5x the plain loop.

    python benchmarks/adv_train_throughput.py                  # declared size
    python benchmarks/adv_train_throughput.py --n 100 --repeats 1   # quick

Declared size: 500 training images, three alternating repeats; its numbers
go to benchmarks/results/adv_train_throughput-<device>.json (ours against
the advertorch-style peer; the torchattacks-style ratio in its details).
`--device cuda`: all 5,000 images.
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

PROG = "benchmarks/adv_train_throughput.py"
DECLARED_N = {"cpu": 500, "cuda": 5000}
EPS, STEPS, BATCH = 0.3, 40, 50
TARGET = 1.5
PEERS = {"plain_backward": dict(grad="backward"), "plain_autograd": dict(grad="autograd"),
         "plain_channels_last": dict(grad="autograd", memory_format=torch.channels_last)}


def config(n: int) -> TrainConfig:
    return TrainConfig(model="lenet", dataset="mnist5k", epochs=1, batch_size=BATCH,
                       adv_eps=EPS, adv_steps=STEPS, train_subset=n, test_subset=100)


def plain(cfg: TrainConfig, device: torch.device, **kwargs) -> float:
    """Images per second of the plain loop."""
    data = load_split(cfg, "train")
    _, seconds = plain_train(cfg, data.images, data.labels, device=device, **kwargs)
    return len(data) / seconds


def ours(cfg: TrainConfig, device: torch.device) -> float:
    """Images per second of train()'s training loop."""
    with tempfile.TemporaryDirectory() as tmp:
        result = train(cfg, Path(tmp) / "run", device=device, progress=False)
    m = result.epochs[0]
    return m.train_images / m.train_seconds


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=None,
                   help="training images (default: 500 on a CPU, 5000 on a GPU)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    p.add_argument("--repeats", type=int, default=3, help="alternating timed runs each (default 3)")
    p.add_argument("--record", action="store_true", help="write the results file at any size")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    declared_n = DECLARED_N.get(device.type, DECLARED_N["cpu"])
    n = args.n or declared_n
    if n < BATCH or args.repeats < 1:
        p.error(f"--n must be >= {BATCH} and --repeats >= 1")
    cfg = config(n)
    load_split(cfg, "train")  # parsing the data set is a one-off, not training cost
    runs = {"ours": [], **{k: [] for k in PEERS}}
    with intra_op_threads(TRAIN_THREADS):
        print(f"device: {record.describe(device)}")
        for _ in range(args.repeats):  # alternate, so drifting machine load hits all alike
            runs["ours"].append(ours(cfg, device))
            for k, kwargs in PEERS.items():
                runs[k].append(plain(cfg, device, **kwargs))
    med = {k: statistics.median(v) for k, v in runs.items()}
    ratios = {k: med["ours"] / med[k] for k in PEERS}
    details = {"n": n, "batch_size": BATCH, "eps": EPS, "steps": STEPS,
               "repeats": args.repeats, "threads": TRAIN_THREADS, "images_per_second": med,
               "ratios": ratios, "runs": runs,
               "peer": "plain_backward: benchmarks/plain_loop.py, PGD gradient by loss.backward()"}
    print(f"PGD-{STEPS} adversarial training, LeNet, batch {BATCH}, {n} images, float32 "
          f"(medians of {args.repeats})")
    print(f"  ours                 {med['ours']:8.1f} images/s")
    for k in PEERS:
        print(f"  {k:<20} {med[k]:8.1f} images/s   ours / it: {ratios[k]:.2f}x")
    r = ratios["plain_backward"]
    print(f"ours vs the plain loop (loss.backward PGD): {r:.2f}x "
          f"(target >= {TARGET}: {'met' if r >= TARGET else 'missed'}); "
          f"vs the autograd.grad PGD: {ratios['plain_autograd']:.2f}x")
    if (n == declared_n and args.repeats == 3) or args.record:
        path = record.write("adv_train_throughput", device, med["ours"], med["plain_backward"],
                            "images/s", details, argv=[PROG, *(sys.argv[1:] if argv is None else argv)])
        print(f"wrote {path}")
    return {"ours": med["ours"], **details}


if __name__ == "__main__":
    main()
