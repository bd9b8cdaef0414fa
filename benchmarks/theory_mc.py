"""Throughput and peak memory of the streaming Monte-Carlo estimator
(theory.montecarlo) against a plain all-at-once numpy version, on D(p, d)
at d = 100 with the paper's f*.

    python benchmarks/theory_mc.py [--sizes 1000000 10000000] [--naive-max 1000000]

The all-at-once version holds n x (2d+1) float32 three times (clean, swapped,
attacked): 2.4 GB at n = 1e6 and 24 GB at 1e7, so it runs only up to
--naive-max. Peak memory is measured with tracemalloc (numpy reports its
buffers to it), so both versions are measured the same way. Runs on the CPU
(numpy); at the default sizes the throughput at the largest n both versions
ran goes to benchmarks/results/theory_mc-cpu.json (`record.py`).
"""
from __future__ import annotations

import argparse
import sys
import time
import tracemalloc

import numpy as np

import record
from theory import classifiers, distribution, montecarlo
from theory.distribution import ModelParams


def streaming(params: ModelParams, n: int, seed: int) -> float:
    acc = montecarlo.estimate(classifiers.f_star(params.d), params, n, seed=seed)
    return acc.clean.value


def all_at_once(params: ModelParams, n: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    x, y = distribution.sample(params, n, rng)                           # (n, 2d+1)
    f = classifiers.f_star(params.d)
    views = (x, distribution.swap(x, params, rng), distribution.perturb(x, y, params))
    correct = [int(np.count_nonzero(f(v) == y)) for v in views]
    return correct[0] / n


def measure(fn, params: ModelParams, n: int, seed: int = 0) -> dict:
    tracemalloc.start()
    t0 = time.perf_counter()
    clean = fn(params, n, seed)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"n": n, "seconds": seconds, "samples_per_s": n / seconds,
            "peak_mib": peak / 2**20, "clean_accuracy": clean}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--naive-max", type=int, default=1_000_000,
                    help="largest n for the all-at-once version (memory grows with n)")
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--record", action="store_true", help="write the results file at any size")
    args = ap.parse_args(argv)
    params = ModelParams(0.7, args.d)
    rows = {}
    print(f"device: {record.describe('cpu')} (numpy)")
    print(f"{'version':<12}{'n':>12}{'seconds':>10}{'samples/s':>14}{'peak MiB':>11}{'clean acc':>11}")
    for n in args.sizes:
        for name, fn in (("streaming", streaming), ("all-at-once", all_at_once)):
            if name == "all-at-once" and n > args.naive_max:
                continue
            r = rows[name, n] = measure(fn, params, n)
            print(f"{name:<12}{n:>12,}{r['seconds']:>10.2f}{r['samples_per_s']:>14,.0f}"
                  f"{r['peak_mib']:>11.1f}{r['clean_accuracy']:>11.5f}", flush=True)
    ns = sorted(n for kind, n in rows if kind == "streaming")
    both = [n for n in ns if ("all-at-once", n) in rows]
    for n in both:
        s, a = rows["streaming", n], rows["all-at-once", n]
        print(f"n={n:,}: streaming/all-at-once throughput {s['samples_per_s'] / a['samples_per_s']:.2f}x, "
              f"all-at-once/streaming peak memory {a['peak_mib'] / s['peak_mib']:.1f}x")
    if len(ns) > 1:
        lo, hi = rows["streaming", ns[0]], rows["streaming", ns[-1]]
        print(f"streaming peak memory n={ns[-1]:,} / n={ns[0]:,}: {hi['peak_mib'] / lo['peak_mib']:.2f}x "
              f"for {ns[-1] / ns[0]:.0f}x the samples (flat = 1)")
    defaults = ap.parse_args([])
    if both and (args.record or vars(args) == vars(defaults)):
        n = both[-1]
        path = record.write("theory_mc", "cpu", rows["streaming", n]["samples_per_s"],
                            rows["all-at-once", n]["samples_per_s"], "samples/s",
                            {"n": n, "d": args.d, "rows": [{"version": k, **v} for (k, _), v in rows.items()]},
                            argv=["benchmarks/theory_mc.py", *(sys.argv[1:] if argv is None else argv)])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
