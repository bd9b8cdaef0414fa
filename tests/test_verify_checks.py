"""Each check of verify.checks on synthetic inputs whose verdict is known:
one that must HOLD, one that must FAIL, and an INCONCLUSIVE one where cheap."""
import json
import math

import numpy as np
import pytest

from core import auc
from core.estimate import Estimate
from verify import checks
from verify.result import CheckResult

R = 300  # bootstrap resamples: enough for clear-cut synthetic cases


def _bernoulli(p, n, seed):
    rng = np.random.default_rng(seed)
    return rng.random((len(p), n)) < np.asarray(p)[:, None]  # (M, n)


# ------------------------------------------------------------ per-point AUCs
def test_invariance_auc_points_average_to_the_profile_auc():
    # Independent route: the trapezoid rule on the mean curve (np.trapezoid),
    # normalised by the theta range, equals the mean of per-point areas.
    rng = np.random.default_rng(0)
    thetas = np.array([0, 30, 90, 180.0])
    inv = rng.random((4, 60)) < 0.7
    want = np.trapezoid(inv.mean(axis=1), thetas) / 180.0
    assert auc.invariance_points(thetas, inv).mean() == pytest.approx(want)


def test_robustness_auc_points_from_broken_at():
    # Grid 0, 0.1, 0.3: point broken at index 1 is correct only at eps 0, so
    # its accuracy curve is (1, 0, 0) and its area is 0.1 * 0.5 / 0.3.
    eps = [0.0, 0.1, 0.3]
    got = auc.robustness_points(eps, [0, 1, 3])
    np.testing.assert_allclose(got, [0.0, 0.05 / 0.3, 1.0])
    np.testing.assert_array_equal(checks.correct_at(eps, [0, 1, 3], 0.1), [False, False, True])
    with pytest.raises(ValueError, match="`eps`"):
        checks.correct_at(eps, [0, 1, 3], 0.2)
    with pytest.raises(ValueError, match="`broken_at`"):
        auc.robustness_points(eps, [4])


# ------------------------------------------------------------ claims (i), (ii)
ROT = [0, 60, 120, 180]
RISING, FALLING = [0.2, 0.45, 0.7, 0.9], [0.9, 0.7, 0.45, 0.2]


def test_claim_i_holds_on_a_clear_trade_off():
    inv, rob = checks.claim_i("stdcnn", ROT, _bernoulli(RISING, 400, 1),
                              _bernoulli(FALLING, 400, 2), n_resamples=R)
    assert (inv.verdict, rob.verdict) == ("HOLDS", "HOLDS")
    assert inv.statistic == 1.0 and rob.statistic == -1.0
    assert rob.details["effect_verdict"] == "HOLDS"


def test_claim_i_fails_when_the_trends_are_reversed():
    inv, rob = checks.claim_i("p4cnn", ROT, _bernoulli(FALLING, 400, 1),
                              _bernoulli(RISING, 400, 2), n_resamples=R)
    assert (inv.verdict, rob.verdict) == ("FAILS", "FAILS")


def test_claim_i_inconclusive_without_a_trend():
    # Identical outcomes for every model: every replicate ties, rho = 0.
    same = np.tile(_bernoulli([0.5], 100, 3), (4, 1))
    inv, _ = checks.claim_i("stdcnn", ROT, same, same, n_resamples=R)
    assert inv.verdict == "INCONCLUSIVE" and inv.ci == (0.0, 0.0)


