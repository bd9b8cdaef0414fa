"""PGD-40 adversarial training throughput: `empirics.train.train` against the
same loop written plainly.

LeNet on mnist5k, batch 50, Adam, PGD-40 at eps 0.3 (step 2.5 * eps / 40,
random start) on every batch, the model trained on the adversarial images
only. Ours: `train()` for one epoch, counting its training loop alone
(`EpochMetrics.train_seconds`: no test-set evaluation, no checkpoint). The
peer: a plain PyTorch loop over the same data, model, optimizer and attack
(eval mode during the attack, as ours). Both run with the training loop's
fixed intra-op thread count (`empirics.train.TRAIN_THREADS`) on CPU. Ratio:
our images/s over the peer's (> 1: ours faster); ours should be no slower.

    python benchmarks/adv_train_throughput.py                  # declared size
    python benchmarks/adv_train_throughput.py --n 200 --repeats 1   # quick
    python benchmarks/adv_train_throughput.py --amp            # ours in bf16 autocast

Declared size: 500 training images on a CPU, all 5,000 on a GPU, three
alternating repeats (medians); its numbers go to
benchmarks/results/adv_train_throughput-<device>.json.
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

import record

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.device import pick_device  # noqa: E402
from empirics.train import TrainConfig, build, load_split, make_optimizer, train  # noqa: E402
from empirics.train.loop import TRAIN_THREADS, intra_op_threads  # noqa: E402

PROG = "benchmarks/adv_train_throughput.py"
DECLARED_N = {"cpu": 500, "cuda": 5000}
EPS, STEPS, BATCH = 0.3, 40, 50


def config(n: int, amp: bool = False) -> TrainConfig:
    return TrainConfig(model="lenet", dataset="mnist5k", epochs=1, batch_size=BATCH,
                       adv_eps=EPS, adv_steps=STEPS, train_subset=n, test_subset=100, amp=amp)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain(cfg: TrainConfig, device: torch.device) -> float:
    """Images per second of the plain loop."""
    data = load_split(cfg, "train")
    x_all, y_all = data.images.to(device), data.labels.to(device)
    model = build(cfg).to(device)
    opt = make_optimizer(cfg, model)
    gen = torch.Generator().manual_seed(0)
    eps, alpha = EPS, 2.5 * EPS / STEPS
    _sync(device)
    start = time.perf_counter()
    order = torch.randperm(len(y_all), generator=gen).to(device)
    for i in range(0, len(order), cfg.batch_size):
        idx = order[i:i + cfg.batch_size]
        x, y = x_all[idx], y_all[idx]
        model.eval()
        u = torch.rand(x.shape, generator=gen).to(device)
        x_adv = torch.clamp(x + (2 * u - 1) * eps, 0, 1)
        for _ in range(STEPS):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model(x_adv), y, reduction="sum")
            grad, = torch.autograd.grad(loss, x_adv)
            x_adv = x_adv.detach() + alpha * grad.sign()
            x_adv = torch.clamp(torch.min(torch.max(x_adv, x - eps), x + eps), 0, 1)
        model.train()
        loss = F.cross_entropy(model(x_adv), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return len(y_all) / (time.perf_counter() - start)


def ours(cfg: TrainConfig, device: torch.device) -> float:
    """Images per second of train()'s training loop."""
    with tempfile.TemporaryDirectory() as tmp:
        result = train(cfg, Path(tmp) / "run", device=device, progress=False)
    m = result.epochs[0]
    return m.train_images / m.train_seconds


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=None,
                   help="training images (default: 1000 on a CPU, 5000 on a GPU)")
    p.add_argument("--repeats", type=int, default=3, help="alternating timed runs each (default 3)")
    p.add_argument("--amp", action="store_true", help="ours with bf16 autocast (the peer stays float32)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--record", action="store_true", help="write the results file at any size")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    declared_n = DECLARED_N.get(device.type, DECLARED_N["cpu"])
    n = args.n or declared_n
    if n < BATCH or args.repeats < 1:
        p.error(f"--n must be >= {BATCH} and --repeats >= 1")
    cfg = config(n, args.amp)
    load_split(cfg, "train")  # parsing the data set is a one-off, not training cost
    with intra_op_threads(TRAIN_THREADS):
        print(f"device: {record.describe(device)}")
        runs = {"ours": [], "plain": []}
        for _ in range(args.repeats):  # alternate, so drifting machine load hits both alike
            runs["ours"].append(ours(cfg, device))
            runs["plain"].append(plain(cfg, device))
    med = {k: statistics.median(v) for k, v in runs.items()}
    details = {"n": n, "batch_size": BATCH, "eps": EPS, "steps": STEPS, "amp": args.amp,
               "repeats": args.repeats, "threads": TRAIN_THREADS, "runs": runs}
    ratio = med["ours"] / med["plain"]
    print(f"PGD-{STEPS} adversarial training, LeNet, batch {BATCH}, {n} images, "
          f"{'bf16 autocast' if args.amp else 'float32'} (medians of {args.repeats})")
    print(f"  ours  {med['ours']:8.1f} images/s\n  plain {med['plain']:8.1f} images/s\n"
          f"  ratio {ratio:.2f}x (ours / plain; target: >= 1, no loop overhead)")
    if (n == declared_n and args.repeats == 3 and not args.amp) or args.record:
        path = record.write("adv_train_throughput", device, med["ours"], med["plain"], "images/s",
                            details, argv=[PROG, *(sys.argv[1:] if argv is None else argv)])
        print(f"wrote {path}")
    return {"ours": med["ours"], "plain": med["plain"], "ratio": ratio, **details}


if __name__ == "__main__":
    main()
