"""Pure scaling policy (demand, idle time, keep-warm window -> instances, incl. 0) and the loop applying it.

`ScalePolicy.decide` is a function of its inputs only, so every rule is tested without processes or
clocks. Demand is the peak of (in flight + queued) over the scale-down window: scaling up follows it
at once, scaling down waits until the peak has stayed low for that window.

Keep-warm: the fixed policy keeps one instance for `idle_timeout_s` after the last request. The
histogram policy (the idea of Azure Functions' hybrid histogram and INFless's long-short term
histogram) learns the idle gaps between bursts: it unloads right after a burst, pre-warms shortly
before the 5th-percentile gap (less the expected start time), and keeps the instance until the
99th-percentile gap. With too few samples, or gaps beyond the histogram's range, it falls back to
the fixed idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from time import perf_counter
from typing import Protocol

log = logging.getLogger("inferlab.functions")
_FIRST_EDGE_S = 0.01
_GROWTH = 1.25
_BUCKETS = math.ceil(math.log(3600 / _FIRST_EDGE_S) / math.log(_GROWTH))  # 10 ms .. 1 h


@dataclass(frozen=True, slots=True)
class ScaleInputs:
    """What the policy sees of one function at one moment."""

    current: int  # instances starting or ready
    demand: int  # peak of (in flight + queued) over the scale-down window
    idle_s: float  # seconds since the function last had nothing in flight or queued (0 while busy)
    floor: int = 0  # a manual scale still being held


@dataclass(frozen=True, slots=True)
class KeepWarmWindow:
    """After going idle: stay unloaded for `prewarm_s`, then keep one instance warm for `keepalive_s`."""

    prewarm_s: float
    keepalive_s: float


@dataclass(frozen=True, slots=True)
class Decision:
    target: int
    reason: str


@dataclass(frozen=True, slots=True)
class ScalePolicy:
    """Instances = ceil(demand / concurrency) within [min, max]; 0 or 1 when idle, per the keep-warm rule."""

    min_instances: int
    max_instances: int
    concurrency: int
    idle_timeout_s: float

    def decide(self, inputs: ScaleInputs, window: KeepWarmWindow | None = None) -> Decision:
        if inputs.demand > 0:
            target, reason = math.ceil(inputs.demand / self.concurrency), "load"
        elif window is None:
            warm = inputs.current > 0 and inputs.idle_s < self.idle_timeout_s
            target, reason = (1, "idle, kept warm") if warm else (0, "idle timeout")
        elif window.prewarm_s <= inputs.idle_s < window.prewarm_s + window.keepalive_s:
            target, reason = 1, "pre-warm (histogram)" if window.prewarm_s > 0 else "keep-alive (histogram)"
        else:
            target, reason = 0, "outside keep-warm window (histogram)"
        if inputs.floor > target:
            target, reason = inputs.floor, "manual scale"
        if target < self.min_instances:
            return Decision(self.min_instances, "min_instances")
        if target > self.max_instances:
            return Decision(self.max_instances, f"{reason}, capped at max_instances")
        return Decision(target, reason)


class IdleHistogram:
    """Exact counts of idle gaps in log-spaced buckets (10 ms to 1 h, 25% wide) plus an overflow count."""

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.overflow = 0
        self.total = 0

    def record(self, gap_s: float) -> None:
        self.total += 1
        index = 0 if gap_s <= _FIRST_EDGE_S else math.ceil(math.log(gap_s / _FIRST_EDGE_S) / math.log(_GROWTH))
        if index >= _BUCKETS:
            self.overflow += 1
        else:
            self.counts[index] += 1

    def bucket_of(self, quantile: float) -> int:
        """Index of the bucket holding the `quantile` sample (`_BUCKETS` means the overflow)."""
        rank = max(1, math.ceil(quantile * self.total))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return index
        return _BUCKETS

    def window(self, expected_start_s: float, min_samples: int = 8, margin: float = 0.1) -> KeepWarmWindow | None:
        """The keep-warm window, or None (use the fixed idle timeout) when the histogram cannot tell."""
        if self.total < min_samples or self.overflow > 0.01 * self.total:
            return None
        low, high = self.bucket_of(0.05), self.bucket_of(0.99)
        if high >= _BUCKETS:
            return None
        prewarm_s = max(0.0, _lower_edge(low) * (1 - margin) - expected_start_s)
        keepalive_s = _upper_edge(high) * (1 + margin) - prewarm_s
        return KeepWarmWindow(prewarm_s, keepalive_s)


def _lower_edge(index: int) -> float:
    return 0.0 if index == 0 else _FIRST_EDGE_S * _GROWTH ** (index - 1)


def _upper_edge(index: int) -> float:
    return _FIRST_EDGE_S * _GROWTH**index


class Scalable(Protocol):
    """Something the loop can bring to its policy's target: a deployed function."""

    def reconcile(self, now: float) -> None: ...


class AutoscalerLoop:
    """Calls `reconcile` on every deployment each tick; arrivals that find no instance reconcile at once."""

    def __init__(self, targets: Callable[[], Iterable[Scalable]], tick_s: float = 0.05) -> None:
        self._targets = targets
        self._tick_s = tick_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="inferlab-autoscaler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            now = perf_counter()
            for target in list(self._targets()):
                try:
                    target.reconcile(now)
                except Exception:  # one function's failure must not stop scaling for the others
                    log.exception("autoscaler: reconcile failed")
            await asyncio.sleep(self._tick_s)
