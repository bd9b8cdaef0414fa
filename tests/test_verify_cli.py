"""python -m verify: bad input exits 2; an empty store still gives a report
(ERROR rows, exit 1); the glue turns stored runs into the right verdicts."""
import json
import subprocess
import sys

import pytest

import verify.run as vrun
from theory.check import CheckConfig, run_check
from verify.__main__ import main


@pytest.fixture(scope="module")
def small_theory():
    """A real, small Theorem 1 check (d = 8, 4,000 samples, 20 training steps)."""
    return run_check(CheckConfig(p=0.7, d=8, n=4000, train_steps=20), progress=False)


@pytest.mark.parametrize("argv, word", [
    (["--scale", "huge"], "--scale"), (["--jobs", "0"], "jobs"),
    (["--resamples", "5"], "resamples"), (["--seed", "-1"], "--seed"),
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


def test_empty_store_writes_a_report_with_error_rows(tmp_path, monkeypatch, capsys, small_theory):
    monkeypatch.setattr(vrun, "theory_result", lambda config: small_theory)
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
