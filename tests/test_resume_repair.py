"""Resume repairs what a kill leaves (a lagging metrics.json, temp files),
refuses checkpoints that do not fit the config, never drops recorded
epochs silently; training threads are fixed and recorded."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from core.errors import UsageError
from empirics.train import CHECKPOINT, CONFIG, METRICS, TRAIN_THREADS, TrainConfig, train
from empirics.train import loop

TINY = TrainConfig(epochs=2, train_subset=100, test_subset=100, batch_size=50)


def _state(run) -> dict:
    return torch.load(run / CHECKPOINT, map_location="cpu", weights_only=True)["model"]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch run, never modified (copy it to change it)."""
    run = tmp_path_factory.mktemp("repair") / "run"
    train(TINY, run, progress=False)
    return run


def _copy(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    return run


def test_resume_repairs_metrics_that_lag_the_final_checkpoint(finished, tmp_path):
    run = _copy(finished, tmp_path)
    whole = json.loads((run / METRICS).read_text())
    lagging = {**whole, "epochs": whole["epochs"][:1], "finished": False}
    (run / METRICS).write_text(json.dumps(lagging))  # killed between checkpoint and metrics
    ckpt_bytes = (run / CHECKPOINT).read_bytes()
    result = train(TINY, run, resume=True, progress=False)
    repaired = json.loads((run / METRICS).read_text())
    assert repaired["finished"] is True and repaired["epochs"] == whole["epochs"]
    assert [m.to_dict() for m in result.epochs] == whole["epochs"]
    assert (run / CHECKPOINT).read_bytes() == ckpt_bytes  # repaired, not retrained


def test_resume_leaves_metrics_that_match_untouched(finished, tmp_path):
    run = _copy(finished, tmp_path)
    before = (run / METRICS).read_bytes()
    train(TINY, run, resume=True, progress=False)
    assert (run / METRICS).read_bytes() == before


def test_resume_removes_temp_files_of_interrupted_writes(finished, tmp_path):
    run = _copy(finished, tmp_path)
    leftovers = [run / f".{CHECKPOINT}.k2j3h4.tmp", run / f".{METRICS}.a1b2.tmp",
                 run / f".{CONFIG}.zz.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    keep = run / "notes.tmp"
    keep.write_text("mine")
    train(TINY, run, resume=True, progress=False)
    assert [p for p in leftovers if p.exists()] == [] and keep.read_text() == "mine"


def _other_checkpoint(tmp_path, config: TrainConfig, into):
    other = tmp_path / "other"
    train(config, other, progress=False)
    shutil.copy(other / CHECKPOINT, into / CHECKPOINT)


@pytest.mark.parametrize("other, needle", [
    (TrainConfig(epochs=3, train_subset=100, test_subset=100, batch_size=50), "at epoch 3"),
    (TrainConfig(epochs=1, train_subset=100, test_subset=100, batch_size=50,
                 train_rotation=30.0), "schedule"),
])
def test_resume_refuses_a_checkpoint_that_does_not_fit_the_config(finished, tmp_path, other,
                                                                  needle):
    run = _copy(finished, tmp_path)
    _other_checkpoint(tmp_path, other, run)
    before = {name: (run / name).read_bytes() for name in (CHECKPOINT, METRICS, CONFIG)}
    with pytest.raises(UsageError, match=needle):
        train(TINY, run, resume=True, progress=False)
    assert {name: (run / name).read_bytes() for name in before} == before


def test_resume_without_a_checkpoint_keeps_the_recorded_metrics(finished, tmp_path):
    run = _copy(finished, tmp_path)
    (run / CHECKPOINT).unlink()
    before = (run / METRICS).read_bytes()
    with pytest.raises(UsageError, match="records 2 epoch.* no checkpoint.pt.*--force"):
        train(TINY, run, resume=True, progress=False)
    assert (run / METRICS).read_bytes() == before
    train(TINY, run, force=True, progress=False)  # an explicit restart is allowed
    assert json.loads((run / METRICS).read_text())["finished"] is True


def test_resume_refuses_metrics_ahead_of_the_checkpoint(finished, tmp_path):
    run = _copy(finished, tmp_path)
    metrics = json.loads((run / METRICS).read_text())
    metrics["epochs"].append({**metrics["epochs"][-1], "epoch": 3})
    (run / METRICS).write_text(json.dumps(metrics))
    with pytest.raises(UsageError, match="records 3 epochs but checkpoint.pt only 2"):
        train(TINY, run, resume=True, progress=False)


# ---------------------------------------------------------------- threads
def _threads_seen(monkeypatch) -> list[int]:
    seen = []
    run_epoch = loop._run_epoch

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return run_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "_run_epoch", spy)
    return seen


def test_training_threads_are_fixed_recorded_and_restored(tmp_path, monkeypatch):
    seen = _threads_seen(monkeypatch)
    before = torch.get_num_threads()
    outer = TRAIN_THREADS + 1
    torch.set_num_threads(outer)
    try:
        train(TINY, tmp_path / "run", progress=False)
        assert torch.get_num_threads() == outer  # restored after the run
    finally:
        torch.set_num_threads(before)
    assert seen == [TRAIN_THREADS] * TINY.epochs
    assert json.loads((tmp_path / "run" / METRICS).read_text())["threads"] == TRAIN_THREADS
    ckpt = torch.load(tmp_path / "run" / CHECKPOINT, map_location="cpu", weights_only=True)
    assert ckpt["threads"] == TRAIN_THREADS


def test_a_resumed_run_uses_the_recorded_thread_count(tmp_path, monkeypatch):
    one_epoch = TrainConfig(epochs=1, train_subset=100, test_subset=100, batch_size=50)
    run = tmp_path / "run"
    train(one_epoch, run, progress=False)
    recorded = TRAIN_THREADS + 1
    ckpt = torch.load(run / CHECKPOINT, map_location="cpu", weights_only=True)
    torch.save({**ckpt, "threads": recorded}, run / CHECKPOINT)
    (run / CONFIG).write_text(json.dumps(TINY.to_dict()))  # now epoch 1 of 2
    seen = _threads_seen(monkeypatch)
    train(TINY, run, resume=True, progress=False)
    assert seen == [recorded]
    assert json.loads((run / METRICS).read_text())["threads"] == recorded


def test_weights_do_not_depend_on_the_callers_thread_count(tmp_path):
    before = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            train(TINY, tmp_path / f"threads{n}", progress=False)
    finally:
        torch.set_num_threads(before)
    assert _same_weights(_state(tmp_path / "threads1"), _state(tmp_path / "threads2"))
