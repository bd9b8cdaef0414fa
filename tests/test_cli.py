"""The command lines `python -m empirics.train` and `python -m empirics.profile`:
one-line errors with exit status 2, no half-written files, --help."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from empirics import profile as prof
from empirics import train as tr

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--train-subset", "100", "--test-subset", "100", "--batch-size", "50",
        "--quiet"]


def run_main(main, argv, capsys):
    """(exit status, stdout, stderr) of main(argv)."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny finished run shared by the profile tests."""
    run = tmp_path_factory.mktemp("cli") / "run"
    tr.main(["--out", str(run), "--train-rotation", "30", *TINY])
    return run


@pytest.mark.parametrize("argv,needle", [
    (["--model", "alexnet"], "--model"),
    (["--dataset", "imagenet"], "--dataset"),
    (["--epochs", "-1"], "--epochs"),
    (["--epochs", "two"], "--epochs"),
    (["--adv-eps", "1.5"], "--adv-eps"),
    (["--train-rotation", "200"], "--train-rotation"),
    (["--curriculum", "slow"], "--curriculum"),
    (["--curriculum", "1:10:0:0.1"], "curriculum"),  # 1 stage epoch for --epochs 15
    (["--dataset", "mnist", "--data-dir", "NOWHERE"], "not found under"),
])
def test_train_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, needle):
    out = tmp_path / "run"
    code, _, err = run_main(tr.main, ["--out", str(out), "--quiet", *argv], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m empirics.train: error:")
    assert needle in lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_train_cli_runs_refuses_overwrite_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_main(tr.main, ["--out", str(out), "--seed", "5", *TINY], capsys)
    assert code == 0 and "test accuracy" in stdout
    config = tr.read_config(out)
    assert config.seed == 5 and config.train_subset == 100 and config.lr == 1e-3
    before = (out / "checkpoint.pt").read_bytes()
    code, _, err = run_main(tr.main, ["--out", str(out), *TINY], capsys)
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    assert (out / "checkpoint.pt").read_bytes() == before
    # --resume alone takes the saved config; a conflicting option is named
    assert run_main(tr.main, ["--out", str(out), "--resume", "--quiet"], capsys)[0] == 0
    code, _, err = run_main(tr.main, ["--out", str(out), "--resume", "--seed", "6", "--quiet"], capsys)
    assert code == 2 and "seed" in err


def test_train_cli_builds_curricula_and_optimizer_defaults(tmp_path):
    args = tr.parser().parse_args(["--out", "x", "--epochs", "12", "--curriculum", "cusp",
                                   "--optimizer", "sgd", "--model-kwarg", "dropout=0.25"])
    config = tr.config_from_args(args)
    assert config.curriculum == tr.cusp_stages(12, lr=0.1) and config.lr == 0.1
    assert config.model_kwargs == (("dropout", 0.25),)
    args = tr.parser().parse_args(["--out", "x", "--epochs", "3", "--curriculum",
                                   "2:30:0:0.01,1:60:0.1:0.001"])
    assert tr.config_from_args(args).curriculum == (tr.Stage(2, 30.0, 0.0, 0.01),
                                                    tr.Stage(1, 60.0, 0.1, 0.001))


def test_help_explains_every_option(capsys):
    for main, flags in ((tr.main, ["--train-rotation", "--adv-eps", "--curriculum", "--resume",
                                   "--download", "--device", "--seed"]),
                        (prof.main, ["--thetas", "--eps", "--test-rotation", "--steps", "--n-test"])):
        code, out, _ = run_main(main, ["--help"], capsys)
        assert code == 0
        for flag in flags:
            assert flag in out


@pytest.mark.parametrize("text,expected", [
    ("0:180:15", tuple(range(0, 181, 15))),
    ("0:1:0.25", (0.0, 0.25, 0.5, 0.75, 1.0)),
    ("0:0.3:0.1", (0.0, 0.1, 0.2, 0.3)),  # 0.3 / 0.1 is 2.9999999999999996 in floats
    ("0,0.1,0.3", (0.0, 0.1, 0.3)),
    ("45", (45.0,))])
def test_grid_syntax_includes_stop(text, expected):
    assert prof.parse_grid(text, "--x", 0.0, 180.0) == pytest.approx(expected, abs=1e-12)


def test_grid_of_eps_0_1_005_has_21_points():
    grid = prof.parse_grid("0:1:0.05", "--eps", 0.0, 1.0)
    assert len(grid) == 21 and grid[-1] == 1.0 and grid[1] == 0.05


@pytest.mark.parametrize("argv,needle", [
    (["--eps", "0:2:0.5"], "--eps"),
    (["--eps", "a:b"], "--eps"),
    (["--thetas", "0:200:50"], "--thetas"),
    (["--thetas", "90,30"], "--thetas"),
    (["--steps", "0"], "--steps"),
    (["--test-rotation", "200"], "--test-rotation"),
])
def test_profile_bad_grids_exit_2(trained, capsys, argv, needle):
    code, _, err = run_main(prof.main, [str(trained), *argv], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (trained / "profile.json").exists()


def test_profile_missing_run_dir_and_corrupt_checkpoint(tmp_path, trained, capsys):
    code, _, err = run_main(prof.main, [str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "nowhere" in err
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "metrics.json"):
        (broken / name).write_bytes((trained / name).read_bytes())
    (broken / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    code, _, err = run_main(prof.main, [str(broken), "--thetas", "0", "--eps", "0"], capsys)
    assert code == 2 and "corrupt checkpoint" in err and "checkpoint.pt" in err
    assert not (broken / "profile.json").exists()


def test_profile_writes_json_and_prints_a_table(trained, capsys):
    pytest.importorskip("empirics.profiles")
    code, out, _ = run_main(prof.main, [str(trained), "--thetas", "0:90:45", "--eps", "0,0.1",
                                        "--steps", "2", "--n-test", "60"], capsys)
    assert code == 0
    record = json.loads((trained / "profile.json").read_text())
    # the one profile schema, whichever command writes it (invrob profile --model RUN_DIR too)
    assert record["schema"] == "invrob.evaluation/1" and record["n_examples"] == 60
    assert record["model"]["train_config"]["train_rotation"] == 30.0
    assert record["model"]["kind"] == "run" and record["model"]["epoch"] == 1
    assert record["model"]["finished"] is True
    points = record["test_points"]
    assert points["n"] == 60 and points["subset_seed"] == 0 and len(points["indices"]) == 60
    assert record["rotation"]["invariance"]["thetas"] == [0.0, 45.0, 90.0]
    assert record["eps"] == [0.0, 0.1] and record["attacks"]["pgd"]["steps"] == 2
    assert "theta" in out and "eps" in out and "profile.json" in out and "epoch 1" in out
    # theta = 0 leaves every image as is: invariance is exactly 1
    assert record["rotation"]["invariance"]["invariance"][0]["estimate"] == 1.0
    assert not list(trained.glob(".lock*")) and not list(trained.glob(".profile.json.*"))


def test_profile_refuses_a_run_folder_being_trained(trained, capsys):
    """The run folder's lock, held by a live process, is named; nothing is written."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        from core.lock import process_start
        import socket
        lock = {"pid": sleeper.pid, "host": socket.gethostname(), "started": "now",
                "start_ticks": process_start(sleeper.pid)}
        (trained / ".lock").write_text(json.dumps(lock))
        before = {p.name: p.stat().st_mtime_ns for p in trained.iterdir()}
        code, _, err = run_main(prof.main, [str(trained), "--thetas", "0", "--eps", "0"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert f"pid {sleeper.pid}" in err
        assert {p.name: p.stat().st_mtime_ns for p in trained.iterdir()} == before
    finally:
        sleeper.kill()
        sleeper.wait()
        (trained / ".lock").unlink(missing_ok=True)


def test_module_entry_points_exit_2_in_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "empirics.train", "--out", str(tmp_path / "r"),
                           "--epochs", "-3"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--epochs" in proc.stderr
    assert not (tmp_path / "r").exists()
