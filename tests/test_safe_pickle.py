"""CIFAR-10 batches are read with a restricted unpickler: a crafted batch
that would run code is refused (one line, exit 2) and nothing runs."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import UsageError
from empirics.data import CIFAR_BATCHES, CIFAR_FOLDER, load
from empirics.safe_pickle import RefusedPickle, loads_restricted

ROOT = Path(__file__).resolve().parents[1]


class _Touch:
    """Unpickling this calls os.system (a shell command creating `marker`)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


def _write_batches(folder: Path, payload_for) -> None:
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        for name in CIFAR_BATCHES[split]:
            with open(folder / name, "wb") as fh:
                pickle.dump(payload_for(name), fh)


def _good_batch(name: str, n: int = 4) -> dict:
    rng = np.random.default_rng(0)
    return {"batch_label": name, "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "labels": [int(v) for v in rng.integers(0, 10, n)],
            "filenames": [f"{name}_{i}.png" for i in range(n)]}


@pytest.mark.parametrize("payload", [_Touch, _Eval])
def test_the_payload_really_runs_under_the_standard_unpickler(tmp_path, payload):
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(payload(marker)))
    assert marker.exists()  # so its absence below means the refusal worked


@pytest.mark.parametrize("payload", [_Touch, _Eval])
def test_malicious_batch_is_refused_and_nothing_runs(tmp_path, payload):
    marker = tmp_path / "ran"
    _write_batches(tmp_path / CIFAR_FOLDER,
                   lambda name: {**_good_batch(name), "data": payload(marker)})
    with pytest.raises(UsageError, match="refused to load global"):
        load("cifar10", "test", tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_real_batches_load_under_every_protocol(protocol):
    batch = _good_batch("data_batch_1")
    got = loads_restricted(pickle.dumps(batch, protocol=protocol))
    assert np.array_equal(got["data"], batch["data"]) and got["data"].dtype == np.uint8
    assert got["labels"] == batch["labels"] and got["filenames"] == batch["filenames"]


def test_codecs_encode_only_to_latin1():
    evil = (b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00aX\x05\x00\x00\x00rot13"
            b"\x86R.")
    with pytest.raises(RefusedPickle, match="latin-1"):
        loads_restricted(evil)


def test_malicious_batch_from_the_command_line_is_one_line_exit_2(tmp_path):
    marker = tmp_path / "ran"
    _write_batches(tmp_path / CIFAR_FOLDER,
                   lambda name: {**_good_batch(name), "data": _Touch(marker)})
    out = subprocess.run([sys.executable, "-m", "empirics.train", "--out", str(tmp_path / "run"),
                          "--dataset", "cifar10", "--data-dir", str(tmp_path), "--epochs", "1",
                          "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused to load global" in lines[0], out.stderr
    assert not marker.exists()
