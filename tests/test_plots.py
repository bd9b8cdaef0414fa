"""Figures are drawn from the run store only, their CSV holds exactly the
plotted numbers, and the command line rejects bad input with exit 2.
Profiles here are synthetic (seeded random outcomes), never trained."""
from __future__ import annotations

import json

import numpy as np
from scipy import stats as scipy_stats
import pytest

from pipeline.experiments import figure
from empirics.profiles import InvarianceProfile, RobustnessProfile
from pipeline.runstore import MissingRunError, RunStore
from paper_figures import tables
from paper_figures.__main__ import main
from paper_figures.commands import build, figure_current, plot_figure

N = 40  # synthetic test points per run


def synthetic_profiles(run, k: int, seed: int):
    """Outcomes whose rates move with the run's index k."""
    rng = np.random.default_rng(seed + k)
    thetas, eps = run.thetas, run.epsilons
    p_inv = [1 - (0.6 - 0.08 * k) * t / 180 for t in thetas]  # (n_thetas,)
    invariant = tuple(tuple(bool(v) for v in rng.random(N) < p) for p in p_inv)
    correct = tuple(tuple(bool(a and b) for a, b in zip(row, rng.random(N) < 0.95))
                    for row in invariant)
    inv = InvarianceProfile(thetas, invariant, correct, tuple(bool(v) for v in rng.random(N) < 0.97),
                            seed=0)
    broken = tuple(int(v) for v in rng.integers(0, len(eps) + 1, N))
    rob = RobustnessProfile(eps, broken, broken, 0.0, run.pgd_steps, 0)
    return inv, {0.0: rob}


def fill(store: RunStore, fig) -> None:
    for k, run in enumerate(fig.runs):
        inv, rob = synthetic_profiles(run, k, seed=1)
        store.save_profiles(run, inv, rob, seconds=0.0)


@pytest.fixture
def fig1():
    return figure("fig1", "quick")


def test_plot_never_trains_and_writes_nothing_when_runs_missing(tmp_path, fig1):
    store = RunStore(tmp_path / "store")
    fill(store, figure("fig5", "quick"))  # another figure's runs do not help
    n = len(fig1.runs)  # 7 rotations, one training seed
    with pytest.raises(MissingRunError, match=f"{n} of {n} runs missing"):
        plot_figure("fig1", "quick", store, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "store").glob(f"{fig1.runs[0].key}*"))  # nothing trained


def test_csv_matches_the_plotted_lines(tmp_path, fig1):
    store = RunStore(tmp_path / "store")
    fill(store, fig1)
    paths = plot_figure("fig1", "quick", store, tmp_path / "out", command="test")
    assert [p.suffix for p in paths] == [".png", ".pdf", ".csv", ".json"]
    assert all(p.stat().st_size > 0 for p in paths)
    rows = tables.from_csv(paths[2].read_text())
    plot, _ = build(fig1, store)
    robustness_ax, invariance_ax = plot.axes[:2]  # Fig. 1: robustness left, invariance right
    for ax, panel in ((robustness_ax, "robustness"), (invariance_ax, "invariance")):
        lines = {line.get_label(): line.get_xydata() for line in ax.get_lines()}
        assert set(lines) == {fig1.label(r) for r in fig1.runs}
        for label, xy in lines.items():
            pts = [(r.x, r.y) for r in rows if r.panel == panel and r.label == label]
            np.testing.assert_array_equal(xy, np.array(pts))
    record = json.loads(paths[3].read_text())
    assert record["run_keys"] == list(fig1.keys) and record["command"] == "test"


def test_csv_rates_are_the_stored_profiles(tmp_path):
    fig3 = figure("fig2", "quick")  # one training seed: each line is one run's rates
    store = RunStore(tmp_path / "store")
    fill(store, fig3)
    rows = tables.profile_rows(fig3, [store.load(r) for r in fig3.runs])
    run = fig3.runs[3]
    inv, rob = synthetic_profiles(run, 3, seed=1)
    got = [r.y for r in rows if r.run == run.key and r.panel == "invariance"]
    # rate of invariance recounted from the synthetic outcomes
    assert got == [sum(row) / N for row in inv.invariant]
    acc = [r.y for r in rows if r.run == run.key and r.panel == "robustness"]
    assert acc == [sum(b > j for b in rob[0.0].broken_at) / N for j in range(len(run.epsilons))]


