"""The record every check returns: claim, statistic, interval, verdict."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from verify.stats import VERDICTS

ERROR = "ERROR"  # set by the runner when a check could not run, never by a check


def _json_number(v: float):
    return float(v) if math.isfinite(v) else None


@dataclass(frozen=True)
class CheckResult:
    """One claim of the paper checked against data.

    statistic: the number the verdict is read from; ci: its interval;
    verdict: HOLDS / FAILS / INCONCLUSIVE (ERROR only from the runner);
    details: every number behind it (JSON-able); data: the run keys or
    files it used."""

    name: str
    paper_ref: str
    claim: str
    statistic: float
    ci: tuple[float, float]
    verdict: str
    details: dict = field(default_factory=dict)
    data: tuple[str, ...] = ()

    def __post_init__(self):
        if self.verdict not in VERDICTS + (ERROR,):
            raise ValueError(f"`verdict` must be one of {VERDICTS + (ERROR,)}, "
                             f"got {self.verdict!r}.")
        object.__setattr__(self, "ci", (float(self.ci[0]), float(self.ci[1])))
        object.__setattr__(self, "data", tuple(str(d) for d in self.data))

    def to_dict(self) -> dict:
        return {"name": self.name, "paper_ref": self.paper_ref, "claim": self.claim,
                "statistic": _json_number(float(self.statistic)),
                "ci": [_json_number(self.ci[0]), _json_number(self.ci[1])],
                "verdict": self.verdict, "details": self.details, "data": list(self.data)}

    @classmethod
    def from_dict(cls, d: dict) -> "CheckResult":
        def num(v):
            return math.nan if v is None else float(v)
        return cls(d["name"], d["paper_ref"], d["claim"], num(d["statistic"]),
                   (num(d["ci"][0]), num(d["ci"][1])), d["verdict"],
                   dict(d.get("details", {})), tuple(d.get("data", ())))

    @classmethod
    def error(cls, name: str, paper_ref: str, claim: str, message: str,
              data=()) -> "CheckResult":
        """A check that could not run: no statistic, the reason in details."""
        return cls(name, paper_ref, claim, math.nan, (math.nan, math.nan), ERROR,
                   {"error": message}, tuple(data))
