"""`empirics.evaluate.evaluate` (= `invrob.evaluate`) and the pieces of
`empirics.external`: loading, normalising, checking external models."""
import json
import pickle

import pytest
import torch
from torch import nn

import invrob
from core.errors import UsageError
from empirics.autoattack import autoattack
from empirics.evaluate import Evaluation, evaluate
from empirics.external import (InputNormalized, check_classifier, load_external, load_weights,
                               model_device, with_input_normalization)
from empirics.models.normalize import Normalize
from empirics.profiles import robustness_profile

torchattacks = pytest.importorskip("torchattacks")


def small_cnn(seed=0, channels=1, classes=4):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 6 * 6, classes)).eval()


def data(n=30, seed=1, channels=1, model=None):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, 12, 12, generator=gen)
    if model is None:
        return x, torch.randint(0, 4, (n,), generator=gen)
    with torch.no_grad():  # labels = clean predictions, except a few flipped
        y = model(x).argmax(1)
    y[:3] = (y[:3] + 1) % 4
    return x, y


def test_invrob_exposes_evaluate_and_the_result_type():
    assert invrob.evaluate is evaluate and invrob.Evaluation is Evaluation


def test_pgd_numbers_are_todays_robustness_profile():
    model = small_cnn()
    x, y = data(model=model)
    eps = (0.0, 0.02, 0.05)
    ev = evaluate(model, x, y, eps, attack="pgd", steps=5, thetas=None)
    rob = robustness_profile(model, x, y, eps, steps=5, device="cpu")
    assert ev.pgd_broken_at == rob.broken_at
    assert ev.robust_accuracy("pgd") == rob.accuracy
    assert ev.clean_accuracy.successes == sum(int(p == t) for p, t in zip(model(x).argmax(1), y))
    assert ev.attacks == ("pgd",) and ev.pgd_gap() is None


def test_autoattack_examples_stay_in_the_ball_and_never_beat_clean():
    model = small_cnn(2)
    x, y = data(16, model=model)
    adv = autoattack(model, x, y, 0.05, n_classes=4, seed=0)
    assert adv.shape == x.shape
    assert float((adv - x).abs().max()) <= 0.05 + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    with torch.no_grad():
        clean = model(x).argmax(1) == y
        robust = model(adv).argmax(1) == y
    assert bool((robust <= clean).all())


def test_both_attacks_worst_case_is_below_each_and_the_gap_counts_disagreements():
    model = small_cnn(3)
    x, y = data(24, model=model)
    ev = evaluate(model, x, y, (0.0, 0.03, 0.08), attack="both", steps=3, thetas=None)
    pgd, aa, worst = ev.correct("pgd"), ev.correct("autoattack"), ev.correct("worst_case")
    for j in range(3):
        for i in range(ev.n):
            assert worst[j][i] == (pgd[j][i] and aa[j][i])
            assert aa[j][i] <= ev.clean_correct[i] and pgd[j][i] <= ev.clean_correct[i]
        # eps grows: a point robust at the larger ball is robust at the smaller one
        if j:
            assert all(a <= b for a, b in zip(aa[j], aa[j - 1]))
    gap = ev.pgd_gap()
    for j in range(3):
        assert gap[j].successes == sum(p and not w for p, w in zip(pgd[j], worst[j]))
        assert gap[j].value == pytest.approx(ev.robust_accuracy("pgd")[j].value
                                             - ev.robust_accuracy("worst_case")[j].value)
    assert gap[0].successes == 0  # eps 0: nothing to attack
    d = json.loads(json.dumps(ev.to_dict()))
    assert set(d["robust_acc"]) == {"pgd", "autoattack", "worst_case"}
    assert [g["successes"] for g in d["pgd_overestimate"]] == [g.successes for g in gap]
    assert Evaluation.from_dict(d) == ev


def test_json_record_follows_the_conventions():
    model = small_cnn()
    x, y = data(model=model)
    ev = evaluate(model, x, y, (0.0, 0.1), steps=2, thetas=(0.0, 60.0), k=3, n_grid=5,
                  dataset="toy", model_info={"kind": "module", "spec": "small_cnn"},
                  command="test")
    d = json.loads(json.dumps(ev.to_dict()))
    assert d["threat_model"] == "Linf" and d["schema"] == invrob.SCHEMA
    assert d["n_examples"] == len(x) and d["eps"] == [0.0, 0.1]
    assert all(0 <= e <= 1 for e in d["eps"])
    acc = d["clean_acc"]
    assert acc["successes"] == d["per_point"]["clean_correct"].count("1")
    assert acc["ci"][0] <= acc["estimate"] <= acc["ci"][1]
    assert [r["eps"] for r in d["robust_acc"]["pgd"]] == d["eps"]
    assert d["robust_acc"]["pgd"][0]["successes"] == acc["successes"]  # eps 0 is clean
    assert d["model"]["spec"] == "small_cnn" and d["model"]["n_parameters"] > 0
    assert d["model"]["input_normalization"] is None
    assert d["command"] == "test" and "git_commit" in d["provenance"]
    assert d["rotation"]["spatial"]["k"] == 3 and d["rotation"]["spatial"]["n_grid"] == 5
    assert d["rotation"]["invariance"]["thetas"] == [0.0, 60.0]
    assert Evaluation.from_dict(d) == ev


