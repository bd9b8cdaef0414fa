"""Grids of thetas and epsilons: one validator, one parser.

- `check_grid(values, name, low, high)`: a non-empty, strictly increasing
  tuple of finite floats in [low, high] (ValueError naming `name` otherwise).
- `parse_grid(text, flag, low, high)`: 'START:STOP:STEP' (stop included),
  a comma list, or one number, from a command line, checked the same way;
  each number may be a fraction ('0:8/255:2/255', as eps is often written).
"""
from __future__ import annotations

import math

from core import validate
from core.errors import UsageError


def check_grid(values, name: str, low: float, high: float) -> tuple[float, ...]:
    """`values` as a tuple of floats: non-empty, finite, in [low, high], strictly increasing."""
    try:
        grid = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a sequence of numbers, got {values!r}") from None
    if not grid:
        raise ValueError(f"`{name}` must not be empty.")
    if any(not (math.isfinite(v) and low <= v <= high) for v in grid):
        raise ValueError(f"`{name}` must lie in [{low:g}, {high:g}], got {list(grid)}.")
    if any(b <= a for a, b in zip(grid, grid[1:])):
        raise ValueError(f"`{name}` must be strictly increasing, got {list(grid)}.")
    return grid


def parse_grid(text: str, flag: str, low: float, high: float) -> tuple[float, ...]:
    """'0:180:15' -> (0, 15, ..., 180); '0,0.1,0.3' -> (0, 0.1, 0.3); values in [low, high]."""
    try:
        if ":" in text:
            start, stop, step = (validate.number(v) for v in text.split(":"))
            if not all(map(math.isfinite, (start, stop, step))):
                raise UsageError(f"{flag}: START:STOP:STEP must be finite numbers, got {text!r}")
            if not step > 0 or stop < start:
                raise UsageError(f"{flag}: START:STOP:STEP needs STEP > 0 and STOP >= START, got {text!r}")
            validate.grid_size((stop - start) / step + 1, flag)
            count = math.floor((stop - start) / step + 1e-9) + 1
            values = tuple(round(start + k * step, 12) for k in range(count))
        else:
            validate.grid_size(text.count(",") + 1, flag)
            values = tuple(validate.number(v) for v in text.split(","))
    except ValueError as err:
        if isinstance(err, UsageError):
            raise
        raise UsageError(f"{flag}: expected START:STOP:STEP or comma-separated numbers, "
                         f"got {text!r}") from None
    if any(not (low <= v <= high) for v in values):
        raise UsageError(f"{flag}: values must lie in [{low:g}, {high:g}], got {text!r}")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise UsageError(f"{flag}: values must be strictly increasing, got {text!r}")
    return values
