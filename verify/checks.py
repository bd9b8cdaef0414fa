"""The paper's claims as pure functions of per-test-point outcomes.

Each check takes plain arrays (or Estimates) and returns a `CheckResult`;
pulling those inputs from the stored records is `verify.gather`'s job
(measuring them is the pipeline's: `pipeline.measurements`). Arrays of
outcomes are (models, [seeds,] points), paired across models: the same test
points, the same seeded angles.

Verdict rules (stated once, used everywhere):
- trends (claims (i), (ii)): Spearman's rho of the per-model AUC against the
  training knob, paired bootstrap over test points (and seeds) -> percentile
  interval; HOLDS if it excludes 0 on the claimed side, FAILS if on the other.
- quoted numbers: an exact (Clopper-Pearson) interval for a proportion;
  HOLDS/FAILS when it lies wholly on one side of the quoted threshold.
- Theorem 1: a classifier violates the bound only if its whole interval for
  the bound's left side lies above the right side.
- differences between two models: paired bootstrap intervals; "better" and
  "worse" need the interval to exclude 0.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from core.estimate import Estimate
from core.outcomes import correct_by_eps, grid_index
from pipeline.experiments import MNIST_STD
from verify import stats
from verify.result import CheckResult

CLAIM_I_REF = "Sec. 2.1, Figs. 1 and 3; claim (i)"
CLAIM_II_REF = "Sec. 2.2, Fig. 5; claim (ii)"
QUOTED_REF = "Sec. 2.1, text on Fig. 1"
THEOREM_REF = "Sec. 3, Theorem 1"
COROLLARY_REF = "Sec. 1.1, corollary"
CURRICULUM_REF = "v5 abstract (CuSP)"


def correct_at(epsilons, broken_at, eps: float) -> np.ndarray:
    """(n,) bool: correct under the attack at the grid value `eps`."""
    return correct_by_eps(broken_at, len(epsilons))[grid_index(epsilons, eps)]


# ------------------------------------------------------------ claims (i), (ii)
def trend_check(name: str, paper_ref: str, claim: str, x, values, direction: int, *,
                x_name: str, y_name: str, data=(), n_resamples: int = 2000,
                seed: int = 0, level: float = 0.95, per=None) -> CheckResult:
    """Does the per-model mean of `values` (M, [S,] n) move with `x` (M,) in
    `direction` (+1 rises, -1 falls)? Statistic: Spearman's rho. With `per`
    (same shape), the per-model ratio mean(values) / mean(per) instead."""
    kw = dict(n_resamples=n_resamples, seed=seed, level=level)
    t = stats.trend(x, values, **kw) if per is None else stats.trend_ratio(x, values, per, **kw)
    arr = stats.as_outcomes(values)
    verdict = stats.direction_verdict(t.rho.ci_low, t.rho.ci_high, direction)
    details = {"statistic": f"Spearman rho of {y_name} vs {x_name}",
               "direction": "rises" if direction > 0 else "falls",
               "x_name": x_name, "y_name": y_name,
               "n_models": arr.shape[0], "n_seeds": arr.shape[1], "n_points": arr.shape[2],
               "effect_name": f"{y_name}(max {x_name}) - {y_name}(min {x_name})",
               "effect_verdict": stats.direction_verdict(t.effect.ci_low, t.effect.ci_high,
                                                         direction),
               **t.to_dict()}
    return CheckResult(name, paper_ref, claim, t.rho.statistic, t.rho.ci, verdict,
                       details, tuple(data))


def claim_i(model: str, train_rotations, invariance_auc, robustness_auc, data=(),
            **kw) -> tuple[CheckResult, CheckResult]:
    """Claim (i) for one model family: invariance AUC rises and robustness
    AUC (unrotated test data) falls as the training rotation grows."""
    inv = trend_check(f"claim_i_{model.lower()}_invariance", CLAIM_I_REF,
                      f"{model}: invariance-profile AUC rises with training rotation",
                      train_rotations, invariance_auc, +1, x_name="train rotation",
                      y_name="invariance AUC", data=data, **kw)
    rob = trend_check(f"claim_i_{model.lower()}_robustness", CLAIM_I_REF,
                      f"{model}: robustness-profile AUC (B=0) falls with training rotation",
                      train_rotations, robustness_auc, -1, x_name="train rotation",
                      y_name="robustness AUC", data=data, **kw)
    return inv, rob


def relative_robustness(claim: str, model: str, x, x_name: str, robustness_auc, clean_correct,
                        direction: int, data=(), **kw) -> CheckResult:
    """Robustness AUC divided by clean accuracy (per model, paired bootstrap of
    both): does the trend of `claim` survive when clean accuracy, which moves
    with the training knob too, is divided out?"""
    word = "falls" if direction < 0 else "rises"
    ref = CLAIM_I_REF if claim == "i" else CLAIM_II_REF
    return trend_check(f"claim_{claim}_{model.lower()}_relative_robustness", ref,
                       f"{model}: robustness AUC / clean accuracy {word} with {x_name}",
                       x, robustness_auc, direction, x_name=x_name,
                       y_name="robustness AUC / clean accuracy", data=data, per=clean_correct,
                       **kw)


def claim_ii(model: str, train_eps, invariance_auc, robustness_auc, data=(),
             **kw) -> tuple[CheckResult, CheckResult]:
    """Claim (ii): robustness AUC rises and invariance AUC falls as the PGD
    training eps grows."""
    rob = trend_check(f"claim_ii_{model.lower()}_robustness", CLAIM_II_REF,
                      f"{model}: robustness-profile AUC rises with PGD training eps",
                      train_eps, robustness_auc, +1, x_name="train eps",
                      y_name="robustness AUC", data=data, **kw)
    inv = trend_check(f"claim_ii_{model.lower()}_invariance", CLAIM_II_REF,
                      f"{model}: invariance-profile AUC falls with PGD training eps",
                      train_eps, invariance_auc, -1, x_name="train eps",
                      y_name="invariance AUC", data=data, **kw)
    return rob, inv


# ------------------------------------------------------------ quoted numbers
def _bool_points(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"`{name}` must be a non-empty (n,) array.")
    return arr.astype(bool)


def _eps_words(eps: float, reading: str) -> str:
    if reading == "pixel":
        return f"eps = {eps:g} (pixel units)"
    return f"eps = {eps:g} normalised = {eps * MNIST_STD:.4f} pixel"


def half_robustness_check(correct_clean, correct_eps, eps: float, reading: str,
                          data=(), method: str = "clopper-pearson",
                          level: float = 0.95) -> CheckResult:
    """Quoted number (a): the theta = 180 StdCNN "drops by more than 50 %"
    at eps = 0.1. Reading: of the test points it classifies correctly when
    clean, fewer than half stay correct under PGD at eps, i.e. accuracy(eps)
    < 0.5 * clean accuracy (exact when every point correct under attack is
    correct when clean, as with early-stopped profiles)."""
    clean = _bool_points(correct_clean, "correct_clean")
    attacked = _bool_points(correct_eps, "correct_eps")
    if clean.shape != attacked.shape:
        raise ValueError("`correct_clean` and `correct_eps` must have the same length.")
    kept = int(np.sum(attacked & clean))
    n_clean = int(clean.sum())
    if n_clean == 0:
        raise ValueError("`correct_clean` has no correct point; the ratio is undefined.")
    est = Estimate.from_counts(kept, n_clean, method=method, level=level)
    verdict = stats.threshold_verdict(est.ci_low, est.ci_high, 0.5, "below")
    details = {"reading": "accuracy(eps) / clean accuracy < 0.5, as the fraction of "
                          "clean-correct points still correct under PGD",
               "eps_reading": reading, "eps_pixel": eps if reading == "pixel" else eps * MNIST_STD,
               "threshold": 0.5, "interval": method, "kept": kept, "n_clean_correct": n_clean,
               "clean_accuracy": float(clean.mean()), "attacked_accuracy": float(attacked.mean()),
               "n_points": int(clean.size)}
    return CheckResult(f"quoted_a_{reading}", QUOTED_REF,
                       f"StdCNN theta=180 keeps < 50 % of its accuracy at {_eps_words(eps, reading)}",
                       est.value, (est.ci_low, est.ci_high), verdict, details, tuple(data))


def accuracy_above_check(correct_eps, eps: float, reading: str, threshold: float = 0.8,
                         data=(), method: str = "clopper-pearson",
                         level: float = 0.95) -> CheckResult:
    """Quoted number (b): the theta = 60 StdCNN keeps "more than 80 %"
    accuracy under PGD at eps = 0.3."""
    attacked = _bool_points(correct_eps, "correct_eps")
    est = Estimate.from_counts(int(attacked.sum()), attacked.size, method=method, level=level)
    verdict = stats.threshold_verdict(est.ci_low, est.ci_high, threshold, "above")
    details = {"reading": f"PGD accuracy at eps > {threshold}", "eps_reading": reading,
               "eps_pixel": eps if reading == "pixel" else eps * MNIST_STD,
               "threshold": threshold, "interval": method,
               "correct": est.successes, "n_points": est.n}
    return CheckResult(f"quoted_b_{reading}", QUOTED_REF,
                       f"StdCNN theta=60 keeps > {threshold:.0%} accuracy at "
                       f"{_eps_words(eps, reading)}",
                       est.value, (est.ci_low, est.ci_high), verdict, details, tuple(data))


# ------------------------------------------------------------ Theorem 1
def theorem_bound_check(lhs: Mapping[str, tuple[float, float, float]], rhs: float,
                        p: float, data=()) -> CheckResult:
    """Every learned classifier satisfies Pr[f(rX)=Y] + c(p) Pr[f(X+A)=Y] <=
    rhs(p) within its interval. lhs: name -> (value, ci_low, ci_high).
    Statistic: the largest lhs - rhs; FAILS if some classifier's whole
    interval lies above rhs (a bound cannot be confirmed by data, only not
    refuted, so there is no INCONCLUSIVE)."""
    if not lhs:
        raise ValueError("`lhs` must name at least one classifier.")
    slack = {k: (v - rhs, lo - rhs, hi - rhs) for k, (v, lo, hi) in lhs.items()}
    worst = max(slack, key=lambda k: slack[k][0])
    violators = sorted(k for k, (_, lo, _) in slack.items() if lo > 0)
    strictly_below = sorted(k for k, (_, _, hi) in slack.items() if hi < 0)
    verdict = "FAILS" if violators else "HOLDS"
    details = {"p": p, "rhs": rhs, "worst": worst, "violators": violators,
               "strictly_below": strictly_below,
               "lhs_minus_rhs": {k: list(v) for k, v in slack.items()}}
    return CheckResult("theorem1_bound", THEOREM_REF,
                       "learned classifiers satisfy Theorem 1's bound within their intervals",
                       slack[worst][0], (slack[worst][1], slack[worst][2]), verdict,
                       details, tuple(data))


def _gap(a: Estimate, b: Estimate) -> tuple[float, float, float]:
    """a - b with the conservative interval [a.lo - b.hi, a.hi - b.lo]:
    it excludes 0 exactly when the two intervals do not overlap."""
    return (a.value - b.value, a.ci_low - b.ci_high, a.ci_high - b.ci_low)


def theorem_sides_check(spatial: Mapping[str, Estimate], adversarial: Mapping[str, Estimate],
                        pairs, data=()) -> CheckResult:
    """r-augmented and A-adversarial classifiers sit on opposite sides of the
    trade-off: for each (augmented, adversarial) pair of names the augmented
    one has higher spatial and lower adversarial accuracy, CI-separated.
    Statistic: the smallest of those gaps over pairs."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("`pairs` must hold at least one (augmented, adversarial) pair.")
    gaps = {}
    for aug, adv in pairs:
        gaps[f"{aug} - {adv}: spatial"] = _gap(spatial[aug], spatial[adv])
        gaps[f"{adv} - {aug}: adversarial"] = _gap(adversarial[adv], adversarial[aug])
    verdicts = [stats.direction_verdict(lo, hi, +1) for _, lo, hi in gaps.values()]
    verdict = combine_verdicts(verdicts)
    worst = min(gaps, key=lambda k: gaps[k][0])
    details = {"gaps": {k: list(v) for k, v in gaps.items()},
               "gap_verdicts": dict(zip(gaps, verdicts)),
               "interval": "conservative: [lo_a - hi_b, hi_a - lo_b] of the two accuracy intervals"}
    return CheckResult("theorem1_sides", THEOREM_REF,
                       "r-augmented vs A-adversarial classifiers: opposite sides of the trade-off",
                       gaps[worst][0], (gaps[worst][1], gaps[worst][2]), verdict,
                       details, tuple(data))


