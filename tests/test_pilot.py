"""The adversarial-training pilot: which PGD-k a short training needs."""
import json

import pytest

from pipeline import pilot


def _row(eps, k, robust, collapse=None):
    return {"adv_eps": eps, "adv_steps": k, "clean_accuracy": 0.8, "robust_accuracy": [robust],
            "collapse": collapse, "images_per_second": 100.0 / k, "train_seconds": 1.0}


def test_choose_steps_takes_the_cheapest_k_within_tolerance_of_the_best():
    rows = [_row(0.0, 10, None), _row(0.1, 2, 0.64), _row(0.1, 3, 0.652), _row(0.1, 5, 0.65)]
    assert pilot.choose_steps(rows) == {0.1: 2}  # 0.64 >= 0.652 - 0.02
    rows[1] = _row(0.1, 2, 0.60)
    assert pilot.choose_steps(rows) == {0.1: 3}  # PGD-2 is 5 points weaker
    rows[2] = _row(0.1, 3, 0.66, collapse={"epoch": 2})
    assert pilot.choose_steps(rows) == {0.1: 5}  # a collapsed run is never chosen


@pytest.mark.slow
def test_pilot_command_records_every_run_and_its_choice(tmp_path):
    out = tmp_path / "pilot.json"
    doc = pilot.main(["--eps", "0.1", "--steps", "1,2", "--train-subset", "100",
                      "--test-subset", "50", "--robust-check", "20", "--quiet", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(doc))
    assert [r["adv_eps"] for r in doc["rows"]] == [0.0, 0.1, 0.1]  # the eps-0 baseline first
    assert [r["adv_steps"] for r in doc["rows"][1:]] == [1, 2]
    assert doc["rows"][0]["robust_accuracy"] == [None]  # eps 0: nothing to attack
    assert all(0 <= r["robust_accuracy"][0] <= 1 for r in doc["rows"][1:])
    assert doc["chosen_steps"]["0.1"] in (1, 2) and doc["command"].startswith("python -m")


@pytest.mark.parametrize("argv,flag", [(["--steps", "0"], "--steps"), (["--eps", "2"], "--eps"),
                                       (["--steps", "x"], "--steps")])
def test_bad_pilot_input_is_one_line_exit_2(tmp_path, capsys, argv, flag):
    with pytest.raises(SystemExit) as stop:
        pilot.main(argv + ["--out", str(tmp_path / "p.json")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0]
    assert not (tmp_path / "p.json").exists()
