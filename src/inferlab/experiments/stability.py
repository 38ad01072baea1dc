"""perf_analyzer's stability rule: the last three windows agree within a tolerance on throughput and latency."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inferlab.loadgen.result import RunResult


@dataclass(frozen=True, slots=True)
class Window:
    """What one measurement window is judged by."""

    requests_per_s: float
    latency_ms: float  # the mean, or a percentile when the sweep asks for one


def window_of(result: RunResult, percentile: str | None = None) -> Window:
    latency = result.latency.mean_ms if percentile is None else result.latency.percentiles_ms[percentile]
    return Window(result.requests_per_s, latency)


def is_stable(windows: Sequence[Window], tolerance: float = 0.10, count: int = 3) -> bool:
    """True when the last `count` windows' max/min ratio is within 1 + tolerance for both metrics.

    A window with no requests is never stable: zero throughput says the load did not arrive.
    """
    if len(windows) < count:
        return False
    last = windows[-count:]
    for values in ([w.requests_per_s for w in last], [w.latency_ms for w in last]):
        low, high = min(values), max(values)
        if low <= 0 or high / low > 1.0 + tolerance:
            return False
    return True
