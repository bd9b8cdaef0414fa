"""Every CLI, every class of bad input: unusable paths (empty, a file where a
folder is needed or the reverse, under a regular file, read-only), unknown
or absent devices, non-finite or absurd sizes, memory the machine cannot
have, unreachable Ray addresses. Each must fail before any work, in one
line naming the option, with exit status 2."""
from __future__ import annotations

import os
import resource
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core import validate
from empirics import profile as profile_cli
from empirics.train import cli as train_cli
from paper_figures import __main__ as figures_cli
from theory import check as theory_cli
from verify import __main__ as verify_cli

ROOT = Path(__file__).resolve().parents[1]
MAINS = {"theory": theory_cli.main, "train": train_cli.main, "profile": profile_cli.main,
         "figures": figures_cli.main, "verify": verify_cli.main}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# (cli, argv with {t} for the scratch folder, the option the line must name).
# In {t}: afile (a regular file), adir (an empty folder), rodir (read-only).
CASES = {
    # empty strings are not paths
    "empty": [
        ("theory", ["--p", "0.7", "--plot", ""], "--plot"),
        ("train", ["--out", ""], "--out"),
        ("train", ["--out", "{t}/run", "--data-dir", ""], "--data-dir"),
        ("profile", [""], "RUN_DIR"),
        ("figures", ["plot", "fig1", "--store", "{t}/adir", "--out", ""], "--out"),
        ("figures", ["run", "fig1", "--store", ""], "--store"),
        ("verify", ["--store", "{t}/adir", "--out", ""], "--out"),
        ("verify", ["--store", "", "--out", "{t}/adir"], "--store"),
    ],
    # a folder where a file is needed
    "folder_for_file": [
        ("theory", ["--p", "0.7", "--plot", "{t}/adir"], "--plot"),
    ],
    # a file where a folder is needed
    "file_for_folder": [
        ("train", ["--out", "{t}/afile"], "--out"),
        ("profile", ["{t}/afile"], "RUN_DIR"),
        ("figures", ["plot", "fig1", "--store", "{t}/adir", "--out", "{t}/afile"], "--out"),
        ("figures", ["plot", "fig1", "--store", "{t}/afile"], "--store"),
        ("figures", ["run", "fig1", "--store", "{t}/afile"], "--store"),
        ("figures", ["list", "--store", "{t}/afile"], "--store"),
        ("verify", ["--store", "{t}/adir", "--out", "{t}/afile"], "--out"),
        ("verify", ["--store", "{t}/afile", "--out", "{t}/adir"], "--store"),
        ("verify", ["--store", "{t}/adir", "--out", "{t}/adir", "--figures", "{t}/afile"],
         "--figures"),
    ],
    # a path under a regular file
    "under_a_file": [
        ("theory", ["--p", "0.7", "--plot", "{t}/afile/x.png"], "--plot"),
        ("train", ["--out", "{t}/afile/run"], "--out"),
        ("figures", ["plot", "fig1", "--store", "{t}/adir", "--out", "{t}/afile/figs"], "--out"),
        ("figures", ["run", "fig1", "--store", "{t}/afile/store"], "--store"),
        ("verify", ["--store", "{t}/adir", "--out", "{t}/afile/reports"], "--out"),
    ],
    # a folder nobody may write
    "read_only": [
        ("theory", ["--p", "0.7", "--plot", "{t}/rodir/x.png"], "--plot"),
        ("train", ["--out", "{t}/rodir/run"], "--out"),
        ("train", ["--out", "{t}/rodir"], "--out"),
        ("profile", ["{t}/rodir"], "RUN_DIR"),
        ("figures", ["plot", "fig1", "--store", "{t}/adir", "--out", "{t}/rodir"], "--out"),
        ("figures", ["run", "fig1", "--store", "{t}/rodir"], "--store"),
        ("verify", ["--store", "{t}/rodir", "--out", "{t}/adir"], "--store"),
        ("verify", ["--store", "{t}/adir", "--out", "{t}/rodir/reports"], "--out"),
    ],
    # unknown or absent devices
    "device": [
        ("train", ["--out", "{t}/run", "--device", "foo"], "--device"),
        ("train", ["--out", "{t}/run", "--device", "cuda:99"], "--device"),
        ("profile", ["{t}/adir", "--device", "foo"], "--device"),
        ("profile", ["{t}/adir", "--device", "cuda:99"], "--device"),
        ("figures", ["run", "fig1", "--store", "{t}/store", "--device", "foo"], "--device"),
        ("figures", ["run", "fig1", "--store", "{t}/store", "--device", "cuda:99"], "--device"),
    ],
    # non-finite sizes
    "non_finite": [
        ("profile", ["{t}/adir", "--thetas", "0:inf:15"], "--thetas"),
        ("profile", ["{t}/adir", "--eps", "0:nan:0.1"], "--eps"),
        ("profile", ["{t}/adir", "--test-rotation", "nan"], "--test-rotation"),
        ("theory", ["--p", "0.7", "--mu", "inf"], "--mu"),
        ("figures", ["run", "fig1", "--store", "{t}/store", "--gpus-per-run", "nan"],
         "--gpus-per-run"),
    ],
    # sizes over the stated maxima
    "over_maximum": [
        ("profile", ["{t}/adir", "--thetas", "0:180:1e-9"], "--thetas"),
        ("profile", ["{t}/adir", "--steps", str(validate.MAX_STEPS + 1)], "--steps"),
        ("profile", ["{t}/adir", "--steps", "100000000000"], "--steps"),
        ("profile", ["{t}/adir", "--n-test", str(validate.MAX_SAMPLES + 1)], "--n-test"),
        ("train", ["--out", "{t}/run", "--epochs", "100000000000"], "--epochs"),
        ("train", ["--out", "{t}/run", "--adv-steps", str(validate.MAX_STEPS + 1)], "--adv-steps"),
        ("theory", ["--p", "0.7", "--d", "100000000"], "--d"),
        ("theory", ["--p", "0.7", "--n", str(validate.MAX_SAMPLES + 1)], "--n"),
        ("theory", ["--p", "0.7", "--train-steps", "100000000000"], "--train-steps"),
        ("figures", ["run", "fig1", "--store", "{t}/store", "--jobs", str(validate.MAX_JOBS + 1)],
         "--jobs"),
        ("verify", ["--store", "{t}/adir", "--out", "{t}/adir", "--resamples", "100000000000"],
         "--resamples"),
        ("verify", ["--store", "{t}/adir", "--out", "{t}/adir", "--jobs", "100000"], "--jobs"),
    ],
    # unreachable Ray addresses
    "ray": [
        ("figures", ["run", "fig1", "--store", "{t}/store", "--ray", "bogus:1234"], "--ray"),
        ("figures", ["run", "fig1", "--store", "{t}/store", "--ray",
                     f"ray://127.0.0.1:{_closed_port()}"], "--ray"),
        ("figures", ["run", "fig1", "--store", "{t}/store", "--ray", "ray://:x"], "--ray"),
    ],
}
TABLE = [pytest.param(cli, argv, option, id=f"{kind}-{cli}-{i}")
         for kind, rows in CASES.items() for i, (cli, argv, option) in enumerate(rows)]


