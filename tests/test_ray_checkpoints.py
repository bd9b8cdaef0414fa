"""The pieces of a Ray sweep that need no cluster: checkpoint storage
locations, a task resuming from the storage on another node (two task-side
stores on this machine stand for two nodes), and the driver's write of
returned records."""
from __future__ import annotations

import json

import pytest

import empirics.train.loop as loop
from core.errors import UsageError
from empirics.train import CHECKPOINT, TrainConfig
from pipeline import ray_executor
from pipeline.checkpoint_storage import FsspecFiles, LocalFiles, open_storage
from pipeline.runspec import RunSpec
from pipeline.runstore import PROFILES_FILE, RunStore
from pipeline.sweep import RunOptions, execute_run, run_sweep
from test_ray_cluster import measurements
from paper_figures.__main__ import main as figures_main

QUIET = RunOptions(progress=False)


@pytest.mark.parametrize("form", ["path", "file-uri", "memory-uri"])
def test_storage_locations_round_trip(tmp_path, form):
    uri = {"path": str(tmp_path / "ck"), "file-uri": f"file://{tmp_path / 'ck'}",
           "memory-uri": "memory://invrob-test/ck"}[form]
    storage = open_storage(uri)
    assert isinstance(storage, FsspecFiles if form == "memory-uri" else LocalFiles)
    assert storage.read("abc/checkpoint.pt") is None
    storage.write("abc/checkpoint.pt", b"\x00weights")
    storage.write("abc/checkpoint.pt", b"\x00newer")
    assert storage.read("abc/checkpoint.pt") == b"\x00newer"
    if form != "memory-uri":  # no temporary file left next to it
        assert [p.name for p in (tmp_path / "ck" / "abc").iterdir()] == ["checkpoint.pt"]


def test_a_storage_nothing_opens_is_one_line_naming_the_option():
    with pytest.raises(UsageError, match="^`--checkpoint-storage` 'nosuchfs://b/x': cannot open"):
        open_storage("nosuchfs://b/x")


def test_checkpoint_storage_without_ray_is_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        figures_main(["run", "fig1", "--store", str(tmp_path / "store"),
                      "--checkpoint-storage", str(tmp_path / "ck")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--checkpoint-storage" in err[0] and "--ray" in err[0]
    assert not (tmp_path / "store").exists() and not (tmp_path / "ck").exists()


class Killed(Exception):
    """Stands for the node dying in the middle of a run."""


@pytest.mark.slow
def test_a_retried_task_resumes_from_the_storage_on_another_node(tmp_path, monkeypatch):
    spec = RunSpec(TrainConfig(model="stdcnn", epochs=2, train_subset=200, test_subset=50),
                   thetas=(0, 90), epsilons=(0, 0.1), pgd_steps=2, n_test=40)
    reference = RunStore(tmp_path / "jobs1")
    run_sweep([spec], reference, options=QUIET)  # uninterrupted
    options = RunOptions(progress=False, checkpoint_storage=str(tmp_path / "checkpoints"))
    real_epoch, trained = loop._run_epoch, []

    def epoch_then_die(epoch, *args, **kwargs):
        if epoch >= 1:
            raise Killed
        trained.append(("a", epoch))
        return real_epoch(epoch, *args, **kwargs)

    monkeypatch.setattr(loop, "_run_epoch", epoch_then_die)
    monkeypatch.setenv(ray_executor.WORKER_STORE_ENV, str(tmp_path / "node-a"))
    with pytest.raises(Killed):
        ray_executor.run_task(spec, options, execute_run)

    def epoch_on_b(epoch, *args, **kwargs):
        trained.append(("b", epoch))
        return real_epoch(epoch, *args, **kwargs)

    monkeypatch.setattr(loop, "_run_epoch", epoch_on_b)
    monkeypatch.setenv(ray_executor.WORKER_STORE_ENV, str(tmp_path / "node-b"))
    records = ray_executor.run_task(spec, options, execute_run)
    assert trained == [("a", 0), ("b", 1)]  # node b trained only the epoch a did not finish
    driver = RunStore(tmp_path / "driver")
    ray_executor.write_records(driver, spec, records.files)
    assert measurements(driver, spec) == measurements(reference, spec)  # as if never killed
    first = json.loads((driver.run_dir(spec) / "metrics.json").read_text())["epochs"][0]
    on_a = json.loads((tmp_path / "node-a" / spec.key / "metrics.json").read_text())["epochs"][0]
    assert first == on_a  # epoch 1 came from node a's checkpoint, timings included


def test_driver_writes_records_profiles_last_and_drops_a_stale_checkpoint(tmp_path):
    spec = RunSpec(TrainConfig(epochs=1), thetas=(0,), epsilons=(0,), pgd_steps=1, n_test=10)
    store = RunStore(tmp_path)
    folder = store.run_dir(spec)
    folder.mkdir(parents=True)
    (folder / CHECKPOINT).write_bytes(b"an unfinished local attempt")
    profiles = json.dumps({"key": spec.key}).encode()
    files = ((PROFILES_FILE, profiles), ("metrics.json", b"{}"), ("extra/gap.json", b"[]"))
    ray_executor.write_records(store, spec, files)
    assert store.is_done(spec) and not (folder / CHECKPOINT).exists()
    assert (folder / "extra" / "gap.json").read_bytes() == b"[]"
    # profiles.json (the done marker) was written after every other record
    assert (folder / PROFILES_FILE).stat().st_mtime_ns >= max(
        (folder / n).stat().st_mtime_ns for n in ("metrics.json", "extra/gap.json"))
    ray_executor.write_records(store, spec, ((PROFILES_FILE, profiles), ("metrics.json", b"[1]")))
    assert (folder / "metrics.json").read_bytes() == b"{}"  # a done run is never rewritten
    for bad in ("../escape.json", "/abs.json"):
        with pytest.raises(UsageError, match="record path"):
            ray_executor.write_records(RunStore(tmp_path / "other"), spec,
                                       ((PROFILES_FILE, profiles), (bad, b"{}")))
