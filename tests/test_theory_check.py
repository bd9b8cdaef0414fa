"""`python -m theory.check`: exit codes, JSON schema, figure."""
import json

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
    back = check.CheckResult.from_dict(d)
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