def test_normalising_wrapper_equals_manual_normalisation():
    torch.manual_seed(0)
    inner = small_cnn(4, channels=3)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    wrapped = InputNormalized(inner, mean, std)
    x = torch.rand(5, 3, 12, 12)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(wrapped(x), inner((x - m) / s), rtol=0, atol=1e-6)
    # one value is repeated per channel; nothing given: the model itself
    one = with_input_normalization(inner, "0.5", "0.25", 3)
    assert one.normalize.mean.flatten().tolist() == [0.5] * 3
    assert with_input_normalization(inner, None, None, 3) is inner


def test_evaluate_with_input_stats_matches_a_model_that_normalises_itself():
    inner = small_cnn(5)
    x, _ = data(20)
    builtin = nn.Sequential(Normalize((0.3,), (0.2,)), inner).eval()
    with torch.no_grad():
        y = builtin(x).argmax(1)
    kw = dict(epsilons=(0.0, 0.02, 0.05), steps=3, thetas=(0.0, 90.0), k=2, n_grid=3)
    a = evaluate(inner, x, y, input_mean=0.3, input_std=0.2, **kw)
    b = evaluate(builtin, x, y, **kw)
    assert a.pgd_broken_at == b.pgd_broken_at
    assert a.spatial.worst_of_k == b.spatial.worst_of_k and a.spatial.grid == b.spatial.grid
    assert a.invariance.invariant == b.invariance.invariant
    assert a.model["input_normalization"] == {"mean": pytest.approx([0.3]), "std": pytest.approx([0.2])}


def test_bad_inputs_raise_value_errors():
    model = small_cnn()
    x, y = data()
    with pytest.raises(ValueError, match="pixel space"):
        evaluate(model, x * 3, y, thetas=None)
    with pytest.raises(ValueError, match="attack"):
        evaluate(model, x, y, attack="fgsm", thetas=None)
    with pytest.raises(ValueError, match="labels"):
        evaluate(model, x, y + 10, thetas=None)
    with pytest.raises(UsageError, match=r"\(N, 10\)"):
        evaluate(model, x, y, num_classes=10, thetas=None)
    with pytest.raises(UsageError, match="rejects"):
        evaluate(model, torch.rand(4, 3, 12, 12), y[:4], thetas=None)


def test_check_classifier_wants_logits_of_the_right_shape():
    model = small_cnn()
    x = torch.rand(3, 1, 12, 12)
    check_classifier(model, x, 4)
    with pytest.raises(UsageError, match=r"\(N, 5\)"):
        check_classifier(model, x, 5)
    with pytest.raises(UsageError, match="tensor"):
        check_classifier(nn.Sequential(nn.Flatten(), _Tuple()), x, 4)
    with pytest.raises(UsageError, match=r"rejects .* \(N, 3, 12, 12\)"):
        check_classifier(model, torch.rand(3, 3, 12, 12), 4)


class _Tuple(nn.Module):
    def forward(self, x):
        return (x[:, :4],)


def test_weights_load_with_weights_only_and_must_fit(tmp_path, monkeypatch):
    mod = tmp_path / "toy_models_ev.py"
    mod.write_text("import torch\nfrom torch import nn\n\n"
                   "def net(classes=4):\n"
                   "    return nn.Sequential(nn.Flatten(), nn.Linear(144, classes))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.manual_seed(9)
    ref = nn.Sequential(nn.Flatten(), nn.Linear(144, 4))
    torch.save(ref.state_dict(), tmp_path / "w.pt")
    model, source = load_external("toy_models_ev:net", tmp_path / "w.pt")
    x = torch.rand(2, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    assert source.kind == "callable" and len(source.weights_sha256) == 64
    assert model_device(model) == torch.device("cpu")
    with pytest.raises(UsageError, match="does not fit"):
        load_external("toy_models_ev:net", tmp_path / "w.pt", {"classes": 3})
    # weights_only=True: a pickled arbitrary object is refused, not executed
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(_Tuple()))
    with pytest.raises(UsageError, match="--weights"):
        load_weights(model, tmp_path / "evil.pt")
