"""The trained classifiers: numpy training against the same training in torch,
and the projected Monte-Carlo path against the generic one."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from theory import classifiers, distribution, montecarlo
from theory.distribution import ModelParams


def _torch_reference(spec: classifiers.TrainSpec, params: ModelParams) -> list[np.ndarray]:
    """The same objective, data and batches, trained with torch's nn.Linear
    initialisation and torch.optim.Adam: the reference the numpy trainer follows."""
    rng = np.random.default_rng(spec.seed)
    x, y = distribution.sample(params, spec.n_train, rng)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        if spec.kind == "logreg":
            model = torch.nn.Linear(params.dim, 1)
        else:
            model = torch.nn.Sequential(torch.nn.Linear(params.dim, spec.hidden), torch.nn.ReLU(),
                                        torch.nn.Linear(spec.hidden, 1))
        opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
        for _ in range(spec.steps):
            xb, yb = classifiers._batch(spec, params, x, y, rng)
            logit = model(torch.from_numpy(xb)).reshape(-1)
            loss = F.softplus(-torch.from_numpy(yb.astype(np.float32)) * logit).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [t.detach().numpy().copy() for t in model.parameters()]


def _numpy_params(rule) -> list[np.ndarray]:
    if isinstance(rule, classifiers.LinearRule):
        return [rule.w[None, :], np.array([rule.b])]
    return [rule.w1, rule.b1, rule.w2[None, :], np.array([rule.b2])]


@pytest.mark.parametrize("kind, mode", [("logreg", "plain"), ("logreg", "r_aug"),
                                        ("mlp", "r_aug"), ("mlp", "adv")])
def test_numpy_training_follows_torch(kind, mode):
    params = ModelParams(0.7, 6, mu=1.0, eta=0.5)
    spec = classifiers.TrainSpec(kind, mode, n_train=1024, steps=40, batch_size=64, seed=3)
    ours = _numpy_params(classifiers.train(spec, params))
    ref = _torch_reference(spec, params)
    assert [a.shape for a in ours] == [r.shape for r in ref]
    init = [t.copy() for t in classifiers._init(spec, params.dim)]
    for a, r, start in zip(ours, ref, init):
        moved = np.abs(r - start).max()
        assert moved > 1e-3                                   # training moved the weights
        # float32 rounding only: far below how far 40 Adam steps moved them
        assert np.abs(a - r).max() <= 1e-3 * moved + 1e-6


def test_initialisation_is_torchs():
    for seed in (0, 7):
        torch.manual_seed(seed)
        ref = torch.nn.Sequential(torch.nn.Linear(9, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
        ours = classifiers._init(classifiers.TrainSpec("mlp", "plain", hidden=4, seed=seed), 9)
        for a, r in zip(ours, ref.parameters()):
            np.testing.assert_allclose(a, r.detach().numpy(), rtol=0, atol=1e-7)


def test_mlp_rule_computes_the_network():
    rng = np.random.default_rng(0)
    w1, b1 = rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    w2, b2 = rng.standard_normal(5).astype(np.float32), 0.3
    rule = classifiers.MLPRule("m", w1, b1, w2, b2)
    x = rng.standard_normal((1000, 7)).astype(np.float32)
    score = np.maximum(x.astype(np.float64) @ w1.T + b1, 0) @ w2 + b2
    labels = rule(x)
    far = np.abs(score) > 1e-4                                # away from float32 ties
    assert np.array_equal(labels[far], np.where(score[far] >= 0, 1, -1))
    assert set(np.unique(labels)) == {-1, 1}


@pytest.mark.parametrize("params", [ModelParams(0.7, 12), ModelParams(0.6, 5, mu=1.0, eta=0.3, q=0.2)])
def test_projected_and_generic_monte_carlo_agree(params):
    # The projected path scores r(x) and x + A(x) through x . M; the generic path builds
    # the views and calls each rule. Same samples, so the counts agree except where float32
    # rounding of the two routes puts a score on the other side of a tie (rare).
    rules = (*classifiers.exact_rules(params),
             *classifiers.trained_classifiers(params, steps=30, n_train=2048))
    n = 30_000
    fast = montecarlo.estimate_many({r.name: r for r in rules}, params, n, seed=4, chunk_size=7000)
    slow = montecarlo.estimate_many({r.name: (lambda x, r=r: r(x)) for r in rules}, params, n,
                                    seed=4, chunk_size=7000)
    for r in rules:
        for key in ("clean", "spatial", "adversarial"):
            a, b = getattr(fast[r.name], key).successes, getattr(slow[r.name], key).successes
            assert abs(a - b) <= 2, (r.name, key, a, b)


def test_interval_rule_without_dim_takes_the_generic_path():
    params = ModelParams(0.7, 9)
    rule = classifiers.bayes_clean(params)
    bare = classifiers.IntervalRule("bare", rule.sets)
    assert bare.projection is None and rule.projection.shape == (params.dim, 2)
    a = montecarlo.estimate(rule, params, 5000, seed=3)
    b = montecarlo.estimate(bare, params, 5000, seed=3)
    assert a.clean.successes == b.clean.successes and a.adversarial.successes == b.adversarial.successes
    assert abs(a.spatial.successes - b.spatial.successes) <= 2         # float32 ties only
