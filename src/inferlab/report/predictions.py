"""Read `inferlab predict --json` output: the predicted points a report overlays on measured runs.

The file is what `inferlab predict ... --json > PRED.json` writes: a JSON list with one object per
predicted rate (a single object is accepted too). A report draws one predicted curve, so the points of
every file given are pooled and each rate may be predicted only once.

Example::

    points = load_predictions([Path("digits-nobatch.json")])
    points[0].rate_rps, points[0].p99_ms
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from inferlab.errors import InvalidInput

#: Fields every point must carry (seconds or requests/s); p95_s is optional.
REQUIRED = ("rate_rps", "throughput_rps", "capacity_rps", "p50_s", "p99_s")


@dataclass(frozen=True, slots=True)
class PredictedPoint:
    """One predicted rate, in the report's units (ms). A latency is NaN where the simulation gave none."""

    rate_rps: float
    throughput_rps: float
    capacity_rps: float
    p50_ms: float
    p95_ms: float | None
    p99_ms: float
    source: str  # "FILE #N", for messages

    def percentile_ms(self, name: str) -> float | None:
        """The predicted latency for "p50", "p95" or "p99"."""
        return {"p50": self.p50_ms, "p95": self.p95_ms, "p99": self.p99_ms}[name]


def load_predictions(paths: Sequence[Path]) -> list[PredictedPoint]:
    """Every point of every file, sorted by rate; the same rate twice is an error (two curves cannot be one)."""
    points = sorted((p for path in paths for p in _read(path)), key=lambda p: p.rate_rps)
    for a, b in itertools.pairwise(points):
        if math.isclose(a.rate_rps, b.rate_rps, rel_tol=1e-9):
            raise InvalidInput(f"predictions: rate {a.rate_rps:g}/s is predicted twice ({a.source} and {b.source}); "
                               "a report overlays one predicted curve, so give each rate once")
    return points


def _read(path: Path) -> list[PredictedPoint]:
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: not JSON ({exc}); expected the output of `inferlab predict --json`") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise InvalidInput(f"{path}: no predicted points (an empty list)")
    return [_point(item, f"{path.name} #{i}") for i, item in enumerate(items, 1)]


def _point(item: Any, source: str) -> PredictedPoint:
    if not isinstance(item, dict):
        raise InvalidInput(f"{source}: expected an object from `inferlab predict --json`, got {type(item).__name__}")
    missing = [k for k in REQUIRED if k not in item]
    if missing:
        raise InvalidInput(f"{source}: missing {', '.join(missing)}; expected the output of `inferlab predict --json`")
    rate = _number(item, "rate_rps", source)
    if not rate > 0:
        raise InvalidInput(f"{source}: rate_rps {rate:g} is not > 0")
    p95 = _number(item, "p95_s", source) * 1e3 if "p95_s" in item else None
    return PredictedPoint(rate, _number(item, "throughput_rps", source), _number(item, "capacity_rps", source),
                          _number(item, "p50_s", source) * 1e3, p95, _number(item, "p99_s", source) * 1e3, source)


def _number(item: dict[str, Any], key: str, source: str) -> float:
    """A float; null (how JSON writes NaN or infinity) becomes NaN, shown as "-" and left out of the plot."""
    value = item[key]
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{source}: {key} is {value!r}, expected a number")
    return float(value)
