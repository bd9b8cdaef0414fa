"""Every CLI, every class of bad input: unusable paths (empty, a file where a
folder is needed or the reverse, under a regular file, read-only, a name the
OS refuses, an output that is a device, a FIFO or a folder, a sibling output
in the way), unknown or absent devices, non-finite or absurd sizes, work
beyond a meaningful bound, seeds outside [0, 2^63), keyword values of the
wrong type, memory the machine cannot have, unreachable Ray addresses,
damaged run folders and data, a download without a network. Each must fail
before any work, in one line naming the option, with exit status 2."""
from __future__ import annotations

import json
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
from empirics.train.config import TrainConfig
from invrob import cli as invrob_cli
from paper_figures import __main__ as figures_cli
from theory import check as theory_cli
from verify import __main__ as verify_cli

ROOT = Path(__file__).resolve().parents[1]


def _invrob_profile(argv):
    raise SystemExit(invrob_cli.main(["profile", *argv]))


MAINS = {"theory": theory_cli.main, "train": train_cli.main, "profile": profile_cli.main,
         "figures": figures_cli.main, "verify": verify_cli.main, "invrob": _invrob_profile}
LONG = "x" * 300  # a name longer than any file system allows (255 bytes)
M = ["--model", "nowhere_mod:f"]  # never imported: the outputs are refused first


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
        ("invrob", [*M, "--out", ""], "--out"),
    ],
    # a folder where a file is needed
    "folder_for_file": [
        ("theory", ["--p", "0.7", "--plot", "{t}/adir"], "--plot"),
        ("invrob", [*M, "--out", "{t}/adir"], "--out"),
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
        ("invrob", [*M, "--out", "{t}/rodir/e.json"], "--out"),
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
        ("invrob", [*M, "--n-test", str(validate.MAX_SAMPLES + 1)], "--n-test"),
    ],
    # work beyond a meaningful bound: each numeric option at 10^6 x its default
    "unbounded": [
        ("train", ["--out", "{t}/run", "--adv-steps", "10000000"], "--adv-steps"),
        ("train", ["--out", "{t}/run", "--batch-size", "64000000"], "--batch-size"),
        ("train", ["--out", "{t}/run", "--epochs", "15000000"], "--epochs"),
        ("profile", ["{t}/adir", "--steps", "40000000"], "--steps"),
        ("profile", ["{t}/adir", "--batch-size", "500000000"], "--batch-size"),
        ("invrob", [*M, "--steps", "40000000"], "--steps"),
        ("invrob", [*M, "--k", "10000000"], "--k"),
        ("invrob", [*M, "--grid-points", "31000001"], "--grid-points"),
        ("invrob", [*M, "--batch-size", "500000000"], "--batch-size"),
        ("theory", ["--p", "0.7", "--train-steps", "200000000"], "--train-steps"),
        ("theory", ["--p", "0.7", "--n", "200000000000"], "--n"),
        ("theory", ["--p", "0.7", "--mu", "3000000"], "--mu"),
        ("theory", ["--p", "0.7", "--eta", "1000000"], "--eta"),
        ("figures", ["run", "fig1", "--store", "{t}/store", "--jobs", "2000000"], "--jobs"),
        ("verify", ["--store", "{t}/adir", "--out", "{t}/adir", "--resamples", "2000000000"],
         "--resamples"),
        ("verify", ["--store", "{t}/adir", "--out", "{t}/adir", "--resamples", "50"],
         "--resamples"),  # under the documented 100
    ],
    # seeds lie in [0, 2^63) everywhere
    "seed": [
        ("theory", ["--p", "0.7", "--seed", str(2**63)], "--seed"),
        ("train", ["--out", "{t}/run", "--seed", "-1"], "--seed"),
        ("profile", ["{t}/adir", "--seed", "-1"], "--seed"),
        ("profile", ["{t}/adir", "--seed", "99999999999999999999"], "--seed"),
        ("verify", ["--store", "{t}/adir", "--out", "{t}/adir", "--seed", "-1"], "--seed"),
        ("invrob", [*M, "--seed", "9999999999999999999999"], "--seed"),
    ],
    # values of the wrong kind
    "value": [
        ("train", ["--out", "{t}/run", "--model", "p4cnn", "--model-kwarg", "invariant_head=maybe"],
         "--model-kwarg"),
        ("train", ["--out", "{t}/run", "--model", "p4cnn", "--model-kwarg", "invariant_head=\"no\""],
         "--model-kwarg"),
        ("train", ["--out", "{t}/run", "--model", "stdcnn", "--model-kwarg", "depth=3"],
         "--model-kwarg"),
        ("invrob", ["--model", "", "--out", "{t}/e.json"], "--model"),
        ("invrob", [*M, "--eps", "8/0"], "--eps"),
    ],
    # paths the OS refuses (ENAMETOOLONG)
    "os_refuses": [
        ("theory", ["--p", "0.7", "--plot", "{t}/" + LONG + ".png"], "--plot"),
        ("train", ["--out", "{t}/" + LONG], "--out"),
        ("profile", ["{t}/" + LONG], "RUN_DIR"),
        ("figures", ["plot", "fig1", "--store", "{t}/adir", "--out", "{t}/" + LONG], "--out"),
        ("verify", ["--store", "{t}/adir", "--out", "{t}/" + LONG], "--out"),
        ("invrob", [*M, "--out", "{t}/" + LONG + ".json"], "--out"),
    ],
    # outputs that exist as something other than a regular file are never replaced
    "not_regular": [
        ("theory", ["--p", "0.7", "--plot", "{t}/pipe.png"], "--plot"),
        ("theory", ["--p", "0.7", "--plot", "/dev/null"], "--plot"),
        ("invrob", [*M, "--out", "{t}/pipe.json"], "--out"),
        ("invrob", [*M, "--out", "/dev/null"], "--out"),
        ("profile", ["{t}/fiforun"], "RUN_DIR"),
    ],
    # a sibling output in the way, found before any work
    "sibling": [
        ("invrob", [*M, "--out", "{t}/sib.json"], "--out"),  # sib.png is a folder
        ("figures", ["plot", "fig1", "--store", "{t}/adir", "--out", "{t}/figs"], "--out"),
        ("verify", ["--store", "{t}/adir", "--out", "{t}/reps"], "--out"),
    ],
    # damaged run folders and data
    "state": [
        ("train", ["--out", "{t}/brokenrun", "--resume"], "--out"),  # metrics.json a folder
        ("profile", ["{t}/brokenrun"], "RUN_DIR"),
        ("train", ["--out", "{t}/hugerun", "--resume"], "--epochs"),  # epochs 10**12
        ("train", ["--out", "{t}/run", "--dataset", "mnist", "--data-dir", "{t}/mal"],
         "--data-dir"),  # processed/*.pt that would run code
        ("figures", ["run", "fig1", "--dataset", "fashion-mnist", "--data-dir", "{t}/adir",
                     "--store", "{t}/store"], "--data-dir"),  # checked before the store
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
    for kind in ("unbounded", "os_refuses"):
        assert {cli for cli, _, _ in CASES[kind]} == clis, kind
    assert {cli for cli, _, _ in CASES["seed"]} == clis - {"figures"}  # which takes no seed
    for kind in ("empty", "read_only", "over_maximum"):
        assert {cli for cli, _, _ in CASES[kind]} == clis, kind
    assert {cli for kind in ("file_for_folder", "folder_for_file")
            for cli, _, _ in CASES[kind]} == clis
    # the three that take --device; only paper_figures takes --ray
    assert {cli for cli, _, _ in CASES["device"]} == {"train", "profile", "figures"}


class _Evil:
    """Unpickling this would run a command: it must be refused."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _damaged(t: Path) -> None:
    """Run folders and data sets that must be refused before any work."""
    os.mkfifo(t / "pipe.png")
    os.mkfifo(t / "pipe.json")
    (t / "sib.png").mkdir()
    (t / "figs" / "fig1.png").mkdir(parents=True)
    (t / "reps" / "quick" / "report.md").mkdir(parents=True)
    config = TrainConfig().to_dict()
    for name in ("brokenrun", "hugerun", "fiforun"):
        (t / name).mkdir()
        (t / name / "config.json").write_text(json.dumps(config))
    (t / "brokenrun" / "metrics.json").mkdir()
    os.mkfifo(t / "fiforun" / "profile.json")
    (t / "hugerun" / "config.json").write_text(json.dumps({**config, "epochs": 10**12}))
    processed = t / "mal" / "MNIST" / "processed"
    processed.mkdir(parents=True)
    for name in ("training.pt", "test.pt"):
        torch.save(_Evil(), processed / name)


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("a regular file\n")
    (tmp_path / "adir").mkdir()
    _damaged(tmp_path)
    monkeypatch.chdir(tmp_path)
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
    assert not (scratch / "PWNED").exists()


def test_download_without_a_network_says_where_to_put_the_files(scratch, capsys, monkeypatch):
    import torchvision.datasets
    from urllib.error import URLError

    def offline(*args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    before = _tree(scratch)
    with pytest.raises(SystemExit) as exc:
        train_cli.main(["--out", f"{scratch}/run", "--dataset", "cifar10", "--download",
                        "--data-dir", f"{scratch}/dl", "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(lines) == 1, lines
    assert "--download" in lines[0] and "failed" in lines[0] and "by hand" in lines[0]
    assert f"{scratch}/dl/cifar-10-batches-py" in lines[0]
    assert _tree(scratch) == before


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


@pytest.mark.parametrize("damage", ["profiles_fields", "metrics_json"])
def test_a_damaged_store_record_is_one_line_naming_the_file(tmp_path, capsys, damage):
    from pipeline.experiments import figure
    from pipeline.runstore import RunStore

    store = RunStore(tmp_path / "store")
    spec = figure("fig1", "quick").runs[0]
    folder = store.run_dir(spec)
    folder.mkdir(parents=True)
    if damage == "profiles_fields":  # the key matches, the fields are missing
        (folder / "profiles.json").write_text(json.dumps({"key": spec.key}))
        bad = folder / "profiles.json"
    else:
        (folder / "profiles.json").write_text(json.dumps({"key": spec.key, "invariance": {},
                                                          "robustness": []}))
        (folder / "metrics.json").write_text("{not json")
        bad = folder / "metrics.json"
    with pytest.raises(SystemExit) as exc:
        figures_cli.main(["list", "--store", str(store.root)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and str(bad) in err[0], err
    assert "Traceback" not in "\n".join(err)
