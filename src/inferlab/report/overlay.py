"""Predicted vs measured: match open-loop runs to predicted points by offered rate and score the error.

The relative error of a point is (measured - predicted) / measured, so +20% means the model was
optimistic (reality 20% slower, or busier). Issue #8's targets say when an error is too large: p50
within 15%, p99 within 25%, throughput (capacity) within 10%; p95 has no target and is shown only.

Example::

    overlay = match(views(results), load_predictions([Path("pred.json")]))
    [(c.run.name, c.metric("p99").relative) for c in overlay.matched]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inferlab.report.predictions import PredictedPoint
from inferlab.report.runs import RunView

#: A run matches the predicted point whose rate is within this share of its own offered rate.
RATE_TOLERANCE = 0.05
#: Largest acceptable |relative error| per metric (issue #8); None: reported, never flagged.
TARGETS: dict[str, float | None] = {"p50": 0.15, "p95": None, "p99": 0.25, "throughput": 0.10}
LATENCIES = ("p50", "p95", "p99")


@dataclass(frozen=True, slots=True)
class MetricError:
    """One metric of one matched run: both values, (measured - predicted) / measured, and its verdict."""

    name: str
    predicted: float
    measured: float
    relative: float | None  # None when either value is missing or the measured one is 0

    @property
    def percent(self) -> str:
        return "-" if self.relative is None else f"{100 * self.relative:+.0f}%"

    @property
    def beyond_target(self) -> bool:
        target = TARGETS[self.name]
        # the tolerance keeps an error printed as exactly the target (0.15000000000000002) within it
        return target is not None and self.relative is not None and abs(self.relative) > target + 1e-9


@dataclass(frozen=True, slots=True)
class Comparison:
    """A measured run beside the predicted point at (nearly) its offered rate."""

    run: RunView
    predicted: PredictedPoint
    metrics: tuple[MetricError, ...]

    def metric(self, name: str) -> MetricError | None:
        return next((m for m in self.metrics if m.name == name), None)


@dataclass(frozen=True, slots=True)
class Unmatched:
    run: RunView
    reason: str


@dataclass(frozen=True, slots=True)
class Overlay:
    predicted: tuple[PredictedPoint, ...]  # sorted by rate
    matched: tuple[Comparison, ...]  # sorted by offered rate
    unmatched: tuple[Unmatched, ...]


def relative_error(measured: float, predicted: float) -> float | None:
    """(measured - predicted) / measured; None when it means nothing (a NaN, or nothing measured)."""
    if not (math.isfinite(measured) and math.isfinite(predicted)) or measured == 0:
        return None
    return (measured - predicted) / measured


def match(runs: Sequence[RunView], points: Sequence[PredictedPoint], tolerance: float = RATE_TOLERANCE) -> Overlay:
    """Each run either matched to its nearest predicted rate within `tolerance`, or listed with the reason it is not."""
    predicted = tuple(sorted(points, key=lambda p: p.rate_rps))
    matched: list[Comparison] = []
    unmatched: list[Unmatched] = []
    for run in runs:
        reason = _no_offered_rate(run)
        if reason is None and predicted:
            nearest = min(predicted, key=lambda p: abs(p.rate_rps - run.rate))
            gap = abs(nearest.rate_rps - run.rate) / run.rate
            if gap <= tolerance:
                matched.append(Comparison(run, nearest, _metrics(run, nearest)))
                continue
            reason = (f"the nearest prediction ({nearest.rate_rps:g}/s) is {100 * gap:.0f}% from its rate "
                      f"{run.rate:g}/s (allowed: {100 * tolerance:g}%)")
        unmatched.append(Unmatched(run, reason or "no predicted points"))
    matched.sort(key=lambda c: (c.run.rate, c.run.name))
    return Overlay(predicted, tuple(matched), tuple(unmatched))


def _no_offered_rate(run: RunView) -> str | None:
    """Why a run has no single offered rate to compare with, or None when it has one."""
    if run.mode != "open":
        return "closed loop: its load is users, not an offered rate"
    arrivals: Any = run.result.config.get("arrivals")
    if isinstance(arrivals, dict) and "timestamps" in arrivals:
        return "trace replay: no single offered rate"
    stages = arrivals.get("stages") if isinstance(arrivals, dict) else None
    if stages and (len(stages) > 1 or stages[0][1] != stages[0][2]):
        return "its rate changes during the run (stages or a ramp)"
    if run.rate <= 0:
        return "no offered rate recorded"
    return None


def _metrics(run: RunView, point: PredictedPoint) -> tuple[MetricError, ...]:
    measured = run.result.latency.percentiles_ms
    out = []
    for name in LATENCIES:
        predicted = point.percentile_ms(name)
        value = measured.get(name[1:])
        if predicted is not None and value is not None:
            out.append(MetricError(name, predicted, value, relative_error(value, predicted)))
    ok = run.result.ok_per_s
    out.append(MetricError("throughput", point.throughput_rps, ok, relative_error(ok, point.throughput_rps)))
    return tuple(out)
