"""Pick the compute device once: CUDA when present, else CPU."""
from __future__ import annotations

import torch


def pick_device(name: str | None = None) -> torch.device:
    """`name` overrides detection ("cpu", "cuda", "cuda:1")."""
    if name is not None:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
