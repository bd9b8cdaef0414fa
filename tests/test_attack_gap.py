"""verify.attack_gap: AutoAttack against the PGD profiles."""
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as sstats

from verify.attack_gap import attack_gap_check, attack_gap_results
from verify.gather import MissingMeasurement


def outcomes(n, pgd_rate, missed, seed=0):
    """(1, n) PGD outcomes with round(pgd_rate n) correct, of which `missed`
    are broken by AutoAttack; AutoAttack also fails on 2 points PGD broke."""
    rng = np.random.default_rng(seed)
    pgd = np.zeros(n, bool)
    pgd[rng.permutation(n)[:round(pgd_rate * n)]] = True
    aa = pgd.copy()
    aa[np.flatnonzero(pgd)[:missed]] = False
    aa[np.flatnonzero(~pgd)[:2]] = True  # correct under AA but not under PGD: no gap
    return pgd[None], aa[None]


def test_gap_is_the_fraction_pgd_misses_with_an_exact_interval():
    pgd, aa = outcomes(400, 0.6, 12)
    r = attack_gap_check("g", "toy", (0.1,), pgd, aa, pgd_steps=10)
    assert r.statistic == pytest.approx(np.mean(pgd & ~aa)) == pytest.approx(12 / 400)
    ci = sstats.binomtest(12, 400).proportion_ci(0.95, method="exact")
    assert r.ci == pytest.approx((ci.low, ci.high))
    row = r.details["per_eps"][0]
    assert row["worst_case_accuracy"] == pytest.approx(np.mean(pgd & aa))
    assert row["found_by_pgd_only"] == 2 and row["missed_by_pgd"] == 12
    lo, hi = row["gap_ci_bootstrap"]
    assert lo <= r.statistic <= hi


def test_verdicts_against_the_tolerance():
    # no point missed on 2000 points: the exact upper bound is about 0.0018 < 0.01
    pgd, aa = outcomes(2000, 0.5, 0)
    assert attack_gap_check("g", "toy", (0.1,), pgd, aa, pgd_steps=10).verdict == "HOLDS"
    # 10 % missed: the whole interval is above 0.01
    pgd, aa = outcomes(500, 0.6, 50)
    assert attack_gap_check("g", "toy", (0.1,), pgd, aa, pgd_steps=10).verdict == "FAILS"
    # none missed on 50 points: the exact interval still reaches above 0.01
    pgd, aa = outcomes(50, 0.6, 0)
    r = attack_gap_check("g", "toy", (0.1,), pgd, aa, pgd_steps=10)
    assert r.statistic == 0 and r.ci[1] > 0.01 and r.verdict == "INCONCLUSIVE"


def test_worst_eps_decides_and_any_failure_fails():
    p1, a1 = outcomes(2000, 0.7, 0, seed=1)
    p2, a2 = outcomes(2000, 0.4, 200, seed=2)
    r = attack_gap_check("g", "toy", (0.05, 0.1), np.vstack([p1, p2]), np.vstack([a1, a2]),
                         pgd_steps=40)
    assert r.verdict == "FAILS" and r.details["worst_eps"] == 0.1
    assert [row["verdict"] for row in r.details["per_eps"]] == ["HOLDS", "FAILS"]
    assert r.statistic == pytest.approx(0.1)
    assert "PGD-40" in r.claim and "less than 0.01" in r.claim


def test_bad_shapes_raise():
    pgd, aa = outcomes(20, 0.5, 1)
    with pytest.raises(ValueError, match=r"must both be \(2, n\)"):
        attack_gap_check("g", "toy", (0.1, 0.2), pgd, aa, pgd_steps=10)
    with pytest.raises(ValueError, match="same|both"):
        attack_gap_check("g", "toy", (0.1,), pgd, aa[:, :10], pgd_steps=10)
    with pytest.raises(ValueError, match="tolerance"):
        attack_gap_check("g", "toy", (0.1,), pgd, aa, pgd_steps=10, tolerance=2)


def _stored(attack, broken_at, eps=(0.5,)):
    """A stored evaluation record as `pipeline.measurements` writes it."""
    return {"result": {"eps": list(eps), "attacks": {attack: {"steps": 10}},
                       "per_point": {f"{attack}_broken_at": list(broken_at)}}}


def test_results_from_stored_measurements():
    # 5 points, one eps: PGD-10 leaves points 2, 3, 4 correct, PGD-40 points 3, 4;
    # AutoAttack leaves only point 4 correct. Gaps: 2/5 (PGD-10), 1/5 (PGD-40).
    spec = SimpleNamespace(train=SimpleNamespace(model="stdcnn"), pgd_steps=10, key="tiny")
    record = SimpleNamespace(spec=spec, measurements={
        "attack-gap-autoattack": _stored("autoattack", [0, 0, 0, 0, 1]),
        "attack-gap-pgd10": _stored("pgd", [0, 0, 1, 1, 1]),
        "attack-gap-pgd40": _stored("pgd", [0, 0, 0, 1, 1])})
    results = attack_gap_results([record])
    assert [r.name for r in results] == ["attack_gap_tiny_pgd10", "attack_gap_tiny_pgd40"]
    assert [r.statistic for r in results] == [pytest.approx(0.4), pytest.approx(0.2)]
    for r in results:
        row = r.details["per_eps"][0]
        assert r.details["n_points"] == 5 and row["eps"] == 0.5
        assert row["worst_case_accuracy"] == pytest.approx(0.2) and r.data == ("tiny",)


def test_a_missing_measurement_is_named():
    spec = SimpleNamespace(train=SimpleNamespace(model="stdcnn"), pgd_steps=10, key="tiny")
    record = SimpleNamespace(spec=spec, measurements={
        "attack-gap-autoattack": _stored("autoattack", [0, 1])})
    with pytest.raises(MissingMeasurement, match="tiny.*attack-gap-pgd10"):
        attack_gap_results([record])
