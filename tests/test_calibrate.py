"""Where a PGD accuracy curve changes, and grids that resolve it."""
import pytest

from pipeline.calibrate import MIN_POINTS, Resolution, resolution, suggest_grid


def linear_curve(epsilons, clean, zero_at):
    """Accuracy falling linearly from `clean` at eps 0 to 0 at `zero_at`."""
    return [max(0.0, clean * (1 - e / zero_at)) for e in epsilons]


def test_crossings_of_a_linear_curve_are_found_exactly():
    eps = [k * 0.01 for k in range(31)]
    res = resolution(eps, linear_curve(eps, 0.8, 0.2))
    # 90 % of clean: 0.8 * (1 - e / 0.2) = 0.72 at e = 0.02; 5 %: 0.8 (1 - e / 0.2) = 0.05
    assert res.start == pytest.approx(0.02, abs=1e-9)
    assert res.stop == pytest.approx(0.2 * (1 - 0.05 / 0.8), abs=1e-9)
    inside = [e for e in eps if res.start <= e <= res.stop]
    assert res.points == len(inside) and res.resolved == (len(inside) >= MIN_POINTS)


def test_a_coarse_grid_does_not_resolve_a_steep_curve():
    coarse = [0.0, 0.05, 0.1, 0.15, 0.2]
    res = resolution(coarse, [0.9, 0.3, 0.02, 0.0, 0.0])
    assert res.start is not None and res.stop is not None
    assert res.points < MIN_POINTS and not res.resolved


def test_a_curve_that_never_falls_is_unresolved():
    res = resolution([0.0, 0.1, 0.2], [0.9, 0.89, 0.88])
    assert res.start is None and res.stop is None and not res.resolved


def test_suggested_grid_resolves_every_curve_it_was_made_from():
    fine = [k * 0.001 for k in range(301)]
    curves = [linear_curve(fine, 0.9, z) for z in (0.05, 0.12, 0.3)]
    grid = suggest_grid(resolution(fine, c) for c in curves)
    assert grid[0] == 0.0 and all(b > a for a, b in zip(grid, grid[1:]))
    for zero_at in (0.05, 0.12, 0.3):  # the same curves measured on the suggested grid
        res = resolution(grid, linear_curve(grid, 0.9, zero_at))
        assert res.resolved, (zero_at, res)


def test_bad_curves_are_refused():
    with pytest.raises(ValueError):
        resolution([0.1, 0.2], [0.5, 0.4])  # must start at eps 0
    with pytest.raises(ValueError):
        suggest_grid([Resolution(0.9, None, None, 0)])
