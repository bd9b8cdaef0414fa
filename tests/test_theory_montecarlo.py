"""Monte-Carlo accuracies against the bound and against exact values."""
import math
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from theory import bound, classifiers, montecarlo
from theory.distribution import ModelParams


def _random_classifier(kind: str, dim: int, rng: np.random.Generator):
    if kind == "linear":                  # a linear rule on a random subset of coordinates
        w = rng.standard_normal(dim) * (rng.random(dim) < 0.5)
        return classifiers.LinearRule("linear", w, float(rng.standard_normal()))
    if kind == "x0":                      # a threshold rule on x0
        t = float(rng.uniform(-1.5, 1.5))
        return lambda x: np.where(x[:, 0] >= t, 1, -1)
    torch.manual_seed(int(rng.integers(2**31)))  # a small random MLP, passed as a module
    return torch.nn.Sequential(torch.nn.Linear(dim, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


@settings(max_examples=20, deadline=None)
@given(p=st.floats(0.5, 0.99), d=st.integers(1, 256), seed=st.integers(0, 2**31),
       kind=st.sampled_from(["linear", "x0", "mlp"]))
def test_monte_carlo_estimates_satisfy_the_bound(p, d, seed, kind):
    # Some of these rules (x0 thresholds in (-1, 1]) attain the bound exactly, so a 95%
    # interval would exclude it 2.5% of the time; at level 1 - 1e-6 the chance that any of
    # the 20 examples raises a false alarm is below 1e-4.
    params = ModelParams(p, d)
    f = _random_classifier(kind, params.dim, np.random.default_rng(seed))
    acc = montecarlo.estimate(f, params, 3000, seed=seed, level=1 - 1e-6, chunk_size=1024)
    assert not acc.violates(bound.rhs(p))
    assert acc.lhs.ci_low <= acc.lhs.value <= acc.lhs.ci_high


@pytest.mark.parametrize("params", [ModelParams(0.7, 100), ModelParams(0.6, 7, mu=1.0, eta=0.3, q=0.2)])
def test_frontier_classifiers_agree_with_exact_values(params):
    # |MC - exact| <= 5 binomial standard errors sqrt(v (1 - v) / n) at the exact value v;
    # the variance is floored at 1/n so that counts near zero get a Poisson-scale tolerance.
    rules = classifiers.exact_rules(params)
    n = 60_000
    mc = montecarlo.estimate_many({r.name: r for r in rules}, params, n, seed=1)
    for r in rules:
        ex = r.exact(params)
        for key in ("clean", "spatial", "adversarial"):
            v = getattr(ex, key)
            se = math.sqrt(max(v * (1 - v), 1 / n) / n)
            assert abs(getattr(mc[r.name], key).value - v) <= 5 * se, (r.name, key)


def test_general_parameters_give_a_monte_carlo_refutation():
    # Where the paper's proof does not apply its bound can be false; the max-lhs frontier
    # rule shows it by sampling alone (exact lhs 1.2757 vs rhs 1.1667).
    params = ModelParams(0.7, 10, mu=1.0, eta=0.3, q=0.2)
    rule = classifiers.frontier_rules(params)[2]
    assert montecarlo.estimate(rule, params, 20_000, seed=0).violates(bound.rhs(0.7))


def test_torch_module_and_numpy_rule_agree():
    # A torch module goes through the generic path (each view materialised), the same
    # weights as a LinearRule through the projected one (r and A applied to x . w).
    params = ModelParams(0.7, 5)
    torch.manual_seed(0)
    net = torch.nn.Linear(params.dim, 1)
    rule = classifiers.LinearRule("net", net.weight.detach().double().numpy().reshape(-1),
                                  float(net.bias.detach()))
    a = montecarlo.estimate(net, params, 5000, seed=2)
    b = montecarlo.estimate(rule, params, 5000, seed=2)
    assert a == b


def test_wrong_output_length_is_rejected():
    with pytest.raises(ValueError, match="classifier"):
        montecarlo.estimate(lambda x: np.ones(3), ModelParams(0.7, 2), 100)
    with pytest.raises(TypeError, match="classifier"):
        montecarlo.estimate(42, ModelParams(0.7, 2), 100)


def _peak_bytes(n: int) -> int:
    tracemalloc.start()
    montecarlo.estimate(classifiers.f_star(50), ModelParams(0.7, 50), n, chunk_size=2048)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_memory_stays_flat_as_n_grows():
    # Streaming: peak memory is set by the chunk, not by n (8x more samples, < 1.5x memory).
    small, large = _peak_bytes(8192), _peak_bytes(65536)
    assert large < 1.5 * small


def test_trained_logistic_regression_agrees_with_its_exact_value():
    params = ModelParams(0.7, 20)
    model = classifiers.train(classifiers.TrainSpec("logreg", "r_aug", steps=60), params)
    ex, n = model.exact(params), 40_000
    mc = montecarlo.estimate(model, params, n, seed=5)
    for key in ("clean", "spatial", "adversarial"):
        v = getattr(ex, key)
        assert abs(getattr(mc, key).value - v) <= 5 * math.sqrt(max(v * (1 - v), 1 / n) / n)  # as above
