"""empirics.autoattack: the standard AutoAttack as Croce and Hein define it.

The reference values are the authors' own code: `AutoAttack.__init__` builds
APGD-CE / APGD-T / FAB with n_iter=100 and Square with n_queries=5000, and
`set_version('standard')` (L-inf) sets one restart each and 9 target
classes for APGD-T and FAB-T. Two independent routes must run exactly that
and agree point for point: the authors' driver (pyautoattack) and
torchattacks' four attacks configured to the same settings.
"""
import json
import sys

import pytest
import torch
from torch import nn

from core.errors import UsageError
from empirics import autoattack as aa_mod
from empirics.autoattack import (AutoAttackProfileResult, Component, PgdComparison,
                                 autoattack_profile, components, standard_components)
from empirics.data import load
from empirics.evaluate import evaluate

pytest.importorskip("pyautoattack")
pytest.importorskip("torchattacks")

# from the authors' code (module docstring): iterations, restarts, targets
REFERENCE_TABLE = {"apgd-ce": (100, 1, None), "apgd-t": (100, 1, 9), "fab-t": (100, 1, 9),
                   "square": (5000, 1, None)}


@pytest.mark.parametrize("library", aa_mod.LIBRARIES)
def test_each_route_runs_the_authors_standard_settings(library):
    got = {c.name: (c.iterations, c.restarts, c.targets) for c in components(10, library)}
    assert got == REFERENCE_TABLE
    assert tuple(got) == aa_mod.COMPONENTS  # the authors' order
    assert components(10, library) == standard_components(10)


def test_fewer_classes_lower_only_the_target_count():
    four = {c.name: c.targets for c in components(4)}
    assert four == {"apgd-ce": None, "apgd-t": 3, "fab-t": 3, "square": None}
    assert components(4, "torchattacks") == components(4)


def test_library_is_checked_and_a_missing_one_says_how_to_install(monkeypatch):
    with pytest.raises(ValueError, match="`library` must be one of pyautoattack, torchattacks"):
        components(10, "foolbox")
    monkeypatch.setitem(sys.modules, "pyautoattack", None)  # import -> ImportError
    with pytest.raises(UsageError, match=r"needs pyautoattack: pip install 'invrob\[autoattack\]'"):
        aa_mod.require()
    assert aa_mod.library_version() is None
    assert aa_mod.library_version("torchattacks").startswith("torchattacks ")


def test_comparison_counts_both_directions():
    # 5 points, eps grid of 2; broken_at = index of the first eps that breaks
    # the point (2: never). Hand-counted: at eps index 0 PGD leaves points
    # {1, 2, 3} correct and AutoAttack {1, 3, 4}; at index 1, {1, 3} and {1, 4}.
    aa = AutoAttackProfileResult((0.1, 0.2), (0, 2, 0, 1, 2), seed=0)
    c = aa.compare((0, 2, 1, 2, 0))
    assert isinstance(c, PgdComparison)
    assert c.pgd_correct == (3, 2) and c.autoattack_correct == (3, 2)
    assert c.worst_case_correct == (2, 1)
    assert c.missed_by_pgd == (1, 1)  # point 2 at index 0, point 3 at index 1
    assert c.missed_by_autoattack == (1, 1)  # point 4 at both
    assert c.gap() == pytest.approx((0.2, 0.2))
    with pytest.raises(ValueError, match="`pgd_broken_at` must have one entry per point"):
        aa.compare((0, 1))


def test_result_records_what_ran_and_round_trips():
    r = AutoAttackProfileResult((0.0, 0.1), (2, 1, 0), 3, library="pyautoattack",
                                library_version="pyautoattack 0.2.0",
                                components=standard_components(10))
    d = json.loads(json.dumps(r.to_dict()))
    assert d["components"][1] == {"name": "apgd-t", "iterations": 100, "restarts": 1,
                                  "targets": 9}
    assert d["library"] == "pyautoattack" and d["library_version"] == "pyautoattack 0.2.0"
    assert AutoAttackProfileResult.from_dict(d) == r
    assert Component.from_dict(d["components"][3]) == Component("square", 5000, 1)


# ------------------------------------------------------------ the two routes agree
CLASSES = 4  # digits 0-3: 3 targets per targeted attack keeps the test short


def _trained(model: nn.Module, data, seed: int) -> nn.Module:
    """One epoch of Adam on mnist5k digits 0-3 (about a second on one core)."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    perm = torch.randperm(len(data.labels))
    for i in range(0, len(perm), 64):
        b = perm[i:i + 64]
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.images[b]), data.labels[b]).backward()
        opt.step()
    return model.eval()


def _digits(split: str, n: int | None = None):
    d = load("mnist5k", split)
    keep = (d.labels < CLASSES).nonzero().flatten()[:n]
    return d.images[keep], d.labels[keep]


@pytest.fixture(scope="module")
def models():
    x, y = _digits("train")
    data = type("D", (), {"images": x, "labels": y})
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, CLASSES))
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 5, stride=2), nn.ReLU(), nn.Conv2d(4, 8, 5, stride=2),
                        nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, CLASSES))
    return {"mlp": _trained(mlp, data, 0), "cnn": _trained(cnn, data, 1)}


@pytest.mark.slow
@pytest.mark.parametrize("name,eps", [("mlp", 0.1), ("cnn", 0.08)])
def test_the_authors_driver_and_torchattacks_agree_point_for_point(models, name, eps):
    """Per point, robust or not under the reference (the authors' driver) and
    under torchattacks set to the same settings: the same on every point.
    eps is where both outcomes occur on these 24 digits (checked below), so
    agreement is not the trivial all-broken or all-robust one."""
    x, y = _digits("test", 24)
    model = models[name]
    ref = autoattack_profile(model, x, y, (eps,), CLASSES, seed=0)
    ta = autoattack_profile(model, x, y, (eps,), CLASSES, seed=0, library="torchattacks")
    assert ref.broken_at == ta.broken_at
    robust = ref.correct()[0]
    assert 0 < sum(robust) < len(robust)
    assert ref.library == "pyautoattack" and ta.library == "torchattacks"
    assert ref.components == ta.components == standard_components(CLASSES)


def test_the_evaluation_json_names_library_and_settings():
    """The `invrob profile` JSON (empirics.evaluate) records what ran; eps 0
    only, so nothing is attacked and the test is quick."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, CLASSES)).eval()
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    ev = evaluate(model, x, torch.zeros(6, dtype=torch.long), (0.0,), attack="autoattack",
                  thetas=None)
    info = json.loads(json.dumps(ev.to_dict()))["attacks"]["autoattack"]
    assert info["library"].startswith("pyautoattack ")
    assert [(s["name"], s["iterations"], s["restarts"], s["targets"]) for s in info["settings"]] \
        == [("apgd-ce", 100, 1, None), ("apgd-t", 100, 1, 3), ("fab-t", 100, 1, 3),
            ("square", 5000, 1, None)]
