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
`attack_gap_results` reads them from finished run records (the pipeline
measured AutoAttack and PGD on the same points: `pipeline.experiments`
ATTACK_GAP_*).
"""
from __future__ import annotations

import numpy as np

from core.estimate import Estimate
from pipeline.experiments import ATTACK_GAP_AUTOATTACK, QUOTED_STEPS, attack_gap_pgd_name
from verify import gather, stats
from verify.checks import combine_verdicts
from verify.result import CheckResult

ATTACK_GAP_REF = ("robustness profiles (Sec. 2) measured with PGD; AutoAttack: Croce and "
                  "Hein, ICML 2020")
DEFAULT_TOLERANCE = 0.01  # 1 accuracy point
PAPER_PGD_STEPS = QUOTED_STEPS
AUTOATTACK_TEXT = "standard (APGD-CE, APGD-T, FAB-T, Square)"


def _outcomes(values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 2 or min(arr.shape) < 1:
        raise ValueError(f"`{name}` must be (n_eps, n) per-point outcomes, got shape {arr.shape}.")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"`{name}` must hold booleans (correct or not).")
    return arr.astype(bool)


def attack_gap_check(name: str, model: str, epsilons, pgd_correct, aa_correct, *,
                     pgd_steps: int, tolerance: float = DEFAULT_TOLERANCE, level: float = 0.95,
                     n_resamples: int = 2000, seed: int = 0, data=(),
                     autoattack: str = AUTOATTACK_TEXT) -> CheckResult:
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
               "autoattack": autoattack,
               "interval": f"Clopper-Pearson {level:.0%} (bootstrap in per_eps)",
               "n_points": n, "worst_eps": eps[k], "per_eps": per_eps}
    eps_text = ", ".join(f"{e:g}" for e in eps)
    claim = (f"{model}: PGD-{pgd_steps} overestimates robust accuracy by less than {tolerance:g} "
             f"(against the per-point worst case with AutoAttack, standard) at eps {eps_text}")
    return CheckResult(name, ATTACK_GAP_REF, claim, gaps[k].value, (gaps[k].ci_low, gaps[k].ci_high),
                       combine_verdicts(verdicts), details, tuple(data))


def _autoattack_text(result: dict) -> str:
    """What ran, as the stored evaluation records it."""
    info = result.get("attacks", {}).get("autoattack", {})
    return ", ".join(str(v) for v in (AUTOATTACK_TEXT, info.get("library")) if v)


def attack_gap_results(records, tolerance: float = DEFAULT_TOLERANCE) -> list[CheckResult]:
    """One `attack_gap_check` per finished run record and PGD step count,
    read from the measurements stored with the run: AutoAttack once, PGD at
    the profile's own step count and at the paper's 40, on the same points."""
    results = []
    for record in records:
        spec = record.spec
        aa = gather.measurement(record, ATTACK_GAP_AUTOATTACK)
        eps, aa_correct = gather.attacked_correct(aa, "autoattack")  # (n_eps, n)
        label = f"{spec.train.model} (run {spec.key})"
        for s in dict.fromkeys((spec.pgd_steps, PAPER_PGD_STEPS)):
            pgd_eps, pgd_correct = gather.attacked_correct(
                gather.measurement(record, attack_gap_pgd_name(s)), "pgd")
            if pgd_eps != eps:
                raise ValueError(f"run {spec.key}: the PGD-{s} and AutoAttack measurements "
                                 f"differ in eps ({pgd_eps} vs {eps})")
            results.append(attack_gap_check(f"attack_gap_{spec.key}_pgd{s}", label, eps,
                                            pgd_correct, aa_correct, pgd_steps=int(s),
                                            tolerance=tolerance, data=[spec.key],
                                            autoattack=_autoattack_text(aa)))
    return results
