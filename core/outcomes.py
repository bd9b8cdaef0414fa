"""Per-test-point outcomes: the one encoding every measurement stores and
every reader decodes (profiles, `empirics.evaluate`, AutoAttack, verify).

- An attack over an eps grid is stored as `broken_at`: per point, the index
  of the smallest eps at which it is wrong (0: wrong when clean;
  len(epsilons): never). The point is correct at eps index j iff
  broken_at > j (`correct_by_eps`).
- A row of yes/no outcomes (invariant, correct, fooled) is stored as a
  "0101" string (`bits`, `unbits`).
"""
from __future__ import annotations

import numpy as np


def bits(row) -> str:
    """A row of per-point outcomes as a "0101" string (compact JSON)."""
    return "".join("1" if b else "0" for b in row)


def unbits(row) -> tuple[bool, ...]:
    """A row stored as a "0101" string (compact JSON) or a list of bools/ints."""
    if isinstance(row, str):
        if set(row) - {"0", "1"}:
            raise ValueError("outcome strings must hold only '0' and '1'.")
        return tuple(c == "1" for c in row)
    return tuple(bool(b) for b in row)


def correct_by_eps(broken_at, n_eps: int) -> np.ndarray:
    """(n_eps, n) bool: point i is still correct at eps index j iff broken_at[i] > j."""
    broken = np.asarray(broken_at)
    if broken.ndim != 1 or np.any(broken < 0) or np.any(broken > n_eps):
        raise ValueError(f"`broken_at` must be (n,) ints in [0, {n_eps}].")
    return broken[None, :] > np.arange(n_eps)[:, None]  # (n_eps, n)


def grid_index(grid, value: float, name: str = "eps") -> int:
    """The index of `value` on `grid` (to 1e-9); ValueError naming `name` if absent."""
    hits = np.flatnonzero(np.isclose(np.asarray(grid, dtype=np.float64), value, rtol=0, atol=1e-9))
    if hits.size == 0:
        raise ValueError(f"`{name}` {value} is not on the grid {list(grid)}.")
    return int(hits[0])
