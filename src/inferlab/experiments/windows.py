"""Join consecutive measurement windows of one load point into one RunResult (perf_analyzer reports the
stable windows together, not the last one alone).

Histograms merge exactly (HDR encodings add bucket by bucket); counts, bytes and status codes add up;
intervals and per-request records are laid end to end on one clock, so a step's time series covers every
window it is made of.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from inferlab.loadgen.histogram import merge_encoded
from inferlab.loadgen.result import Counts, ErrorCount, IntervalStats, LatencySummary, RunResult


def merge_windows(windows: Sequence[RunResult]) -> RunResult:
    """One result from windows run back to back with the same plan; config and environment are the last's."""
    if len(windows) == 1:
        return windows[0]
    first, last = windows[0], windows[-1]
    offsets, clock = [], 0.0
    for w in windows:
        offsets.append(clock)
        clock += w.intervals[-1].end_s if w.intervals else w.warmup_s + w.duration_s
    counts = Counts(*(sum(getattr(w.counts, f.name) for w in windows) for f in dataclasses.fields(Counts)))
    duration = sum(w.duration_s for w in windows)
    status: dict[str, int] = {}
    for w in windows:
        for code, n in w.status_codes.items():
            status[code] = status.get(code, 0) + n
    checks = [w.self_check for w in windows]
    transports = [w.transport for w in windows if w.transport is not None]
    return dataclasses.replace(
        last,
        started_at_unix=first.started_at_unix,
        duration_s=duration,
        warmup_s=first.warmup_s,
        counts=counts,
        requests_per_s=counts.requests / duration if duration > 0 else 0.0,
        ok_per_s=counts.ok / duration if duration > 0 else 0.0,
        success_rate=counts.ok / counts.requests if counts.requests else 1.0,
        bytes_in=sum(w.bytes_in for w in windows),
        body_bytes_in=sum(w.body_bytes_in for w in windows),
        bytes_out=sum(w.bytes_out for w in windows),
        latency=_merge([w.latency for w in windows]),
        service=_merge([w.service for w in windows]),
        phases=_merge_named([w.phases for w in windows]),
        server_timing=_merge_named([w.server_timing for w in windows]),
        transport=_merge(transports) if transports else None,
        status_codes=dict(sorted(status.items())),
        errors=_errors(windows, offsets),
        intervals=_intervals(windows, offsets),
        self_check=dataclasses.replace(
            last.self_check, valid=all(c.valid for c in checks),
            reasons=tuple(reason for c in checks for reason in c.reasons),
            send_lag=_merge([c.send_lag for c in checks]),
            cpu_percent=max(c.cpu_percent for c in checks), cpu_seconds=sum(c.cpu_seconds for c in checks)),
        requests=tuple(dataclasses.replace(r, intended_s=r.intended_s + offset, sent_s=r.sent_s + offset)
                       for w, offset in zip(windows, offsets, strict=True) for r in w.requests),
    )


def _merge(summaries: Sequence[LatencySummary]) -> LatencySummary:
    return merge_encoded(s.histogram for s in summaries).summary()


def _merge_named(maps: Sequence[dict[str, LatencySummary]]) -> dict[str, LatencySummary]:
    names = sorted({name for m in maps for name in m})
    return {name: _merge([m[name] for m in maps if name in m]) for name in names}


def _errors(windows: Sequence[RunResult], offsets: Sequence[float]) -> tuple[ErrorCount, ...]:
    merged: dict[tuple[str, str], ErrorCount] = {}
    for w, offset in zip(windows, offsets, strict=True):
        for e in w.errors:
            seen = merged.get((e.kind, e.message))
            first, last = e.first_seen_s + offset, e.last_seen_s + offset
            merged[(e.kind, e.message)] = ErrorCount(e.kind, e.message, e.count, first, last) if seen is None else \
                ErrorCount(e.kind, e.message, seen.count + e.count, seen.first_seen_s, last)
    return tuple(sorted(merged.values(), key=lambda e: (-e.count, e.kind, e.message)))


def _intervals(windows: Sequence[RunResult], offsets: Sequence[float]) -> tuple[IntervalStats, ...]:
    """Intervals end to end; running totals continue across windows (min/max/mean stay per window)."""
    out = []
    requests = failures = 0
    for w, offset in zip(windows, offsets, strict=True):
        for i in w.intervals:
            out.append(dataclasses.replace(i, end_s=i.end_s + offset, total_requests=requests + i.total_requests,
                                           total_failures=failures + i.total_failures))
        if w.intervals:
            requests += w.intervals[-1].total_requests
            failures += w.intervals[-1].total_failures
    return tuple(out)
