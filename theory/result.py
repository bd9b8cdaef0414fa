"""The typed result of a Theorem 1 check and the configuration it came from.

`TheoremCheck.to_dict()` is the documented `--json` schema; `from_dict`
reads it back (files written before `params` and `training` were read
into one `CheckConfig` included). Everything that reports a check (the
table, the figure, the CSV, the verify checks) reads this object.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field, fields
from importlib import metadata
from pathlib import Path

from core.estimate import Estimate
from core.hashing import config_hash
from core.io import atomic_write_json, git_commit
from theory import bound, classifiers as clf, frontier as fr, montecarlo
from theory.distribution import ModelParams

TRAINED = tuple(f"{kind}_{mode}" for kind in clf.KINDS for mode in clf.MODES)


@dataclass(frozen=True)
class CheckConfig:
    """Everything one check depends on."""

    p: float
    d: int = 100
    n: int = 200_000
    seed: int = 0
    mu: float = 3.0
    eta: float = 1.0
    q: float = 0.5
    train_steps: int = 200

    def __post_init__(self):
        self.model  # validates p, d, mu, eta, q
        if isinstance(self.n, bool) or int(self.n) != self.n or self.n < 1:
            raise ValueError(f"`n` must be a positive integer, got {self.n}.")
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer, got {self.seed}.")
        if int(self.train_steps) != self.train_steps or self.train_steps < 1:
            raise ValueError(f"`train_steps` must be a positive integer, got {self.train_steps}.")

    @property
    def model(self) -> ModelParams:
        return ModelParams(self.p, self.d, self.mu, self.eta, self.q)

    def to_dict(self) -> dict:
        """Every field: the identity of a check (`key` hashes this)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def key(self) -> str:
        """`core.hashing.config_hash(self.to_dict())`: a stored result's key."""
        return config_hash(self.to_dict())

    def params_dict(self) -> dict:
        """The JSON's `params` block: the model and Monte-Carlo settings
        (the JSON keeps `train_steps` under `training.steps`)."""
        return {k: v for k, v in self.to_dict().items() if k != "train_steps"}

    @classmethod
    def from_dict(cls, d: dict) -> "CheckConfig":
        steps = d.get("train_steps", cls.__dataclass_fields__["train_steps"].default)
        return cls(float(d["p"]), int(d["d"]), int(d["n"]), int(d["seed"]), float(d["mu"]),
                   float(d["eta"]), float(d["q"]), int(steps))


