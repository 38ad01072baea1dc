"""Load points and sweep specs: `concurrency=1,2,4,8`, `rate=50,100`, `think=0,1,5` -> the points to run."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from inferlab.errors import InvalidInput

#: Sweep variables, with the spellings accepted on the command line and in experiment files.
VARIABLES = {"concurrency": "concurrency", "c": "concurrency", "rate": "rate", "r": "rate",
             "think": "think_s", "think_s": "think_s", "think-time": "think_s"}


@dataclass(frozen=True, slots=True)
class LoadPoint:
    """One offered load: closed loop (`concurrency` users, each waiting `think_s` between requests)
    or open loop (Poisson or constant arrivals at `rate` per second, concurrency only caps connections).

    Example:
        >>> LoadPoint(concurrency=8, think_s=1.0).label()
        'c=8 think=1s'
    """

    concurrency: int = 1
    rate: float = 0.0  # > 0 makes the point open loop
    think_s: float = 0.0
    arrivals: str = "poisson"  # open loop only: "poisson" or "constant"

    @property
    def mode(self) -> str:
        return "open" if self.rate > 0 else "closed"

    def label(self) -> str:
        if self.mode == "open":
            return f"rate={self.rate:g}/s"
        think = f" think={self.think_s:g}s" if self.think_s else ""
        return f"c={self.concurrency}{think}"

    def as_dict(self) -> dict[str, Any]:
        """The form stored in a result's config under "load", which reports read back."""
        return {"mode": self.mode, "concurrency": self.concurrency, "rate": self.rate,
                "think_s": self.think_s, "arrivals": self.arrivals}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LoadPoint:
        return cls(concurrency=int(raw.get("concurrency", 1)), rate=float(raw.get("rate", 0.0)),
                   think_s=float(raw.get("think_s", 0.0)), arrivals=str(raw.get("arrivals", "poisson")))


def parse_sweep(spec: str) -> tuple[str, tuple[float, ...]]:
    """`concurrency=1,2,4` -> ("concurrency", (1, 2, 4)); the values must be positive (think may be 0)."""
    name, sep, values = spec.partition("=")
    variable = VARIABLES.get(name.strip().lower())
    if not sep or variable is None:
        raise InvalidInput(f"sweep {spec!r}: expected NAME=V1,V2,... with NAME one of concurrency, rate, think")
    try:
        parsed = tuple(float(v.strip().removesuffix("s")) for v in values.split(",") if v.strip())
    except ValueError:
        raise InvalidInput(f"sweep {spec!r}: values must be numbers separated by commas") from None
    if not parsed:
        raise InvalidInput(f"sweep {spec!r}: no values after '='")
    lowest = 0.0 if variable == "think_s" else 1e-9
    bad = [v for v in parsed if v < lowest or (variable == "concurrency" and v != int(v))]
    if bad:
        raise InvalidInput(f"sweep {spec!r}: {bad} not allowed for {name} (concurrency: integers >= 1, "
                           "rate: > 0, think: >= 0)")
    return variable, parsed


def sweep_points(specs: Iterable[str], base: LoadPoint = LoadPoint()) -> list[LoadPoint]:
    """Every combination of the sweeps (think time outermost, as the seed 004 plots group by it)."""
    axes = dict(parse_sweep(spec) for spec in specs)
    if "rate" in axes and "concurrency" in axes:
        raise InvalidInput("sweep either concurrency (closed loop) or rate (open loop), not both")
    order = [name for name in ("think_s", "rate", "concurrency") if name in axes]
    points = []
    for values in itertools.product(*(axes[name] for name in order)):
        fields = dict(zip(order, values, strict=True))
        points.append(LoadPoint(
            concurrency=int(fields.get("concurrency", base.concurrency)),
            rate=float(fields.get("rate", base.rate)),
            think_s=float(fields.get("think_s", base.think_s)),
            arrivals=base.arrivals,
        ))
    return points
