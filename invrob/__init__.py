"""invrob: rotation invariance versus adversarial robustness, for the
toolkit's own runs and for any PyTorch classifier.

    import invrob
    ev = invrob.evaluate(model, images, labels, attack="both")
    ev.to_dict()   # the JSON record `invrob profile --model ...` writes

`invrob` on the command line: see `invrob.cli`.
"""
from empirics.evaluate import ATTACKS, SCHEMA, Evaluation, evaluate
from empirics.external import InputNormalized, load_external
from empirics.spatial import SpatialProfile, spatial_profile

__all__ = ["ATTACKS", "SCHEMA", "Evaluation", "evaluate", "InputNormalized", "load_external",
           "SpatialProfile", "spatial_profile"]
