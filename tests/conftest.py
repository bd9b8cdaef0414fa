"""Shared test settings: deterministic torch, a CI hypothesis profile."""
import os

import pytest
import torch
from hypothesis import settings

# The tests use tiny models, for which a second intra-op thread only adds
# contention; OMP_NUM_THREADS overrides.
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 0)) or 1)

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=False)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` are skipped on a machine without a CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def tmp_run_dir(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    return d


@pytest.fixture
def three_seeds():
    """`three_seeds(name)`: the quick declaration of `name` trained at seeds
    0, 1, 2 (quick itself trains one), for tests of how seeds pool."""
    import dataclasses

    from pipeline.experiments import figure, seeded

    def declare(name: str):
        fig = figure(name, "quick")
        return dataclasses.replace(fig, runs=seeded(fig.runs, (0, 1, 2)), seeds=(0, 1, 2))
    return declare
