"""The synthetic distribution D(p, d) of the paper's Section 3, the random
pair swap r and the adversarial shift A, sampled in bounded-memory chunks.

Coordinates: x[:, 0] is X0, x[:, 2t-1] and x[:, 2t] (t = 1..d) are the pair
(X_{2t-1}, X_{2t}); an input has 2d + 1 coordinates.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterator

import numpy as np

DEFAULT_CHUNK = 1 << 15
# OpenBLAS runs a product of m x k and k x n on one thread when m k n < 2^18 and
# on all cores above; these products are small, and on a shared 2-core machine
# the threaded call measured 7 ms against 0.17 ms for the same product done in
# row blocks (512 x 201 by 201 x 16), so `matmul` keeps each block under it.
SINGLE_THREAD_MNK = 1 << 18
PAPER_MU, PAPER_ETA, PAPER_Q = 3.0, 1.0, 0.5


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number, got {value}.")
    return value


@dataclass(frozen=True)
class ModelParams:
    """D(p, d) with feature strength `mu`, attack scale `eta` (A moves each
    coordinate by eta * 2 * mu / sqrt(d)) and swap probability `q` of r.
    The paper's values are mu = 3, eta = 1, q = 1/2."""

    p: float
    d: int
    mu: float = PAPER_MU
    eta: float = PAPER_ETA
    q: float = PAPER_Q

    def __post_init__(self):
        p = _finite("p", self.p)
        if not 0.5 <= p < 1.0:
            raise ValueError(f"`p` must lie in [1/2, 1), got {p}.")
        if isinstance(self.d, bool) or int(self.d) != self.d or self.d < 1:
            raise ValueError(f"`d` must be a positive integer, got {self.d}.")
        if _finite("mu", self.mu) < 0:
            raise ValueError(f"`mu` must be >= 0, got {self.mu}.")
        if _finite("eta", self.eta) < 0:
            raise ValueError(f"`eta` must be >= 0, got {self.eta}.")
        if not 0.0 <= _finite("q", self.q) <= 1.0:
            raise ValueError(f"`q` must lie in [0, 1], got {self.q}.")
        object.__setattr__(self, "d", int(self.d))
        for name in ("p", "mu", "eta", "q"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def dim(self) -> int:
        """Number of input coordinates, 2d + 1."""
        return 2 * self.d + 1

    @property
    def is_paper(self) -> bool:
        """True at the paper's (mu, eta, q) = (3, 1, 1/2)."""
        return (self.mu, self.eta, self.q) == (PAPER_MU, PAPER_ETA, PAPER_Q)

    @property
    def shift(self) -> float:
        """Per-coordinate mean mu / sqrt(d) of X_{2t-1} given Y = +1."""
        return self.mu / math.sqrt(self.d)

    def to_dict(self) -> dict:
        return asdict(self)


def sample(params: ModelParams, n: int, rng: np.random.Generator,
           dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """n draws of (X, Y): x (n, 2d+1) and y (n,) in {-1, +1} (int8)."""
    y = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)            # (n,)
    keep = rng.random(n) < params.p
    x = rng.standard_normal((n, params.dim), dtype=dtype)               # (n, 2d+1)
    x[:, 0] = np.where(keep, y, -y)
    signs = np.empty(2 * params.d, dtype=dtype)
    signs[0::2], signs[1::2] = 1.0, -1.0                                 # (2d,)
    x[:, 1:] += (y[:, None] * params.shift).astype(dtype) * signs       # (n, 2d)
    return x, y


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b, computed in blocks of rows of `a` small enough for BLAS to run
    each on one thread (see SINGLE_THREAD_MNK)."""
    k, n = b.shape if b.ndim == 2 else (b.shape[0], 1)
    rows = max(1, SINGLE_THREAD_MNK // max(1, k * n) - 1)
    if a.shape[0] <= rows:
        return a @ b
    out = np.empty((a.shape[0], *b.shape[1:]), dtype=np.result_type(a, b))
    for start in range(0, a.shape[0], rows):
        np.matmul(a[start:start + rows], b, out=out[start:start + rows])
    return out


def pair_swap_index(dim: int) -> np.ndarray:
    """Column order of a swapped row: x[:, index] exchanges every pair
    (x_{2t-1}, x_{2t}) and keeps x0 (an involution)."""
    index = np.arange(dim)
    index[1::2], index[2::2] = np.arange(2, dim, 2), np.arange(1, dim, 2)
    return index


def swap_rows(n: int, params: ModelParams, rng: np.random.Generator) -> np.ndarray:
    """Which of n rows r swaps (each with probability q): one uniform draw per row."""
    return rng.random(n) < params.q                                      # (n,) bool


def swap(x: np.ndarray, params: ModelParams, rng: np.random.Generator) -> np.ndarray:
    """r(x): with probability q (per row) swap every pair (x_{2t-1}, x_{2t})."""
    out = x.copy()
    rows = np.flatnonzero(swap_rows(x.shape[0], params, rng))
    out[rows] = x[rows][:, pair_swap_index(x.shape[1])]
    return out


def attack_direction(params: ModelParams, dtype=np.float32) -> np.ndarray:
    """A(x) for label y = +1: -eta*2*mu/sqrt(d) on odd, + on even coordinates
    (A(x) = y times this; it does not depend on x)."""
    step = 2.0 * params.eta * params.shift
    a = np.zeros(params.dim, dtype=dtype)
    a[1::2], a[2::2] = -step, step                                       # (2d+1,)
    return a


def attack(x: np.ndarray, y: np.ndarray, params: ModelParams) -> np.ndarray:
    """A(x) for label y: -eta*2*mu*y/sqrt(d) on odd, + on even coordinates."""
    return y[:, None].astype(x.dtype) * attack_direction(params, x.dtype)  # (n, 2d+1)


def perturb(x: np.ndarray, y: np.ndarray, params: ModelParams) -> np.ndarray:
    """X + A(X)."""
    return x + attack(x, y, params)


def stream(params: ModelParams, n: int, seed: int,
           chunk_size: int = DEFAULT_CHUNK, dtype=np.float32
           ) -> Iterator[tuple[np.ndarray, np.ndarray, np.random.Generator]]:
    """Yield (x, y, rng) chunks totalling n rows; each chunk has its own
    generator spawned from `seed`, so memory stays at one chunk for any n
    and the stream is reproducible for a given (seed, chunk_size)."""
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"`n` must be a positive integer, got {n}.")
    if int(chunk_size) < 1:
        raise ValueError(f"`chunk_size` must be a positive integer, got {chunk_size}.")
    root = np.random.SeedSequence(int(seed))
    done = 0
    while done < n:
        m = min(int(chunk_size), int(n) - done)
        rng = np.random.Generator(np.random.PCG64(root.spawn(1)[0]))
        x, y = sample(params, m, rng, dtype=dtype)
        yield x, y, rng
        done += m


def sufficient_statistic(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x0, z) with z = sum_t (x_{2t-1} - x_{2t}) / sqrt(2d).
    Clean: z | y ~ N(sqrt(2) mu y, 1); swapped: N(-sqrt(2) mu y, 1);
    attacked: N(sqrt(2) mu y (1 - 2 eta), 1)."""
    d = (x.shape[1] - 1) // 2
    signs = np.where(np.arange(2 * d) % 2 == 0, 1.0, -1.0) / math.sqrt(2 * d)  # (2d,)
    z = x[:, 1:] @ signs.astype(x.dtype)                                 # (n,)
    return x[:, 0].astype(np.float64), z.astype(np.float64)
