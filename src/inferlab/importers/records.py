"""Summarise per-request records from another tool into a RunResult, with the same histograms our runs use.

Imported runs must sit beside our own in one report, so they are summarised by the same rules
(docs/loadgen.md): latencies from HDR histograms, every request counted once, 1 s intervals. What the other
tool did not measure is left empty rather than invented: no send lag, no CPU, no server spans it lacked.
"""

from __future__ import annotations

import datetime
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from inferlab import __version__
from inferlab.loadgen.aggregate import LOCUST_PERCENTILES
from inferlab.loadgen.histogram import LatencyHistogram
from inferlab.loadgen.result import (
    Counts,
    Environment,
    ErrorCount,
    IntervalStats,
    LatencySummary,
    RequestRecord,
    RunResult,
    SelfCheck,
)

#: locust's interval percentile set, which `IntervalStats.window_percentiles_ms` carries.
WINDOW_PERCENTILES = LOCUST_PERCENTILES  # the windows our own runs report


def imported_environment(tool: str, started_at_unix: float) -> Environment:
    """Where an imported run happened is unknown; say which tool made it and when it started."""
    started = datetime.datetime.fromtimestamp(started_at_unix, datetime.UTC).isoformat() if started_at_unix else ""
    return Environment(inferlab_version=__version__, python="", platform="", cpu_model="", cpu_count=0,
                       hostname="", event_loop="", started_at=started, argv=(f"imported from {tool}",))


def summarize(values_ms: Sequence[float] | np.ndarray[Any, Any]) -> LatencySummary:
    histogram = LatencyHistogram()
    histogram.record_ms(np.asarray(values_ms, dtype=np.float64))
    return histogram.summary()


def result_from_records(
    records: Sequence[RequestRecord], *, tool: str, config: dict[str, Any], started_at_unix: float,
    users: Sequence[int] = (), interval_s: float = 1.0,
) -> RunResult:
    """A RunResult from records on the run's clock; `users[i]` is the concurrency when record i was sent."""
    measured = [r for r in records if r.status > 0 or r.error_kind == "timeout"]
    ok = sum(1 for r in records if 0 < r.status < 400 and not r.error_kind)
    http_errors = sum(1 for r in records if r.status >= 400)
    timeouts = sum(1 for r in records if r.error_kind == "timeout")
    counts = Counts(requests=len(records), ok=ok, http_errors=http_errors,
                    errors=len(records) - ok - http_errors - timeouts, timeouts=timeouts)
    start = min((r.sent_s for r in records), default=0.0)
    end = max((r.sent_s + r.service_ms / 1000.0 for r in records), default=0.0)
    duration = max(end - start, 1e-9) if records else 0.0
    timing_names = sorted({name for r in measured for name in r.server_timing_ms})
    totals = [(r.service_ms, r.server_timing_ms["total"]) for r in measured if "total" in r.server_timing_ms]
    empty = summarize([])
    return RunResult(
        config={"tool": tool, **config},
        environment=imported_environment(tool, started_at_unix),
        mode=str(config.get("load", {}).get("mode", "closed")),
        processes=1,
        started_at_unix=started_at_unix,
        duration_s=duration,
        warmup_s=0.0,
        counts=counts,
        requests_per_s=len(records) / duration if records else 0.0,
        ok_per_s=ok / duration if records else 0.0,
        success_rate=ok / len(records) if records else 1.0,
        bytes_in=sum(r.bytes_in for r in records),
        bytes_out=sum(r.bytes_out for r in records),
        latency=summarize([r.latency_ms for r in measured]),
        service=summarize([r.service_ms for r in measured]),
        phases={name: summarize([getattr(r, f"{name}_ms") for r in measured])
                for name in ("connect", "write", "wait", "read")},
        server_timing={name: summarize([r.server_timing_ms[name] for r in measured if name in r.server_timing_ms])
                       for name in timing_names},
        transport=summarize([max(service - total, 0.0) for service, total in totals]) if totals else None,
        status_codes={str(code): n for code, n in sorted(Counter(r.status for r in records if r.status).items())},
        errors=_errors(records),
        intervals=_intervals(records, users, interval_s),
        self_check=SelfCheck(valid=True, reasons=(), send_lag=empty, cpu_percent=0.0, cpu_seconds=0.0,
                             max_lag_p99_ms=0.0, max_cpu_percent=0.0),
        requests=tuple(records),
    )


def _errors(records: Sequence[RequestRecord]) -> tuple[ErrorCount, ...]:
    seen: dict[tuple[str, str], list[float]] = {}
    for r in records:
        if r.error_kind:
            seen.setdefault((r.error_kind, r.error), []).append(r.sent_s)
    return tuple(ErrorCount(kind, message, len(times), min(times), max(times))
                 for (kind, message), times in sorted(seen.items()))


def _intervals(records: Sequence[RequestRecord], users: Sequence[int], interval_s: float) -> tuple[IntervalStats, ...]:
    """Bucket records by completion time; running totals as locust's history file keeps them."""
    if not records:
        return ()
    done = np.array([r.sent_s + r.service_ms / 1000.0 for r in records])
    latency = np.array([r.latency_ms for r in records])
    failed = np.array([bool(r.error_kind) or r.status >= 400 for r in records])
    size = np.array([r.bytes_in for r in records], dtype=np.float64)
    busy = np.array(users if len(users) == len(records) else [0] * len(records))
    start = min(r.sent_s for r in records)
    slot = np.floor((done - start) / interval_s).astype(np.int64)
    slots = int(slot.max()) + 1
    requests = np.bincount(slot, minlength=slots)  # per slot, then running totals: one pass, not one per slot
    failures = np.bincount(slot, weights=failed, minlength=slots).astype(np.int64)
    total_requests, total_failures = np.cumsum(requests), np.cumsum(failures)
    total_bytes = np.cumsum(np.bincount(slot, weights=size, minlength=slots))
    peak_users = np.zeros(slots, dtype=np.int64)
    np.maximum.at(peak_users, slot, busy)
    latencies = np.split(latency[np.argsort(slot, kind="stable")], np.cumsum(requests)[:-1])
    rows = []
    total = LatencyHistogram()
    for index in range(slots):
        window = LatencyHistogram()
        window.record_ms(latencies[index])
        total.add(window)
        summary = total.summary(keep_histogram=False)
        rows.append(IntervalStats(
            end_s=start + (index + 1) * interval_s,
            users=int(peak_users[index]),
            requests=int(requests[index]),
            failures=int(failures[index]),
            window_percentiles_ms=window.percentiles_ms(WINDOW_PERCENTILES),
            total_requests=int(total_requests[index]),
            total_failures=int(total_failures[index]),
            total_median_ms=summary.percentiles_ms["50"],
            total_mean_ms=summary.mean_ms,
            total_min_ms=summary.min_ms,
            total_max_ms=summary.max_ms,
            total_mean_bytes=float(total_bytes[index] / total_requests[index]) if total_requests[index] else math.nan,
        ))
    return tuple(rows)
