"""Atomic writes leave either the old file or the new one, never a mix."""
import json
import stat
import subprocess
import sys
import time
import os

import pytest
import torch

from core import io
from core.errors import UsageError, exit_on_usage_error


def test_atomic_json_replaces_whole_file(tmp_path):
    path = tmp_path / "r.json"
    io.atomic_write_json(path, {"a": 1})
    io.atomic_write_json(path, {"b": 2})
    assert json.loads(path.read_text()) == {"b": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp files left


def test_failed_write_keeps_old_content(tmp_path):
    path = tmp_path / "r.json"
    io.atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        io.atomic_write_json(path, {"bad": object()})  # not JSON-serialisable
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["r.json"]


def test_atomic_torch_save_loads_weights_only(tmp_path):
    path = tmp_path / "c.pt"
    io.atomic_torch_save({"w": torch.arange(3.0), "epoch": 2}, path)
    obj = torch.load(path, weights_only=True)
    assert obj["epoch"] == 2 and torch.equal(obj["w"], torch.arange(3.0))


def test_provenance_fields():
    prov = io.provenance()
    assert {"invrob_version", "git_commit", "python", "torch"} <= prov.keys()


def test_usage_error_exits_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        with exit_on_usage_error("prog"):
            raise UsageError("`--p` must lie in [1/2, 1)\nsecond line")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == "prog: error: `--p` must lie in [1/2, 1)\n"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    path = tmp_path / "r.json"
    dead = tmp_path / f".r.json.{io.host_tag()}-{_dead_pid()}.abc123.tmp"
    live = tmp_path / f".r.json.{io.host_tag()}-{os.getpid()}.def456.tmp"
    other_host = tmp_path / f".r.json.00000000-{_dead_pid()}.ghi789.tmp"
    old_style = tmp_path / ".r.json.k2j4h5.tmp"  # the earlier naming, without a pid
    fresh_old_style = tmp_path / ".r.json.zz9988.tmp"
    for f in (dead, live, other_host, old_style, fresh_old_style):
        f.write_text("partial")
    an_hour_ago = time.time() - io.LEGACY_TEMP_SECONDS - 60
    os.utime(old_style, (an_hour_ago, an_hour_ago))
    io.atomic_write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    left = {f.name for f in tmp_path.iterdir()}
    # a live writer's, another host's and a recent one of unknown owner stay
    assert left == {"r.json", live.name, other_host.name, fresh_old_style.name}


@pytest.mark.parametrize("make", ["fifo", "folder"])
def test_atomic_write_never_replaces_what_is_not_a_regular_file(tmp_path, make):
    path = tmp_path / "out.png"
    os.mkfifo(path) if make == "fifo" else path.mkdir()
    with pytest.raises(UsageError, match="only a regular file is ever replaced"):
        io.atomic_write_bytes(path, b"data")
    assert (stat.S_ISFIFO if make == "fifo" else stat.S_ISDIR)(os.lstat(path).st_mode)
    assert os.listdir(tmp_path) == ["out.png"]  # no temp file left either


def test_the_os_refusing_a_path_is_one_line_naming_the_option(tmp_path):
    from core import validate

    long = "y" * 300
    for check in (validate.output_file, validate.output_dir, validate.input_file,
                  validate.input_dir, validate.folder_path):
        with pytest.raises(UsageError, match="^`--out` .*this file system allows"):
            check(tmp_path / long / "r.json", "--out")
    # an output name that leaves no room for its temp file next to it
    with pytest.raises(UsageError, match="^`--out`"):
        validate.output_file(tmp_path / ("z" * 250), "--out")


def test_numbers_may_be_fractions():
    from core import validate

    assert validate.number("8/255") == 8 / 255 and validate.number(" 0.25 ") == 0.25
    for bad in ("1/0", "a/2", "nan/1", ""):
        with pytest.raises(ValueError):
            validate.number(bad)