# ------------------------------------------------------------ Sec. 1.1 corollary
def corollary_check(model: str, fooled, fooled_rot, max_gap: float, exact_invariant: bool,
                    tol: float = 1e-9, data=(), details=None, n_resamples: int = 2000,
                    seed: int = 0, level: float = 0.95, label: str | None = None) -> CheckResult:
    """Fooling rate on rot90 images vs originals under the same attack.

    fooled, fooled_rot: (n,) bool per point; max_gap: max |rot90^-1(delta_rot)
    - delta| over points and pixels. For an exactly invariant model the claim
    is that the fooling rates are equal; the check asks for more, the same
    outcome point by point (HOLDS iff no point differs, else FAILS), and
    reports whether the perturbations themselves correspond (max_gap <= tol:
    a max over exactly tied values, as in a constant image background, can
    break that correspondence in floating point without changing outcomes).
    For any other model the claim is that equality is not guaranteed: HOLDS
    if the rate difference's interval excludes 0; INCONCLUSIVE if the rates
    agree within it but the correspondence breaks; FAILS if the attack
    commutes with the rotation to `tol` (the model behaves as invariant)."""
    a, b = _bool_points(fooled, "fooled"), _bool_points(fooled_rot, "fooled_rot")
    if a.shape != b.shape:
        raise ValueError("`fooled` and `fooled_rot` must have the same length.")
    diff = stats.paired_difference(b, a, n_resamples=n_resamples, seed=seed, level=level)
    discordant = int(np.sum(a != b))
    commutes = discordant == 0 and max_gap <= tol
    label = label or model
    if exact_invariant:
        verdict = "HOLDS" if discordant == 0 else "FAILS"
        claim = f"{label} (exactly rot90-invariant): PGD fooling rate on rot90 images = on originals"
    else:
        excl = stats.direction_verdict(diff.ci_low, diff.ci_high, +1) != "INCONCLUSIVE"
        verdict = "FAILS" if commutes else ("HOLDS" if excl else "INCONCLUSIVE")
        claim = f"{label} (not invariant): that equality is not guaranteed"
    info = {"fooling_rate": float(a.mean()), "fooling_rate_rot90": float(b.mean()),
            "discordant": discordant, "n_points": int(a.size), "max_perturbation_gap": max_gap,
            "tol": tol, "perturbations_match": bool(max_gap <= tol),
            "exact_invariant": exact_invariant,
            "statistic": "fooling rate (rot90) - fooling rate (original)", **(details or {})}
    return CheckResult(f"corollary_{model}", COROLLARY_REF, claim, diff.statistic, diff.ci,
                       verdict, info, tuple(data))