def test_every_cli_meets_every_class_that_applies_to_it():
    clis = set(MAINS)
    for kind in ("empty", "read_only", "over_maximum"):
        assert {cli for cli, _, _ in CASES[kind]} == clis, kind
    assert {cli for kind in ("file_for_folder", "folder_for_file")
            for cli, _, _ in CASES[kind]} == clis
    # the three that take --device; only paper_figures takes --ray
    assert {cli for cli, _, _ in CASES["device"]} == {"train", "profile", "figures"}


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("a regular file\n")
    (tmp_path / "adir").mkdir()
    ro = tmp_path / "rodir"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root may write anywhere: judge by the mode bits as a user would
        monkeypatch.setattr(validate, "_writable",
                            lambda p: bool(os.stat(p).st_mode & stat.S_IWUSR))
    yield tmp_path
    ro.chmod(0o755)


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.mark.parametrize("cli, argv, option", TABLE)
def test_bad_input_is_one_line_naming_the_option_exit_2(scratch, capsys, cli, argv, option):
    argv = [a.replace("{t}", str(scratch)) for a in argv]
    before = _tree(scratch)
    start = time.monotonic()
    with pytest.raises(SystemExit) as exc:
        MAINS[cli](argv)
    assert time.monotonic() - start < 10  # fails at once, before any work
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0] and option in lines[0], lines[0]
    assert "Traceback" not in err and out == ""
    assert _tree(scratch) == before  # nothing created or touched


def test_a_check_that_needs_more_memory_than_the_machine_has(capsys):
    total = validate.physical_memory()
    if total is None:
        pytest.skip("physical memory unknown here")
    d = 1
    while theory_cli.memory_estimate(d, 200_000) <= total:
        d *= 2
    if d > validate.MAX_DIMENSION:
        pytest.skip("this machine has memory for the largest allowed --d")
    with pytest.raises(SystemExit) as exc:
        theory_cli.main(["--p", "0.7", "--d", str(d)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "--d" in err[0] and "memory" in err[0]


def test_a_check_over_the_memory_limit_of_the_process():
    limit = 2 << 30  # ulimit -v: 2 GiB

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    d = 1
    while theory_cli.memory_estimate(d, 200_000) <= limit:
        d *= 2
    proc = subprocess.run([sys.executable, "-m", "theory.check", "--p", "0.7", "--d", str(d)],
                          cwd=ROOT, preexec_fn=cap, capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "--d" in lines[0] and "memory" in lines[0] and "MemoryError" not in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("cli, argv", [
    ("train", ["--out", "{t}/run", "--device", "cuda"]),
    ("profile", ["{t}/adir", "--device", "cuda"]),
    ("figures", ["run", "fig1", "--store", "{t}/store", "--device", "cuda"]),
])
def test_cuda_on_a_machine_without_cuda(scratch, capsys, cli, argv):
    with pytest.raises(SystemExit) as exc:
        MAINS[cli]([a.replace("{t}", str(scratch)) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "CUDA is not available" in err[0]


def test_good_paths_pass_and_are_not_created(tmp_path):
    assert validate.output_file(tmp_path / "new" / "x.png", "--plot") == tmp_path / "new" / "x.png"
    assert validate.output_dir(tmp_path / "a" / "b", "--out") == tmp_path / "a" / "b"
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "x.png").write_text("old")
    validate.output_file(tmp_path / "x.png", "--plot")  # replacing a file is fine
    assert (tmp_path / "x.png").read_text() == "old"
    assert str(validate.device("cpu")) == "cpu"
