"""python -m verify: bad input exits 2; an empty store still gives a report
(ERROR rows, exit 1); the glue turns stored runs into the right verdicts."""
import json
import subprocess
import sys

import pytest

import verify.run as vrun
from core.estimate import Estimate
from verify.__main__ import main


def _est(p, n=10_000):
    return Estimate.from_counts(round(p * n), n).to_dict()


def _canned_theory():
    # Accuracies as `python -m theory.check --p 0.7` reports them (rounded):
    # augmented ~ (0.69 spatial, 0.68 adversarial), adversarial ~ (0.50, 1.00);
    # rhs = p / (2 (1 - p)) = 7/6, coefficient c = (2p - 1) / (2 (1 - p)) = 2/3.
    acc = {"plain": (0.50, 0.0), "r_aug": (0.69, 0.68), "adv": (0.50, 0.999)}
    rows = []
    for kind in ("logreg", "mlp"):
        for mode, (s, a) in acc.items():
            lhs = s + 2 / 3 * a
            rows.append({"name": f"{kind}_{mode}", "spatial": _est(s), "adversarial": _est(a),
                         "lhs": {"estimate": lhs, "ci": [lhs - 0.01, lhs + 0.01], "n": 10_000}})
    return {"bound": {"rhs": 7 / 6, "coefficient": 2 / 3},
            "params": {"p": 0.7, "n": 10_000, "seed": 0}, "classifiers": rows}


@pytest.mark.parametrize("argv, word", [
    (["--scale", "huge"], "--scale"), (["--jobs", "0"], "jobs"),
    (["--resamples", "5"], "n_resamples"), (["--seed", "-1"], "--seed"),
    (["--jobs", "two"], "--jobs"),
])
def test_bad_input_exits_2_with_one_line(argv, word, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m verify: error:") and word in err[0]


def test_module_entry_point_exits_2():
    out = subprocess.run([sys.executable, "-m", "verify", "--scale", "huge"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_empty_store_writes_a_report_with_error_rows(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(vrun, "theory_result", lambda config: _canned_theory())
    out = tmp_path / "reports"
    code = main(["--no-sweep", "--store", str(tmp_path / "store"), "--out", str(out),
                 "--figures", str(tmp_path / "figs"), "--resamples", "200"])
    assert code == 1
    checks = json.loads((out / "quick" / "checks.json").read_text())["checks"]
    verdicts = {c["name"]: c["verdict"] for c in checks}
    assert verdicts["theorem1_bound"] == "HOLDS" and verdicts["theorem1_sides"] == "HOLDS"
    assert verdicts["claim_i_stdcnn"] == "ERROR" and verdicts["corollary"] == "ERROR"
    md = (out / "quick" / "report.md").read_text()
    assert "| **ERROR** |" in md and "python -m paper_figures all --scale quick" in md
    tail = capsys.readouterr().out.strip().splitlines()
    assert tail[-3].startswith("report:") and str(out / "quick" / "report.md") in tail[-3]
    assert tail[-1].startswith("figures:")
