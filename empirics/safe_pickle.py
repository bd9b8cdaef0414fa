"""A restricted unpickler for CIFAR-10 batch files.

A CIFAR-10 batch is a pickled dict of builtins (str/bytes keys, lists of
ints and of names) and one uint8 numpy array. `load_restricted` lets a
pickle name only the globals that format needs (numpy's array
reconstructors, `numpy.ndarray`, `numpy.dtype`, and the latin-1 byte-string
decoder Python 2 pickles use); any other global (`os.system`,
`builtins.eval`, ...) is refused with `RefusedPickle` before anything runs.
"""
from __future__ import annotations

import codecs
import io
import pickle

import numpy as np


class RefusedPickle(pickle.UnpicklingError):
    """The pickle names a global outside the allowed set."""


def _latin1_encode(text, encoding="latin1", errors="strict"):
    """`_codecs.encode` as Python 2 byte strings use it: only to latin-1."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1" \
            or errors != "strict":
        raise RefusedPickle(f"_codecs.encode is allowed only as str -> latin-1 bytes, "
                            f"got encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _numpy_globals() -> dict[tuple[str, str], object]:
    from numpy._core import multiarray, numeric

    found = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for prefix in ("numpy.core", "numpy._core"):
        found[(f"{prefix}.multiarray", "_reconstruct")] = multiarray._reconstruct
        found[(f"{prefix}.multiarray", "scalar")] = multiarray.scalar
        found[(f"{prefix}.numeric", "_frombuffer")] = numeric._frombuffer
    return found


ALLOWED = {**_numpy_globals(), ("_codecs", "encode"): _latin1_encode}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in `ALLOWED`; refuses every other one."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedPickle(f"refused to load global {module}.{name}: only numpy arrays "
                                "and builtins are allowed") from None


def load_restricted(fh, encoding: str = "latin1"):
    """Unpickle `fh` (as the standard loader would, with `encoding`) allowing only the
    globals in ALLOWED."""
    return RestrictedUnpickler(fh, encoding=encoding).load()


def loads_restricted(data: bytes, encoding: str = "latin1"):
    return load_restricted(io.BytesIO(data), encoding)
