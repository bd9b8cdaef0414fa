"""The Sec. 1.1 corollary run on tiny inputs: an exactly rot90-invariant
model (P4CNN with the invariant head, fresh weights: the statement holds for
any weights) gives the same PGD outcome and the rotated perturbation on
rot90 images, in float64, once the images hold no exactly tied pixels and
the attack never reaches the [0, 1] clamp (`interior`)."""
import numpy as np
import pytest
import torch

from empirics.models.registry import build_model
from verify import checks
from empirics.rot90 import RotationAttackOutcome, interior, rot90_attack_outcome


def _images(n=4, seed=0):
    # MNIST-like: a bright blob on a black background, in [0, 1].
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 8:20, 10:18] = torch.rand(n, 1, 12, 8, generator=g)
    return x


@pytest.mark.parametrize("seed", [0])
def test_invariant_model_commutes_with_rot90_on_interior_images(seed):
    torch.manual_seed(seed)
    model = build_model("p4cnn", "mnist5k", invariant_head=True)
    o = rot90_attack_outcome(model, interior(_images(seed=seed), seed=seed), (0.05, 0.2), steps=3)
    # float64 invariance: logits agree to ~1e-15 (sums in a different order);
    # sign steps then agree exactly, so the perturbation gap is exactly 0.
    assert o.logit_gap < 1e-12
    assert o.max_gap == 0.0
    np.testing.assert_array_equal(o.fooled, o.fooled_rot)
    r = checks.corollary_check("p4", o.fooled, o.fooled_rot, o.max_gap, True, n_resamples=100)
    assert r.verdict == "HOLDS" and r.details["perturbations_match"]


def test_standard_cnn_does_not_commute():
    torch.manual_seed(0)
    model = build_model("stdcnn", "mnist5k")
    o = rot90_attack_outcome(model, _images(), 0.1, steps=3)
    # A fresh StdCNN is not rot90-invariant: the logits differ at the 1e-3
    # level or more and the attack takes different steps on x and rot90(x).
    assert o.logit_gap > 1e-6 and o.max_gap > 0.01


def test_model_is_not_modified_and_bad_eps_rejected():
    model = build_model("stdcnn", "mnist5k")
    before = next(model.parameters()).dtype
    rot90_attack_outcome(model, _images(n=2), 0.1, steps=1)
    assert next(model.parameters()).dtype == before == torch.float32
    with pytest.raises(ValueError, match="`eps`"):
        rot90_attack_outcome(model, _images(n=2), 0.0)
    with pytest.raises(ValueError, match="`k`"):
        rot90_attack_outcome(model, _images(n=2), 0.1, k=4)


def test_interior_keeps_pixels_inside():
    x = interior(_images(n=3))
    assert x.dtype == torch.float64 and 0.25 - 1 / 255 <= x.min() and x.max() <= 0.75 + 1 / 255
    assert x.unique().numel() == x.numel()  # no two pixels exactly equal
    with pytest.raises(ValueError, match="`low`"):
        interior(_images(n=1), low=0.0)