# ------------------------------------------------------------ curriculum
CURRICULUM_METRICS = ("clean", "rotated", "pgd")
JOINT_AXES = ("rotated", "pgd")  # invariance and robustness


def curriculum_check(baseline: str, cusp: Mapping, base: Mapping, data=(),
                     n_resamples: int = 2000, seed: int = 0, level: float = 0.95,
                     settings: str = "", claim: str | None = None) -> CheckResult:
    """CuSP vs a model trained at CuSP's final (theta, eps) throughout.

    cusp, base: metric -> per-point correct (n,) or (S, n) for "clean",
    "rotated" and "pgd", paired. HOLDS if CuSP is not worse on rotated or PGD
    accuracy and better on at least one (interval excludes 0), FAILS if worse
    on one, else INCONCLUSIVE. Statistic: min(delta rotated, delta PGD)."""
    missing = [m for m in CURRICULUM_METRICS if m not in cusp or m not in base]
    if missing:
        raise ValueError(f"`cusp` and `base` must both hold {missing}.")
    arrs = [np.asarray(src[m], dtype=np.float64) for m in CURRICULUM_METRICS
            for src in (cusp, base)]
    if len({a.shape for a in arrs}) != 1:
        raise ValueError("all curriculum outcome arrays must have the same shape.")
    reps = stats.bootstrap_means(np.stack(arrs), n_resamples, seed)  # (R, 6)
    means = stats.point_means(np.stack(arrs))  # (6,)
    deltas, per_metric = {}, {}
    for j, m in enumerate(CURRICULUM_METRICS):
        lo, hi = stats.percentile_interval(reps[:, 2 * j] - reps[:, 2 * j + 1], level)
        deltas[m] = (float(means[2 * j] - means[2 * j + 1]), lo, hi)
        per_metric[m] = {"cusp": float(means[2 * j]), "baseline": float(means[2 * j + 1]),
                         "delta": list(deltas[m]),
                         "verdict": stats.direction_verdict(lo, hi, +1)}
    joint = [per_metric[m]["verdict"] for m in JOINT_AXES]
    verdict = ("FAILS" if "FAILS" in joint else "HOLDS" if "HOLDS" in joint else "INCONCLUSIVE")
    j_rot, j_pgd = 2 * CURRICULUM_METRICS.index("rotated"), 2 * CURRICULUM_METRICS.index("pgd")
    min_reps = np.minimum(reps[:, j_rot] - reps[:, j_rot + 1], reps[:, j_pgd] - reps[:, j_pgd + 1])
    stat = min(deltas["rotated"][0], deltas["pgd"][0])
    details = {"baseline": baseline, "settings": settings, "metrics": per_metric,
               "statistic": "min(delta rotated accuracy, delta PGD accuracy), CuSP - baseline"}
    claim = claim or f"CuSP reaches a better (rotated, PGD) accuracy point than {baseline}"
    return CheckResult(f"curriculum_vs_{baseline}", CURRICULUM_REF, claim,
                       stat, stats.percentile_interval(min_reps, level), verdict,
                       details, tuple(data))


def combine_verdicts(verdicts) -> str:
    """One verdict for several parts of a claim: FAILS if any part fails,
    HOLDS if all hold, else INCONCLUSIVE."""
    verdicts = list(verdicts)
    if "FAILS" in verdicts:
        return "FAILS"
    if verdicts and all(v == "HOLDS" for v in verdicts):
        return "HOLDS"
    return "INCONCLUSIVE"
