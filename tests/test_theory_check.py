"""`python -m theory.check`: exit codes, JSON schema, figure, the typed result."""
import dataclasses
import json
import subprocess
import sys

import pytest

from theory import check


@pytest.mark.parametrize("argv, name", [
    (["--p", "0.4"], "p"), (["--p", "1"], "p"), (["--p", "nan"], "p"),
    (["--p", "0.7", "--d", "0"], "d"), (["--p", "0.7", "--n", "0"], "n"),
    (["--p", "0.7", "--q", "1.5"], "q"), (["--p", "0.7", "--eta", "-1"], "eta"),
    (["--p", "0.7", "--mu", "inf"], "mu"), (["--p", "0.7", "--d", "x"], "--d"), ([], "--p")])
def test_bad_input_exits_2_with_one_line(argv, name, capsys, tmp_path):
    plot = tmp_path / "fig.png"
    with pytest.raises(SystemExit) as exc:
        check.main([*argv, "--plot", str(plot)])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1 and err.startswith(f"{check.PROG}: error:") and name in err
    assert not plot.exists()


@pytest.fixture(scope="module")
def small_result():
    return check.run_check(check.CheckConfig(p=0.7, d=8, n=4000, seed=1, train_steps=20))


def test_result_matches_the_json_schema(small_result):
    d = json.loads(json.dumps(small_result.to_dict()))
    assert set(d["params"]) == {"p", "d", "n", "seed", "mu", "eta", "q"}
    assert d["theorem_applies"] is True and d["verdict"] == "consistent"
    assert set(d["bound"]) == {"coefficient", "rhs"}
    assert all({"name", "passed"} <= set(s) for s in d["proof_steps"])
    assert {"points", "max_lhs", "min_lhs"} <= set(d["frontier"])
    names = [c["name"] for c in d["classifiers"]]
    assert {"f_star", "x0", "bayes_clean", "logreg_plain", "logreg_r_aug", "logreg_adv",
            "mlp_plain", "mlp_r_aug", "mlp_adv"} <= set(names)
    for c in d["classifiers"]:
        for key in ("clean", "spatial", "adversarial", "lhs"):
            lo, hi = c[key]["ci"]
            assert lo <= c[key]["estimate"] <= hi
        assert c["exact"] is None or set(c["exact"]) == {"clean", "spatial", "adversarial", "lhs"}
        assert c["violates"] is False
    assert next(c for c in d["classifiers"] if c["name"] == "mlp_plain")["exact"] is None


def test_result_round_trips_through_json(small_result):
    d = json.loads(json.dumps(small_result.to_dict()))
    back = check.TheoremCheck.from_dict(d)
    assert back.classifiers == small_result.classifiers and back.verdict == small_result.verdict
    assert back.proof_steps == small_result.proof_steps and back.config == small_result.config


def test_figure_from_json_dict(small_result, tmp_path):
    d = json.loads(json.dumps(small_result.to_dict()))
    png = check.theorem1_figure(d, tmp_path / "t.png")
    pdf = check.theorem1_figure(small_result, tmp_path / "t.pdf")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:4] == b"%PDF"
    assert "Theorem 1" in check.format_table(d) and "verdict: consistent" in check.format_table(d)


