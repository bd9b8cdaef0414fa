"""Atomic writes leave either the old file or the new one, never a mix."""
import json
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
