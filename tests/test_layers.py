"""The layer rule: core <- theory, empirics <- pipeline <- paper_figures,
verify <- invrob. Read from the import statements of every module."""
import ast
from pathlib import Path

import numpy as np
import pytest

from core.auc import auc, trapezoid_weights

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "theory", "empirics", "pipeline", "verify", "paper_figures", "invrob")
ALLOWED = {  # package -> the project packages it may import
    "core": {"core"},
    "theory": {"core", "theory"},
    "empirics": {"core", "empirics"},
    "pipeline": {"core", "theory", "empirics", "pipeline"},
    "paper_figures": {"core", "theory", "empirics", "pipeline", "paper_figures"},
    "verify": {"core", "theory", "pipeline", "verify"},  # judges records; never measures
    "invrob": set(PACKAGES),
}


def project_imports(path: Path) -> set[str]:
    """Top-level project packages imported anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {n.split(".")[0] for n in names if n.split(".")[0] in PACKAGES}
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_layers_point_one_way(package):
    bad = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = project_imports(path) - ALLOWED[package]
        if wrong:
            bad[str(path.relative_to(ROOT))] = sorted(wrong)
    assert not bad, f"imports against the layer rule: {bad}"


def test_verify_imports_nothing_from_empirics():
    # the issue's own test: `grep -rE '^(from|import) empirics' verify/` finds nothing
    import re
    pattern = re.compile(r"^(from|import) empirics", re.M)
    hits = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "verify").rglob("*.py"))
            if pattern.search(p.read_text())]
    assert not hits, f"verify measures in {hits}; measurements belong to the pipeline"
    assert pattern.search("import torch\nfrom empirics.attacks import pgd\n")  # the pattern bites


def test_the_rule_reader_sees_imports_inside_functions(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from verify import run\n    import pipeline.make\n")
    assert project_imports(src) == {"verify", "pipeline"}


def test_auc_is_the_trapezoid_rule_normalised_by_the_range():
    grid = [0.0, 0.1, 0.3, 0.6]
    values = np.array([1.0, 0.8, 0.3, 0.0])
    area = np.trapezoid(values, grid) if hasattr(np, "trapezoid") else np.trapz(values, grid)
    assert float(auc(grid, values)) == pytest.approx(area / 0.6, abs=1e-15)
    assert float(auc(grid, np.full(4, 0.7))) == pytest.approx(0.7, abs=1e-15)  # constants
    assert trapezoid_weights([0.5]).tolist() == [1.0]
    rows = np.stack([values, 1 - values], axis=1)  # (K, 2): one column per test point
    assert auc(grid, rows) == pytest.approx([area / 0.6, 1 - area / 0.6], abs=1e-15)


def test_one_auc_interval_is_the_normal_interval_of_the_per_point_mean():
    from scipy import stats as sstats
    from core.auc import interval, robustness_points
    rng = np.random.default_rng(3)
    eps = (0.0, 0.05, 0.1, 0.2)
    broken = rng.integers(0, len(eps) + 1, 400)
    points = robustness_points(eps, broken)
    mean, lo, hi = interval(points)
    sem = points.std(ddof=1) / np.sqrt(points.size)
    want = sstats.norm.interval(0.95, loc=points.mean(), scale=sem)  # an independent route
    assert mean == pytest.approx(points.mean()) and (lo, hi) == pytest.approx(want, abs=1e-12)
    # the per-point AUCs: point i is correct at eps index j iff broken[i] > j
    by_hand = [np.trapezoid([float(b > j) for j in range(len(eps))], eps) / 0.2
               if hasattr(np, "trapezoid") else None for b in broken[:5]]
    if by_hand[0] is not None:
        assert points[:5] == pytest.approx(by_hand, abs=1e-12)
