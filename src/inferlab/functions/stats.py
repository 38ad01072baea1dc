"""Per-function counters and bounded histories (for /system/functions), mirrored as Prometheus metrics.

Collectors live on the registry the server passes in (`Metrics.summed`: `/metrics` exports it summed
over the worker processes), labelled by function:

    inferlab_function_instances{function}                      instances ready now
    inferlab_function_invocations_total{function,outcome}      calls answered: ok, error
    inferlab_function_cold_starts_total{function}              instances started
    inferlab_function_cold_start_seconds{function}             instance start + setup()
    inferlab_function_scale_events_total{function,direction}   scale decisions: up, down
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_HISTORY = 500
COLD_START_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class FunctionCollectors:
    """The functions' collectors on one registry, labelled by function name."""

    def __init__(self, registry: CollectorRegistry) -> None:
        label = ["function"]
        self.instances = Gauge("inferlab_function_instances", "Function instances ready now.", label,
                               registry=registry)
        self.invocations = Counter("inferlab_function_invocations", "Function calls answered, by outcome.",
                                   [*label, "outcome"], registry=registry)
        self.cold_starts = Counter("inferlab_function_cold_starts", "Function instances started.", label,
                                   registry=registry)
        self.cold_start_s = Histogram("inferlab_function_cold_start_seconds", "Instance start plus setup().",
                                      label, buckets=COLD_START_BUCKETS_S, registry=registry)
        self.scale_events = Counter("inferlab_function_scale_events", "Scale decisions, by direction.",
                                    [*label, "direction"], registry=registry)

    def forget(self, name: str) -> None:
        """Drop a removed function's series so /metrics does not report it forever."""
        series: list[tuple[Gauge | Counter | Histogram, tuple[str, ...]]] = [
            (self.instances, (name,)), (self.cold_starts, (name,)), (self.cold_start_s, (name,)),
            *((self.invocations, (name, o)) for o in ("ok", "error")),
            *((self.scale_events, (name, d)) for d in ("up", "down")),
        ]
        for collector, labels in series:
            with contextlib.suppress(KeyError):  # a series that never got a value
                collector.remove(*labels)


@dataclass(slots=True)
class FunctionStats:
    """One function's numbers; every change goes through a method so Prometheus sees it too."""

    name: str
    collectors: FunctionCollectors | None = None
    created_at: float = field(default_factory=time.time)
    invocations: int = 0
    errors: int = 0
    cold_starts: int = 0
    cold_requests: int = 0
    start_failures: int = 0
    cold_start_s: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    scale_events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_HISTORY))
    instances: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=_HISTORY))

    def invoked(self, ok: bool, cold: bool) -> None:
        self.invocations += 1
        self.errors += not ok
        self.cold_requests += cold
        if self.collectors is not None:
            self.collectors.invocations.labels(self.name, "ok" if ok else "error").inc()

    def started(self, seconds: float) -> None:
        self.cold_starts += 1
        self.cold_start_s.append(seconds)
        if self.collectors is not None:
            self.collectors.cold_starts.labels(self.name).inc()
            self.collectors.cold_start_s.labels(self.name).observe(seconds)

    def scaled(self, before: int, after: int, reason: str) -> None:
        self.scale_events.append({"t": self._now(), "from": before, "to": after, "reason": reason})
        if self.collectors is not None:
            self.collectors.scale_events.labels(self.name, "up" if after > before else "down").inc()

    def ready_instances(self, ready: int) -> None:
        if not self.instances or self.instances[-1][1] != ready:
            self.instances.append((self._now(), ready))
            if self.collectors is not None:
                self.collectors.instances.labels(self.name).set(ready)

    def mean_cold_start_s(self) -> float:
        return sum(self.cold_start_s) / len(self.cold_start_s) if self.cold_start_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        starts = list(self.cold_start_s)
        return {
            "invocations": self.invocations,
            "errors": self.errors,
            "cold_starts": self.cold_starts,
            "cold_requests": self.cold_requests,
            "start_failures": self.start_failures,
            "cold_start_ms": {
                "last": round(starts[-1] * 1000, 3) if starts else None,
                "mean": round(self.mean_cold_start_s() * 1000, 3) if starts else None,
            },
            "scale_events": list(self.scale_events),
            "instances_over_time": [{"t": t, "instances": n} for t, n in self.instances],
        }

    def _now(self) -> float:
        """Seconds since the function was deployed."""
        return round(time.time() - self.created_at, 3)