def test_curriculum_auc_rows_agree_with_profile_auc(tmp_path):
    fig = figure("curriculum", "quick")
    store = RunStore(tmp_path / "store")
    fill(store, fig)
    records = [store.load(r) for r in fig.runs]
    rows = [r for r in tables.curriculum_rows(fig, records) if r.panel == "auc"]
    for row, rec in zip(rows, records):
        # mean of per-point trapezoid areas == trapezoid area of the rates
        assert row.x == pytest.approx(rec.invariance.auc(), abs=1e-12)
        assert row.y == pytest.approx(rec.robustness[0.0].auc(), abs=1e-12)
        assert row.x_ci_low <= row.x <= row.x_ci_high and row.ci_low <= row.y <= row.ci_high
    plot, csv_text = build(fig, store)
    assert len(tables.from_csv(csv_text)) == 4 * len(fig.runs)


@pytest.mark.parametrize("argv", [
    ["plot", "fig9"],
    ["run", "fig1", "--jobs", "0"],
    ["run", "fig1", "--scale", "huge"],
    ["frobnicate"],
])
def test_cli_bad_input_exits_2_with_one_line(argv, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--store", str(tmp_path)] if argv[0] in ("plot", "run") else argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m paper_figures") and len(err.splitlines()) == 1


def test_cli_plot_with_missing_runs_exits_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["plot", "fig1", "--store", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "runs missing" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_run_and_plot_skips_figures_whose_data_are_missing(tmp_path):
    from paper_figures import run_and_plot

    status = run_and_plot(["fig2", "fig6"], "quick", tmp_path / "store", jobs=1,
                          data_dir=str(tmp_path / "no-data"), out_dir=tmp_path / "out",
                          progress=False)
    assert set(status) == {"fig2", "fig6"}
    assert all(s.startswith("skipped: dataset 'cifar10' not found") for s in status.values())
    assert not (tmp_path / "out").exists() and not (tmp_path / "store").exists()


def test_seeds_pool_into_one_line_per_series_value(tmp_path, three_seeds):
    fig1 = three_seeds("fig1")
    store = RunStore(tmp_path / "store")
    fill(store, fig1)  # run k gets outcomes seeded by 1 + k
    rows = tables.profile_rows(fig1, [store.load(r) for r in fig1.runs])
    # one row per (rotation, x): 7 rotations x (21 eps + 13 thetas), seeds pooled
    assert len(rows) == 7 * (len(fig1.runs[0].epsilons) + len(fig1.runs[0].thetas))
    runs = fig1.runs[3:6]  # 30 degrees, seeds 0, 1, 2
    assert [r.train.seed for r in runs] == [0, 1, 2]
    inv = [synthetic_profiles(run, 3 + s, seed=1)[0] for s, run in enumerate(runs)]
    got = [r for r in rows if r.label == "30/0" and r.panel == "invariance"]
    assert {r.seeds for r in got} == {"0,1,2"}
    assert {r.run for r in got} == {";".join(run.key for run in runs)}
    for j, row in enumerate(got):
        counts = [sum(p.invariant[j]) for p in inv]  # successes of each seed at theta_j
        assert row.y == pytest.approx(sum(c / N for c in counts) / 3, abs=1e-12)
        assert row.n == 3 * N
        # Wilson score interval of the pooled counts, written out (Wilson 1927)
        k, n, z = sum(counts), 3 * N, scipy_stats.norm.ppf(0.975)
        centre, half = (k + z * z / 2) / (n + z * z), z * np.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
        assert (row.ci_low, row.ci_high) == pytest.approx((centre - half, centre + half), abs=1e-9)
    text = tables.to_csv(rows)  # round trip (rows hold NaNs, so compare the text)
    assert tables.to_csv(tables.from_csv(text)) == text and ",0,1,2\n" not in text
    assert '"0,1,2"' in text


def test_a_figure_goes_stale_when_a_record_it_was_drawn_from_changes(tmp_path, fig1):
    store, out = RunStore(tmp_path / "store"), tmp_path / "out"
    fill(store, fig1)
    assert not figure_current(fig1, store, out)  # nothing drawn yet
    plot_figure("fig1", "quick", store, out, command="test")
    assert figure_current(fig1, store, out)
    # the same runs, one of them measured again with other outcomes
    run = fig1.runs[3]
    inv, rob = synthetic_profiles(run, 3, seed=99)
    store.save_profiles(run, inv, rob, seconds=0.0)
    assert not figure_current(fig1, store, out)
    plot_figure("fig1", "quick", store, out, command="test")
    assert figure_current(fig1, store, out)
