"""Are the PGD robustness profiles trustworthy? AutoAttack against PGD.

A single PGD can overestimate robustness (the reason AutoAttack exists).
On the same test points, a point counts as robust at eps only if PGD and
the standard AutoAttack both leave it correct (the per-point worst case);
the gap at eps is PGD accuracy minus worst-case accuracy, i.e. the
fraction of points that PGD leaves correct and AutoAttack breaks.

Verdict rule: the gap is a binomial proportion, so its interval is the
exact (Clopper-Pearson) one, as for the quoted numbers in `verify.checks`
(a percentile bootstrap, kept in the details, collapses to [0, 0] when no
such point is seen, whatever the number of points). At each eps: HOLDS
when the whole interval lies below the tolerance, FAILS when it lies wholly
above, else INCONCLUSIVE; over the eps grid: FAILS if any eps fails, HOLDS
if all hold, else INCONCLUSIVE. Statistic: the largest gap over the grid,
with its interval.

`attack_gap_check` is the pure check on per-point outcomes;
`attack_gap_results` runs the attacks on finished run records.
"""
from __future__ import annotations

import numpy as np

from core.estimate import Estimate
from empirics.autoattack import autoattack_profile
from empirics.data import DATASETS
from empirics.profiles import robustness_profile
from pipeline import make
from verify import stats
from verify.checks import combine_verdicts
from verify.result import CheckResult

ATTACK_GAP_REF = ("robustness profiles (Sec. 2) measured with PGD; AutoAttack: Croce and "
                  "Hein, ICML 2020")
DEFAULT_TOLERANCE = 0.01  # 1 accuracy point
DEFAULT_EPSILONS = (0.1, 0.2)
DEFAULT_POINTS = 200
PAPER_PGD_STEPS = 40


def _outcomes(values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 2 or min(arr.shape) < 1:
        raise ValueError(f"`{name}` must be (n_eps, n) per-point outcomes, got shape {arr.shape}.")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"`{name}` must hold booleans (correct or not).")
    return arr.astype(bool)


def attack_gap_check(name: str, model: str, epsilons, pgd_correct, aa_correct, *,
                     pgd_steps: int, tolerance: float = DEFAULT_TOLERANCE, level: float = 0.95,
                     n_resamples: int = 2000, seed: int = 0, data=()) -> CheckResult:
    """Does PGD-`pgd_steps` overestimate robust accuracy by less than
    `tolerance` at every eps of `epsilons`?

    pgd_correct, aa_correct: (n_eps, n) bool, point i correct after PGD /
    after AutoAttack at epsilons[j], on the same points."""
    eps = tuple(float(e) for e in epsilons)
    pgd = _outcomes(pgd_correct, "pgd_correct")
    aa = _outcomes(aa_correct, "aa_correct")
    if pgd.shape != aa.shape or pgd.shape[0] != len(eps):
        raise ValueError(f"`pgd_correct` and `aa_correct` must both be ({len(eps)}, n), "
                         f"got {pgd.shape} and {aa.shape}.")
    if not 0 < tolerance < 1:
        raise ValueError(f"`tolerance` must lie in (0, 1), got {tolerance}.")
    n = pgd.shape[1]
    worst = pgd & aa  # (n_eps, n)
    per_eps, verdicts, gaps = [], [], []
    for j, e in enumerate(eps):
        missed = int((pgd[j] & ~aa[j]).sum())  # PGD correct, AutoAttack breaks it
        gap = Estimate.from_counts(missed, n, method="clopper-pearson", level=level)
        boot = stats.paired_difference(pgd[j].astype(float), worst[j].astype(float),
                                       n_resamples=n_resamples, seed=seed, level=level)
        verdict = stats.threshold_verdict(gap.ci_low, gap.ci_high, tolerance, "below")
        verdicts.append(verdict)
        gaps.append(gap)
        per_eps.append({"eps": e, "pgd_accuracy": float(pgd[j].mean()),
                        "autoattack_accuracy": float(aa[j].mean()),
                        "worst_case_accuracy": float(worst[j].mean()),
                        "gap": gap.value, "gap_ci_exact": [gap.ci_low, gap.ci_high],
                        "gap_ci_bootstrap": list(boot.ci), "missed_by_pgd": missed,
                        "found_by_pgd_only": int((~pgd[j] & aa[j]).sum()), "verdict": verdict})
    k = int(np.argmax([g.value for g in gaps]))
    details = {"statistic": "largest over eps of PGD accuracy minus worst-case (PGD and "
                            "AutoAttack) accuracy",
               "tolerance": tolerance, "pgd_steps": int(pgd_steps),
               "autoattack": "standard (APGD-CE, APGD-T, FAB-T, Square), torchattacks",
               "interval": f"Clopper-Pearson {level:.0%} (bootstrap in per_eps)",
               "n_points": n, "worst_eps": eps[k], "per_eps": per_eps}
    eps_text = ", ".join(f"{e:g}" for e in eps)
    claim = (f"{model}: PGD-{pgd_steps} overestimates robust accuracy by less than {tolerance:g} "
             f"(against the per-point worst case with AutoAttack, standard) at eps {eps_text}")
    return CheckResult(name, ATTACK_GAP_REF, claim, gaps[k].value, (gaps[k].ci_low, gaps[k].ci_high),
                       combine_verdicts(verdicts), details, tuple(data))


def attack_gap_results(records, epsilons=DEFAULT_EPSILONS, n_points: int = DEFAULT_POINTS,
                       steps=None, tolerance: float = DEFAULT_TOLERANCE,
                       data_dir: str | None = None, device=None,
                       progress: bool = False) -> list[CheckResult]:
    """One `attack_gap_check` per finished run record and PGD step count.

    Each record (`record.run_dir`, `record.spec` with `.train.dataset`,
    `.n_test`, `.profile_seed`, `.pgd_steps`, `.key`) is evaluated on a
    stratified `n_points` subset (seed `profile_seed`) of the test images
    its profiles were measured on. steps: PGD step counts to compare (default:
    the profile's own and the paper's 40). AutoAttack runs once per record."""
    eps = tuple(sorted({float(e) for e in epsilons}))
    if not eps or any(not 0 < e <= 1 for e in eps):
        raise ValueError(f"`epsilons` must be radii in (0, 1], got {epsilons}.")
    results = []
    for record in records:
        spec = record.spec
        model = make.model_of(record, device)
        subset = make.test_data(spec, data_dir)
        points = subset.subset(min(n_points, len(subset)), seed=spec.profile_seed)
        classes = DATASETS[spec.train.dataset].num_classes
        aa = autoattack_profile(model, points.images, points.labels, eps, classes,
                                seed=spec.profile_seed, progress=progress)
        aa_correct = np.array(aa.correct())  # (n_eps, n)
        key = getattr(spec, "key", str(record.run_dir))
        label = f"{spec.train.model} (run {key})"
        step_counts = tuple(dict.fromkeys(steps or (spec.pgd_steps, PAPER_PGD_STEPS)))
        for s in step_counts:
            rob = robustness_profile(model, points.images, points.labels, eps, steps=int(s),
                                     seed=spec.profile_seed, device=device, progress=progress)
            pgd_correct = np.array([[b > j for b in rob.broken_at] for j in range(len(eps))])
            results.append(attack_gap_check(f"attack_gap_{key}_pgd{s}", label, eps,
                                            pgd_correct, aa_correct, pgd_steps=int(s),
                                            tolerance=tolerance, data=[key]))
    return results