@pytest.mark.slow
def test_cli_json_and_refutation_exit_codes(capsys):
    fast = ["--d", "10", "--n", "20000", "--train-steps", "10", "--json"]
    assert check.main(["--p", "0.7", *fast]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "consistent" and out["frontier"]["max_lhs"] <= out["bound"]["rhs"] + 1e-9
    # Away from the paper's (eta, q) the bound is false; the frontier rule refutes it: exit 1.
    code = check.main(["--p", "0.7", "--mu", "1", "--eta", "0.3", "--q", "0.2", *fast])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["verdict"] == "violated" and out["theorem_applies"] is False


# --- the typed result ------------------------------------------------------

# A result as `run_check(CheckConfig(p=0.7, d=8, n=4000, seed=1, train_steps=20)).to_dict()`
# wrote it before the result type moved to theory.result (torch-trained models), shortened
# to two classifiers and two frontier points: the stored-JSON format from_dict must read.
STORED = {'params': {'p': 0.7, 'd': 8, 'n': 4000, 'seed': 1, 'mu': 3.0, 'eta': 1.0, 'q': 0.5},
          'theorem_applies': True,
          'bound': {'coefficient': 0.6666666666666664, 'rhs': 1.1666666666666665},
          'proof_steps': [{'name': 'a_swap_equals_attack',
                           'statement': 'r(X) with the swap has the law of X + A(X) (pair means and '
                                        'covariance)',
                           'residual': 'mean [0, 0], cov [0, 0, 0, 0]',
                           'passed': True},
                          {'name': 'b_weighted_step',
                           'statement': 'Pr[f(X+A)!=Y] - (1-p)/p Pr[f(X)=Y] = (2p-1)/(2p)(u_1+u_-1) >= '
                                        '0',
                           'residual': 'gap 0, weight (2p-1)/(2p) >= 0: True, mean(X+A|y) - mean(G_-y) '
                                       '0',
                           'passed': True},
                          {'name': 'c_rearrangement',
                           'statement': '(1-q) p(1-a)/(1-p) + q a + c a - p/(2(1-p)) <= 0 on a in [0,1]',
                           'residual': 'excess 0 (at a=0,1: [0, 0])',
                           'passed': True},
                          {'name': 'd_corollary',
                           'statement': 'rhs / (1 + c) = p, so 1 - delta <= p',
                           'residual': '0',
                           'passed': True},
                          {'name': 'e_f_star_accuracy',
                           'statement': 'Pr[f*(X)=Y] = Phi(mu) = 0.998650',
                           'residual': '0',
                           'passed': True},
                          {'name': 'f_attack_norm',
                           'statement': '||A(x)||_inf = 2 eta mu/sqrt(d) = 6/sqrt(d) (equals the '
                                        "paper's 6/sqrt(d))",
                           'residual': '0',
                           'passed': True}],
          'frontier': {'points': [[0.5000020223931969, 0.9999899227479514],
                                  [0.5000020467017582, 0.9999899226250644]],
                       'max_lhs': 1.1666666666666665,
                       'min_lhs': 1.1666619708918309,
                       'rhs': 1.1666666666666665,
                       'coefficient': 0.6666666666666664,
                       'bound_holds': True,
                       'slack': 0.0,
                       'region': [[0.7, 0.7], [0.5000347715175594, 0.9999473852127725],
                                  [0.5000136295177328, 0.9999780912375174]]},
          'classifiers': [{'name': 'f_star',
                           'clean': {'estimate': 0.998,
                                     'ci': [0.9960581807520483, 0.998986213731409],
                                     'n': 4000,
                                     'successes': 3992},
                           'spatial': {'estimate': 0.49,
                                       'ci': [0.4745252484618996, 0.5054939404038944],
                                       'n': 4000,
                                       'successes': 1960},
                           'adversarial': {'estimate': 0.001,
                                           'ci': [0.00038894703739082324, 0.0025685773657312602],
                                           'n': 4000,
                                           'successes': 4},
                           'lhs': {'estimate': 0.49066666666666664,
                                   'ci': [0.47253628033923784, 0.5096567324279472],
                                   'n': 4000},
                           'exact': {'clean': 0.99865010196837,
                                     'spatial': 0.5,
                                     'adversarial': 0.0013498980316300996,
                                     'lhs': 0.5008999320210867},
                           'violates': False},
                          {'name': 'mlp_adv',
                           'clean': {'estimate': 0.0,
                                     'ci': [0.0, 0.0009594432897014865],
                                     'n': 4000,
                                     'successes': 0},
                           'spatial': {'estimate': 0.51,
                                       'ci': [0.49450605959610555, 0.5254747515381004],
                                       'n': 4000,
                                       'successes': 2040},
                           'adversarial': {'estimate': 1.0,
                                           'ci': [0.9990405567102985, 1.0],
                                           'n': 4000,
                                           'successes': 4000},
                           'lhs': {'estimate': 1.1766666666666663,
                                   'ci': [1.1581126692280144, 1.1943593121433855],
                                   'n': 4000},
                           'exact': None,
                           'violates': False}],
          'verdict': 'consistent',
          'training': {'steps': 20},
          'provenance': {'invrob_version': '0.1.0',
                         'git_commit': None,
                         'python': '3.11.7',
                         'torch': '2.14.1+cu130',
                         'numpy': '2.4.6',
                         'created': '2026-12-02T01:18:01Z'}}


def _old_theory_csv(result: dict) -> str:
    # paper_figures' CSV as it reads the raw dict today: the reference for TheoremCheck.csv().
    lines = ["classifier,spatial,spatial_ci_low,spatial_ci_high,"
             "adversarial,adversarial_ci_low,adversarial_ci_high,n"]
    for c in result["classifiers"]:
        s, a = c["spatial"], c["adversarial"]
        lines.append(f"{c['name']},{s['estimate']!r},{s['ci'][0]!r},{s['ci'][1]!r},"
                     f"{a['estimate']!r},{a['ci'][0]!r},{a['ci'][1]!r},{s['n']}")
    return "\n".join(lines) + "\n"


def test_stored_json_of_the_earlier_code_reads_back_unchanged():
    res = check.TheoremCheck.from_dict(STORED)
    assert res.config == check.CheckConfig(p=0.7, d=8, n=4000, seed=1, train_steps=20)
    assert res.to_dict() == STORED                                  # same keys, same values
    assert [c.name for c in res.classifiers] == ["f_star", "mlp_adv"]
    f = res.classifier("f_star")
    assert f.spatial.successes == 1960 and f.exact.clean == STORED["classifiers"][0]["exact"]["clean"]
    assert res.classifier("mlp_adv").exact is None and res.provenance.torch == "2.14.1+cu130"
    assert res.consistent and res.verdict == "consistent" and res.theorem_applies
    assert res.csv() == _old_theory_csv(STORED)
    table = check.format_table(STORED)                                # a dict is read as well
    assert table == check.format_table(res)
    for c in STORED["classifiers"]:
        lo, hi = c["spatial"]["ci"]
        assert f"{c['spatial']['estimate']:.4f} [{lo:.4f},{hi:.4f}]" in table
    with pytest.raises(ValueError, match="lacks trained classifiers"):
        res.trained()


def test_round_trip_keeps_every_field(small_result):
    d = json.loads(json.dumps(small_result.to_dict()))
    back = check.TheoremCheck.from_dict(d)
    assert back == small_result and back.provenance == small_result.provenance
    assert back.to_dict() == d
    assert back.config.train_steps == 20 and d["training"] == {"steps": 20}


def test_a_stored_verdict_that_disagrees_is_refused(small_result):
    d = json.loads(json.dumps(small_result.to_dict()))
    d["verdict"] = "violated"
    with pytest.raises(ValueError, match="verdict"):
        check.TheoremCheck.from_dict(d)


def test_typed_accessors_match_the_raw_dict(small_result):
    # What verify's theorem_checks and paper_figures' theory_csv read from the dict today.
    d = json.loads(json.dumps(small_result.to_dict()))
    res = check.TheoremCheck.from_dict(d)
    trained = {f"{k}_{m}" for k in ("logreg", "mlp") for m in ("plain", "r_aug", "adv")}
    rows = {c["name"]: c for c in d["classifiers"] if c["name"] in trained}
    assert res.trained_lhs() == {n: (c["lhs"]["estimate"], *c["lhs"]["ci"]) for n, c in rows.items()}
    assert {n: e.to_dict() for n, e in res.trained_spatial().items()} == \
        {n: c["spatial"] for n, c in rows.items()}
    assert {n: e.to_dict() for n, e in res.trained_adversarial().items()} == \
        {n: c["adversarial"] for n, c in rows.items()}
    assert res.side_pairs == [("logreg_r_aug", "logreg_adv"), ("mlp_r_aug", "mlp_adv")]
    assert res.rhs == d["bound"]["rhs"] and res.config.p == d["params"]["p"]
    assert res.label == (f"theory.check p={d['params']['p']} n={d['params']['n']} "
                         f"seed={d['params']['seed']}")
    assert res.csv() == _old_theory_csv(d)
    assert [c.trained for c in res.classifiers].count(True) == 6


def test_save_and_load(small_result, tmp_path):
    path = small_result.save(tmp_path / "t.json")
    assert check.TheoremCheck.load(path) == small_result
    assert json.loads(path.read_text()) == json.loads(json.dumps(small_result.to_dict()))


def _changed(config, name):
    v = getattr(config, name)
    if isinstance(v, float):
        return v + 0.05 if name != "eta" else v - 0.25
    return v + 1


def _sha256_key(d: dict) -> str:
    """An independent computation of the documented key (core.hashing): sha256
    over JSON with sorted keys, no spaces, integral floats as integers, first
    16 hex digits."""
    import hashlib

    def canon(v):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, (list, tuple)):
            return [canon(x) for x in v]
        if isinstance(v, dict):
            return {k: canon(x) for k, x in v.items()}
        return v
    text = json.dumps(canon(d), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_every_config_field_changes_the_store_key():
    base = check.CheckConfig(p=0.7)
    names = [f.name for f in dataclasses.fields(check.CheckConfig)]
    assert list(base.to_dict()) == names                # to_dict covers every field
    assert base.key == _sha256_key(base.to_dict())     # the documented hash, computed apart
    keys = {base.key}
    for name in names:
        other = dataclasses.replace(base, **{name: _changed(base, name)})
        assert other.key != base.key, name
        assert _sha256_key(other.to_dict()) == other.key, name
        keys.add(other.key)
    assert len(keys) == len(names) + 1
    assert check.CheckConfig.from_dict(base.to_dict()) == base
    # train_steps reaches the result: its training block and the trained models.
    assert dataclasses.replace(base, train_steps=7).to_dict()["train_steps"] == 7


def test_check_path_never_imports_torch():
    code = ("import sys; from theory import check; "
            "check.main(['--p', '0.7', '--d', '4', '--n', '2000', '--train-steps', '5', '--json']); "
            "sys.stdout.flush(); sys.exit(3 if 'torch' in sys.modules else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["verdict"] == "consistent"