def _version(dist: str) -> str | None:
    """The version of a module already imported, else of the installed
    distribution (read from its metadata, without importing it)."""
    module = sys.modules.get(dist)
    if module is not None and getattr(module, "__version__", None):
        return str(module.__version__)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Provenance:
    """Package version, git commit and interpreter facts of a result."""

    invrob_version: str | None = None
    git_commit: str | None = None
    python: str | None = None
    torch: str | None = None
    numpy: str | None = None
    created: str | None = None

    @classmethod
    def now(cls) -> "Provenance":
        return cls(_version("invrob"), git_commit(), platform.python_version(), _version("torch"),
                   _version("numpy"), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Provenance":
        d = d or {}
        return cls(**{f.name: None if d.get(f.name) is None else str(d[f.name])
                      for f in fields(cls)})


@dataclass(frozen=True)
class Bound:
    """Theorem 1 at p: spatial + coefficient * adversarial <= rhs."""

    coefficient: float
    rhs: float

    @classmethod
    def at(cls, p: float) -> "Bound":
        return cls(bound.coefficient(p), bound.rhs(p))

    def to_dict(self) -> dict:
        return {"coefficient": self.coefficient, "rhs": self.rhs}

    @classmethod
    def from_dict(cls, d: dict) -> "Bound":
        return cls(float(d["coefficient"]), float(d["rhs"]))


@dataclass(frozen=True)
class ClassifierResult:
    """One classifier: Monte-Carlo accuracies, exact ones where a closed
    form exists, and whether its left side lies above the bound."""

    name: str
    accuracies: montecarlo.Accuracies
    exact: fr.ExactAccuracy | None
    violates: bool

    @property
    def clean(self) -> Estimate:
        return self.accuracies.clean

    @property
    def spatial(self) -> Estimate:
        return self.accuracies.spatial

    @property
    def adversarial(self) -> Estimate:
        return self.accuracies.adversarial

    @property
    def lhs(self) -> montecarlo.LhsEstimate:
        return self.accuracies.lhs

    @property
    def trained(self) -> bool:
        """One of the six trained models (not a fixed rule)."""
        return self.name in TRAINED

    def to_dict(self) -> dict:
        return {"name": self.name, **self.accuracies.to_dict(),
                "exact": None if self.exact is None else self.exact.to_dict(),
                "violates": self.violates}

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierResult":
        exact = None if d.get("exact") is None else fr.ExactAccuracy.from_dict(d["exact"])
        return cls(str(d["name"]), montecarlo.Accuracies.from_dict(d), exact, bool(d["violates"]))


@dataclass(frozen=True)
class TheoremCheck:
    """Every part of one check: proof steps, exact frontier, each
    classifier against the bound, and the verdict."""

    config: CheckConfig
    theorem_applies: bool
    bound: Bound
    proof_steps: tuple[bound.ProofStep, ...]
    frontier: fr.Frontier
    classifiers: tuple[ClassifierResult, ...]
    provenance: Provenance = field(default_factory=Provenance.now, compare=False)

    @property
    def coefficient(self) -> float:
        return self.bound.coefficient

    @property
    def rhs(self) -> float:
        return self.bound.rhs

    @property
    def consistent(self) -> bool:
        """No classifier's left side lies above the bound beyond its interval."""
        return not any(c.violates for c in self.classifiers)

    @property
    def verdict(self) -> str:
        return "consistent" if self.consistent else "violated"

    @property
    def label(self) -> str:
        """Where the numbers come from, e.g. 'theory.check p=0.7 n=200000 seed=0'."""
        return f"theory.check p={self.config.p} n={self.config.n} seed={self.config.seed}"

    def classifier(self, name: str) -> ClassifierResult:
        for c in self.classifiers:
            if c.name == name:
                return c
        raise KeyError(f"no classifier {name!r} in this check")

    def trained(self) -> dict[str, ClassifierResult]:
        """The six trained models by name (logreg then mlp; plain, r_aug, adv),
        or a ValueError naming the ones missing."""
        rows = {c.name: c for c in self.classifiers if c.trained}
        missing = sorted(set(TRAINED) - set(rows))
        if missing:
            raise ValueError(f"the theory check lacks trained classifiers {missing}")
        return {name: rows[name] for name in TRAINED}

    def trained_lhs(self) -> dict[str, tuple[float, float, float]]:
        """name -> (left side, its interval's low, high) of each trained model."""
        return {n: (c.lhs.value, c.lhs.ci_low, c.lhs.ci_high) for n, c in self.trained().items()}

    def trained_spatial(self) -> dict[str, Estimate]:
        return {n: c.spatial for n, c in self.trained().items()}

    def trained_adversarial(self) -> dict[str, Estimate]:
        return {n: c.adversarial for n, c in self.trained().items()}

    @property
    def side_pairs(self) -> list[tuple[str, str]]:
        """(r-augmented, A-adversarial) name pairs, one per model kind."""
        return [(f"{k}_r_aug", f"{k}_adv") for k in clf.KINDS]

    def csv(self) -> str:
        """Each classifier's spatial and adversarial accuracy with 95 % intervals."""
        lines = ["classifier,spatial,spatial_ci_low,spatial_ci_high,"
                 "adversarial,adversarial_ci_low,adversarial_ci_high,n"]
        for c in self.classifiers:
            s, a = c.spatial, c.adversarial
            lines.append(f"{c.name},{s.value!r},{s.ci_low!r},{s.ci_high!r},"
                         f"{a.value!r},{a.ci_low!r},{a.ci_high!r},{s.n}")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {"params": self.config.params_dict(), "theorem_applies": self.theorem_applies,
                "bound": self.bound.to_dict(),
                "proof_steps": [s.to_dict() for s in self.proof_steps],
                "frontier": self.frontier.to_dict(),
                "classifiers": [c.to_dict() for c in self.classifiers],
                "verdict": self.verdict, "training": {"steps": self.config.train_steps},
                "provenance": self.provenance.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "TheoremCheck":
        config = CheckConfig.from_dict({**d["params"], **(
            {"train_steps": d["training"]["steps"]} if "steps" in d.get("training", {}) else {})})
        out = cls(config, bool(d["theorem_applies"]), Bound.from_dict(d["bound"]),
                  tuple(bound.ProofStep.from_dict(s) for s in d["proof_steps"]),
                  fr.Frontier.from_dict(d["frontier"]),
                  tuple(ClassifierResult.from_dict(c) for c in d["classifiers"]),
                  Provenance.from_dict(d.get("provenance")))
        if "verdict" in d and d["verdict"] != out.verdict:
            raise ValueError(f"stored verdict {d['verdict']!r} disagrees with its classifiers "
                             f"({out.verdict})")
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write `to_dict()` as JSON (atomically); returns the path."""
        atomic_write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TheoremCheck":
        return cls.from_dict(json.loads(Path(path).read_text()))


def as_check(result) -> TheoremCheck:
    """A `TheoremCheck` from itself or from its `to_dict()`."""
    if isinstance(result, TheoremCheck):
        return result
    if isinstance(result, dict):
        return TheoremCheck.from_dict(result)
    raise TypeError(f"expected a TheoremCheck or its dict, got {type(result).__name__}")
