"""Merge the processes' WorkerResults exactly into one RunResult, with environment and self-check.

Histograms merge bucket by bucket and counts add, so a run on N processes has the same statistics as one
process that had sent everything; intervals merge by index because every process shares one start time.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
from collections import Counter
from collections.abc import Sequence

from inferlab import __version__
from inferlab.loadgen.histogram import LatencyHistogram, merge_encoded
from inferlab.loadgen.plan import LoadPlan
from inferlab.loadgen.recorder import PHASES, WorkerResult
from inferlab.loadgen.result import (
    Counts,
    Environment,
    ErrorCount,
    IntervalStats,
    LatencySummary,
    RunResult,
    SelfCheck,
    percentile_key,
)

#: Below this the CPU share is dominated by start-up work and says nothing about keeping up.
_MIN_CPU_WINDOW_S = 1.0

LOCUST_PERCENTILES = (50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0)


def merge(plan: LoadPlan, workers: Sequence[WorkerResult], started_at_unix: float, event_loop: str) -> RunResult:
    """One RunResult from every process's WorkerResult."""
    hist = {name: merge_encoded(w.histograms.get(name, "") for w in workers)
            for name in sorted({name for w in workers for name in w.histograms})}
    counts: Counter[str] = Counter()
    status: Counter[int] = Counter()
    for w in workers:
        counts.update(w.counts)
        status.update(w.status_codes)
    first = min((w.first_start_s for w in workers if w.last_done_s), default=0.0)
    last = max((w.last_done_s for w in workers), default=0.0)
    duration = max(last - first, 1e-9) if counts["requests"] else 0.0
    requests = counts["requests"]
    ok = counts["ok"]
    empty = LatencyHistogram()
    cpu_percent = max((100.0 * w.cpu_s / w.wall_s for w in workers if w.wall_s > 0), default=0.0)
    lag = hist.get("lag", empty).summary()
    return RunResult(
        config=plan.describe(),
        environment=environment(event_loop, started_at_unix, plan.argv),
        mode=plan.mode,
        processes=plan.processes,
        started_at_unix=started_at_unix,
        duration_s=duration,
        warmup_s=plan.warmup_s,
        counts=Counts(requests, ok, counts["http_errors"], counts["errors"], counts["timeouts"],
                      counts["not_sent"], counts["warmup"]),
        requests_per_s=requests / duration if duration else 0.0,
        ok_per_s=ok / duration if duration else 0.0,
        success_rate=ok / requests if requests else 1.0,
        bytes_in=sum(w.bytes_in for w in workers),
        bytes_out=sum(w.bytes_out for w in workers),
        latency=hist.get("latency", empty).summary(),
        service=hist.get("service", empty).summary(),
        phases={name: hist.get(name, empty).summary() for name in PHASES},
        server_timing={name.removeprefix("server:"): h.summary() for name, h in hist.items()
                       if name.startswith("server:")},
        transport=hist["transport"].summary() if "transport" in hist else None,
        status_codes={str(code): n for code, n in sorted(status.items())},
        errors=_errors(workers),
        intervals=_intervals(workers),
        self_check=_self_check(plan, lag, cpu_percent, sum(w.cpu_s for w in workers),
                               max((w.wall_s for w in workers), default=0.0), counts,
                               sum(w.clamped for w in workers)),
        body_bytes_in=sum(w.body_bytes_in for w in workers),
        requests=tuple(sorted((r for w in workers for r in w.records), key=lambda r: (r.intended_s, r.process))),
    )


def _errors(workers: Sequence[WorkerResult]) -> tuple[ErrorCount, ...]:
    merged: dict[tuple[str, str], list[float]] = {}
    for w in workers:
        for key, (n, first, last) in w.errors.items():
            entry = merged.setdefault(key, [0, first, last])
            entry[0] += n
            entry[1] = min(entry[1], first)
            entry[2] = max(entry[2], last)
    rows = [ErrorCount(kind, message, int(n), first, last) for (kind, message), (n, first, last) in merged.items()]
    return tuple(sorted(rows, key=lambda e: (-e.count, e.kind, e.message)))


def _intervals(workers: Sequence[WorkerResult]) -> tuple[IntervalStats, ...]:
    length = max((len(w.windows) for w in workers), default=0)
    total = LatencyHistogram()
    total_requests = total_failures = total_bytes = 0
    out = []
    for i in range(length):
        windows = [w.windows[i] for w in workers if i < len(w.windows)]
        window = merge_encoded(x.latency for x in windows)
        total.add(window)
        requests = sum(x.requests for x in windows)
        failures = sum(x.failures for x in windows)
        total_requests += requests
        total_failures += failures
        total_bytes += sum(x.bytes_in for x in windows)
        summary = total.summary(keep_histogram=False)
        out.append(IntervalStats(
            end_s=max(x.end_s for x in windows), users=sum(x.users for x in windows), requests=requests,
            failures=failures, window_percentiles_ms=window.percentiles_ms(LOCUST_PERCENTILES),
            total_requests=total_requests, total_failures=total_failures,
            total_median_ms=summary.percentiles_ms[percentile_key(50.0)], total_mean_ms=summary.mean_ms,
            total_min_ms=summary.min_ms, total_max_ms=summary.max_ms,
            total_mean_bytes=total_bytes / total_requests if total_requests else 0.0,
        ))
    return tuple(out)


def _self_check(plan: LoadPlan, lag: LatencySummary, cpu_percent: float, cpu_s: float, wall_s: float,
                counts: Counter[str], clamped: int) -> SelfCheck:
    reasons = []
    lag_p99 = lag.percentiles_ms[percentile_key(99.0)]
    if lag.count and lag_p99 > plan.max_lag_p99_ms:
        reasons.append(f"sends ran late: p99 of (actual - scheduled) send time is {lag_p99:.2f} ms, "
                       f"over the {plan.max_lag_p99_ms:g} ms limit")
    if cpu_percent > plan.max_cpu_percent and wall_s >= _MIN_CPU_WINDOW_S:
        reasons.append(f"the generator used {cpu_percent:.0f}% of a core (limit {plan.max_cpu_percent:g}%): "
                       "it, not the server, may have set the pace; add --processes")
    if clamped:
        reasons.append(f"{clamped} values exceeded the histogram's 1 h range and were clamped")
    if plan.mode == "open" and counts["not_sent"]:
        reasons.append(f"{counts['not_sent']} scheduled requests were never sent: all {plan.concurrency} "
                       "connections were busy until the end; raise -c")
    return SelfCheck(not reasons, tuple(reasons), lag, cpu_percent, cpu_s, plan.max_lag_p99_ms, plan.max_cpu_percent)


def environment(event_loop: str, started_at_unix: float, argv: tuple[str, ...]) -> Environment:
    return Environment(
        inferlab_version=__version__,
        python=sys.version.split()[0],
        platform=platform.platform(),
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count() or 0,
        hostname=socket.gethostname(),
        event_loop=event_loop,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at_unix)),
        argv=argv,
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
