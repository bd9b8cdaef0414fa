"""Check Theorem 1: proof steps (sympy), exact frontier, and Monte-Carlo
accuracies of every classifier against the bound.

    python -m theory.check --p 0.7 [--d 100] [--n 200000] [--seed 0]
        [--mu 3] [--eta 1] [--q 0.5] [--train-steps 200] [--json] [--plot FILE]

Exit status: 0 consistent, 1 some classifier's bound left side lies above
the bound beyond its interval (a refutation), 2 bad input.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

from theory import bound, classifiers as clf, frontier as fr, montecarlo
from theory.result import (Bound, CheckConfig, ClassifierResult, Provenance, TheoremCheck,
                           as_check)
from core import validate
from core.errors import ArgumentParser, UsageError, exit_on_usage_error
from theory.distribution import DEFAULT_CHUNK

PROG = "python -m theory.check"


def all_classifiers(config: CheckConfig) -> tuple:
    """The exact rules and the six trained models."""
    model = config.model
    trained = clf.trained_classifiers(model, seed=config.seed, steps=config.train_steps)
    return (*clf.exact_rules(model), *trained)


def run_check(config: CheckConfig, progress: bool = False) -> TheoremCheck:
    """Run every part of the check for one configuration."""
    model = config.model
    steps = bound.proof_steps(model)
    front = fr.frontier(model)
    rules = all_classifiers(config)
    mc = montecarlo.estimate_many({r.name: r for r in rules}, model, config.n,
                                  seed=config.seed, progress=progress)
    limit = Bound.at(config.p)
    results = tuple(ClassifierResult(r.name, mc[r.name], clf.exact_of(r, model),
                                     mc[r.name].violates(limit.rhs)) for r in rules)
    return TheoremCheck(config, bound.theorem_applies(steps), limit, steps, front, results,
                        Provenance.now())


def _fmt(est) -> str:
    return f"{est.value:.4f} [{est.ci_low:.4f},{est.ci_high:.4f}]"


def format_table(result: TheoremCheck | dict) -> str:
    """The human-readable report of a check (or of its `to_dict()`)."""
    res = as_check(result)
    prm, bd, fro = res.config, res.bound, res.frontier
    lines = [f"Theorem 1 on D(p={prm.p}, d={prm.d}), mu={prm.mu}, eta={prm.eta}, "
             f"q={prm.q}, n={prm.n}, seed={prm.seed}",
             f"bound: Pr[f(rX)=Y] + {bd.coefficient:.4f} * Pr[f(X+A)=Y] <= {bd.rhs:.4f}"
             f"   (corollary: not both >= 1-delta > p = {prm.p})",
             f"theorem applies at these parameters: {'yes' if res.theorem_applies else 'no'}",
             "", "proof steps (sympy):"]
    lines += [f"  {'PASS' if s.passed else 'FAIL'}  {s.name:<22} {s.statement}"
              f"  [residual: {s.residual}]" for s in res.proof_steps]
    lines += ["", f"exact frontier ({len(fro.points)} points): bound's left side ranges "
              f"{fro.min_lhs:.6f} .. {fro.max_lhs:.6f} vs rhs {fro.rhs:.6f} "
              f"(slack {fro.slack:.2e}); the paper's bound "
              + ("holds for every classifier" if fro.bound_holds else "FAILS for some classifier"),
              "",
              f"{'classifier':<22}{'clean':>26}{'spatial':>26}{'adversarial':>26}{'lhs':>26}"
              f"{'exact (clean/spatial/adv/lhs)':>34}"]
    sides = ("clean", "spatial", "adversarial", "lhs")
    for c in res.classifiers:
        exs = "-" if c.exact is None else "/".join(f"{getattr(c.exact, k):.4f}" for k in sides)
        flag = "  VIOLATES" if c.violates else ""
        lines.append(f"{c.name:<22}" + "".join(f"{_fmt(getattr(c, k)):>26}" for k in sides)
                     + f"{exs:>34}{flag}")
    lines += ["", f"verdict: {res.verdict} (no classifier's left side exceeds "
              f"{bd.rhs:.4f} beyond its 95% interval)" if res.consistent
              else f"verdict: violated (a classifier's left side exceeds {bd.rhs:.4f} "
              "beyond its 95% interval)"]
    return "\n".join(lines)


def theorem1_figure(result: TheoremCheck | dict, path):
    """Draw the Theorem 1 figure from a `TheoremCheck` or its JSON dict."""
    # Imported here: theory.figure (matplotlib) adds 0.55-0.9 s to the import of
    # this module (-X importtime, 2 shared cores) and only --plot needs it.
    from theory.figure import theorem1_figure as draw
    return draw(result, path)


def _parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog=PROG, description=(
        "Check Theorem 1 of the paper on the synthetic distribution D(p, d): verify each proof "
        "step with sympy, compute the exact frontier of (spatial, adversarial) accuracy over all "
        "classifiers, and estimate by Monte-Carlo where fixed and trained classifiers land "
        "against the bound. Exit 0 consistent, 1 violated, 2 bad input."))
    ap.add_argument("--p", type=float, required=True, help="Pr[X0 = Y], in [1/2, 1)")
    ap.add_argument("--d", type=int, default=100, help="number of Gaussian pairs (default 100)")
    ap.add_argument("--n", type=int, default=200_000, help="Monte-Carlo samples (default 200000)")
    ap.add_argument("--seed", type=int, default=0, help="seed for sampling and training, in "
                    "[0, 2^63) (default 0)")
    ap.add_argument("--mu", type=float, default=3.0, help="feature strength, |mu| at most 40 "
                    "(paper: 3)")
    ap.add_argument("--eta", type=float, default=1.0, help="attack scale; A moves each "
                    "coordinate by eta*2*mu/sqrt(d), |eta * mu| at most 30 (paper: 1)")
    ap.add_argument("--q", type=float, default=0.5, help="swap probability of r (paper: 1/2)")
    ap.add_argument("--train-steps", type=int, default=200,
                    help="Adam steps for each trained model, at most "
                    f"{validate.MAX_TRAIN_STEPS:,} (default 200)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--plot", metavar="FILE", help="write the figure (PNG, or PDF/SVG by suffix)")
    return ap


def memory_estimate(d: int, n: int) -> float:
    """Bytes a check of dimension `d` with `n` Monte-Carlo samples holds at
    its peak: each trained model's float32 training set (and a copy), a few
    float32 copies of one Monte-Carlo chunk, the MLP with its Adam state."""
    dim = 2 * d + 1
    spec = clf.TrainSpec(clf.KINDS[0], clf.MODES[0])
    rows = 2 * spec.n_train + 4 * min(n, DEFAULT_CHUNK) + 4 * spec.hidden
    return 4.0 * dim * rows


def check_sizes(d: int, n: int, train_steps: int) -> None:
    """Sizes within the stated maxima and a run that fits in memory, or a UsageError."""
    validate.count(d, "--d", 1, validate.MAX_DIMENSION)
    validate.count(n, "--n", 1, validate.MAX_SAMPLES)
    validate.count(train_steps, "--train-steps", 1, validate.MAX_TRAIN_STEPS)
    validate.memory(memory_estimate(d, n), "--d", f"a check with d = {d:,}")


# Phi(40) is 1 to double precision: a stronger feature changes nothing measurable.
MAX_MU = 40.0
# The exact frontier's grid grows with the attack's shift eta * 2 mu / sqrt(d); at 10x
# the paper's (eta * mu = 30) a check takes about 20 s on one core, at 100x minutes.
MAX_SHIFT = 30.0


def check_scales(mu: float, eta: float) -> None:
    """`--mu` and `--eta` within what the exact frontier computes in seconds."""
    if not abs(mu) <= MAX_MU:
        raise UsageError(f"`--mu` must lie in [-{MAX_MU:g}, {MAX_MU:g}] (Phi({MAX_MU:g}) is 1 in "
                         f"double precision), got {mu:g}")
    if not abs(eta * mu) <= MAX_SHIFT:
        raise UsageError(f"`--eta` x `--mu` must be at most {MAX_SHIFT:g} in size (10x the "
                         f"paper's attack shift), got {eta:g} x {mu:g}")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    with exit_on_usage_error(PROG):
        for name in ("p", "mu", "eta", "q"):
            if not math.isfinite(getattr(args, name)):
                raise ValueError(f"argument --{name}: must be a finite number")
        check_sizes(args.d, args.n, args.train_steps)
        check_scales(args.mu, args.eta)
        validate.seed(args.seed, "--seed")
        config = CheckConfig(args.p, args.d, args.n, args.seed, args.mu, args.eta, args.q,
                             args.train_steps)
        if args.plot is not None:
            validate.output_file(args.plot, "--plot")
    result = run_check(config, progress=not args.json and sys.stderr.isatty())
    if args.plot:
        theorem1_figure(result, args.plot)
    print(json.dumps(result.to_dict()) if args.json else format_table(result))
    return 0 if result.consistent else 1


if __name__ == "__main__":
    raise SystemExit(main())