def test_claim_i_with_seeds_resamples_them():
    # (M, S, n) with S = 4 seeds: under seeds 0, 1 the models rise steeply,
    # under seeds 2, 3 they fall steeply. Pooled over points alone the trend
    # would look settled; resampling seeds draws only rising (or only
    # falling) seeds with probability 1/16 each, so the interval reaches
    # both rho = -1 and rho = +1.
    rising = np.array([0.1, 0.4, 0.7, 0.95])
    p = np.stack([rising, rising, rising[::-1], rising[::-1]], axis=1)  # (4, 4)
    vals = np.random.default_rng(4).random((4, 4, 300)) < p[:, :, None]
    inv, _ = checks.claim_i("stdcnn", ROT, vals, vals, n_resamples=R)
    assert inv.details["n_seeds"] == 4
    assert inv.verdict == "INCONCLUSIVE"
    assert inv.ci[0] <= -0.8 and inv.ci[1] >= 0.8


def test_claim_ii_holds_and_fails():
    eps = [0.0, 0.1, 0.2, 0.4]
    rob, inv = checks.claim_ii("lenet", eps, _bernoulli(FALLING, 400, 5),
                               _bernoulli(RISING, 400, 6), n_resamples=R)
    assert (rob.verdict, inv.verdict) == ("HOLDS", "HOLDS")
    rob, inv = checks.claim_ii("lenet", eps, _bernoulli(RISING, 400, 5),
                               _bernoulli(FALLING, 400, 6), n_resamples=R)
    assert (rob.verdict, inv.verdict) == ("FAILS", "FAILS")


# ------------------------------------------------------------ quoted numbers
def _kept(n_clean, kept, n=250):
    clean = np.zeros(n, bool)
    clean[:n_clean] = True
    attacked = np.zeros(n, bool)
    attacked[:kept] = True
    return clean, attacked


@pytest.mark.parametrize("kept, want", [(60, "HOLDS"), (150, "FAILS"), (100, "INCONCLUSIVE")])
def test_half_robustness(kept, want):
    # 200 clean-correct points: the exact 95 % interval half-width is about
    # 0.07, so 60/200 = 0.3 and 150/200 = 0.75 are clear, 100/200 straddles.
    clean, attacked = _kept(200, kept)
    r = checks.half_robustness_check(clean, attacked, 0.1, "pixel")
    assert r.verdict == want and r.statistic == pytest.approx(kept / 200)
    assert r.details["attacked_accuracy"] == pytest.approx(kept / 250)


def test_half_robustness_normalised_reading_records_pixel_eps():
    clean, attacked = _kept(200, 60)
    r = checks.half_robustness_check(clean, attacked, 0.1, "normalised")
    assert r.details["eps_pixel"] == pytest.approx(0.03081)
    assert r.name == "quoted_a_normalised"


@pytest.mark.parametrize("correct, want", [(240, "HOLDS"), (150, "FAILS"), (205, "INCONCLUSIVE")])
def test_accuracy_above(correct, want):
    # n = 250: 240/250 = 0.96 and 150/250 = 0.6 are far from 0.8; 205/250 =
    # 0.82 has an exact interval of about [0.77, 0.87].
    _, attacked = _kept(250, correct)
    r = checks.accuracy_above_check(attacked, 0.3, "pixel")
    assert r.verdict == want


# ------------------------------------------------------------ Theorem 1
def test_theorem_bound_holds_and_fails():
    ok = checks.theorem_bound_check({"a": (1.0, 0.98, 1.02), "b": (0.7, 0.69, 0.71)},
                                    rhs=1.0, p=0.7)
    assert ok.verdict == "HOLDS" and ok.details["worst"] == "a"
    assert ok.details["strictly_below"] == ["b"]
    bad = checks.theorem_bound_check({"a": (1.1, 1.05, 1.15), "b": (0.7, 0.69, 0.71)},
                                     rhs=1.0, p=0.7)
    assert bad.verdict == "FAILS" and bad.details["violators"] == ["a"]


def _est(k, n=2000):
    return Estimate.from_counts(k, n)


@pytest.mark.parametrize("aug_spatial, adv_spatial, want", [
    (1800, 1400, "HOLDS"), (1400, 1800, "FAILS"), (1600, 1610, "INCONCLUSIVE")])
