"""Canonical JSON hash of a config: the first 16 hex digits of sha256 over
the JSON with keys sorted, no spaces, integral floats written as integers
(so 30 and 30.0 hash alike) and tuples as lists: the keys of the run store
(`pipeline.runspec.RunSpec.key`) and of Theorem 1 results (`CheckConfig.key`)."""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any

KEY_HEX_DIGITS = 16


def canonical(obj: Any) -> Any:
    """JSON-ready copy of `obj` with integral floats as ints, tuples as lists."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"cannot hash a non-finite number {obj!r}")
        return int(obj) if obj.is_integer() else obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    raise TypeError(f"cannot hash a value of type {type(obj).__name__}")


def config_hash(obj: Any) -> str:
    """First 16 hex digits of sha256 over the canonical JSON of `obj`."""
    text = json.dumps(canonical(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_HEX_DIGITS]