def test_theorem_sides(aug_spatial, adv_spatial, want):
    spatial = {"mlp_r_aug": _est(aug_spatial), "mlp_adv": _est(adv_spatial)}
    adversarial = {"mlp_r_aug": _est(600), "mlp_adv": _est(1500)}
    r = checks.theorem_sides_check(spatial, adversarial, [("mlp_r_aug", "mlp_adv")])
    assert r.verdict == want


# ------------------------------------------------------------ corollary
def test_corollary_invariant_model():
    f = np.array([True, False, True, True])
    assert checks.corollary_check("p4", f, f, 0.0, True, n_resamples=R).verdict == "HOLDS"
    # perturbations that do not correspond (ties) are reported, outcomes decide
    r = checks.corollary_check("p4", f, f, 1e-3, True, n_resamples=R)
    assert r.verdict == "HOLDS" and r.details["perturbations_match"] is False
    g = f.copy()
    g[1] = True
    assert checks.corollary_check("p4", f, g, 0.0, True, n_resamples=R).verdict == "FAILS"


def test_corollary_non_invariant_model():
    rng = np.random.default_rng(7)
    f = rng.random(400) < 0.3
    far = rng.random(400) < 0.7
    assert checks.corollary_check("std", f, far, 0.5, False, n_resamples=R).verdict == "HOLDS"
    swapped = f.copy()
    i, j = np.flatnonzero(f)[0], np.flatnonzero(~f)[0]
    swapped[i], swapped[j] = False, True  # same rate, broken correspondence
    r = checks.corollary_check("std", f, swapped, 0.5, False, n_resamples=R)
    assert r.verdict == "INCONCLUSIVE" and r.details["discordant"] == 2
    assert checks.corollary_check("std", f, f, 0.0, False, n_resamples=R).verdict == "FAILS"


# ------------------------------------------------------------ curriculum
def _metrics(p_clean, p_rot, p_pgd, seed, n=500):
    rng = np.random.default_rng(seed)
    return {m: rng.random(n) < p for m, p in
            (("clean", p_clean), ("rotated", p_rot), ("pgd", p_pgd))}


@pytest.mark.parametrize("cusp, want", [
    ((0.95, 0.9, 0.7), "HOLDS"),         # better on both axes
    ((0.95, 0.8, 0.3), "FAILS"),         # much worse on PGD
    ((0.95, 0.8, 0.5), "INCONCLUSIVE"),  # the same point
])
def test_curriculum(cusp, want):
    # The baseline is Bernoulli(0.95, 0.8, 0.5); with 500 points a gap of
    # 0.1 is > 3 SE of a paired difference, a gap of 0 is inside the interval.
    base = _metrics(0.95, 0.8, 0.5, seed=1)
    mine = base if want == "INCONCLUSIVE" else _metrics(*cusp, seed=2)
    r = checks.curriculum_check("fixed", mine, base, n_resamples=R)
    assert r.verdict == want
    assert set(r.details["metrics"]) == {"clean", "rotated", "pgd"}


def test_curriculum_rejects_missing_metrics():
    base = _metrics(0.9, 0.8, 0.5, seed=1)
    with pytest.raises(ValueError, match="pgd"):
        checks.curriculum_check("fixed", {"clean": base["clean"], "rotated": base["rotated"]},
                                base)


# ------------------------------------------------------------ the record
def test_check_result_round_trips_through_json():
    r = checks.accuracy_above_check(np.ones(10, bool), 0.3, "pixel", data=["run/abc"])
    back = CheckResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r
    err = CheckResult.error("x", "ref", "claim", "no data")
    d = json.loads(json.dumps(err.to_dict()))
    assert d["statistic"] is None and d["verdict"] == "ERROR"
    assert math.isnan(CheckResult.from_dict(d).statistic)
    with pytest.raises(ValueError, match="`verdict`"):
        CheckResult("x", "r", "c", 0.0, (0, 0), "MAYBE")
