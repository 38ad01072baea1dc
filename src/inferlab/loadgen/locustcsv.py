"""Locust-compatible CSVs (`PREFIX_stats.csv`, `_stats_history.csv`, `_failures.csv`, `_exceptions.csv`).

Headers are exactly locust's, so dashboards and scripts that read locust output read ours. Values are in
ms like locust's, but percentiles come from HDR histograms instead of locust's 2-digit buckets, and the
response time is the CO-free latency (from the intended send time in open loop).
"""

from __future__ import annotations

import csv
from pathlib import Path
from urllib.parse import urlsplit

from inferlab.loadgen.result import IntervalStats, RunResult

PERCENTILE_COLUMNS = ("50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%")
_PERCENTILE_KEYS = ("50", "66", "75", "80", "90", "95", "98", "99", "99.9", "99.99", "100")

STATS_HEADER = ("Type", "Name", "Request Count", "Failure Count", "Median Response Time", "Average Response Time",
                "Min Response Time", "Max Response Time", "Average Content Size", "Requests/s", "Failures/s",
                *PERCENTILE_COLUMNS)
HISTORY_HEADER = ("Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *PERCENTILE_COLUMNS,
                  "Total Request Count", "Total Failure Count", "Total Median Response Time",
                  "Total Average Response Time", "Total Min Response Time", "Total Max Response Time",
                  "Total Average Content Size")
FAILURES_HEADER = ("Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen")
EXCEPTIONS_HEADER = ("Count", "Message", "Traceback", "Nodes")


def write_locust_csvs(result: RunResult, prefix: str | Path) -> list[Path]:
    """Write the four files next to `prefix` and return their paths."""
    prefix = str(prefix)
    method = str(result.config.get("target", {}).get("method", "GET"))
    name = urlsplit(str(result.config.get("target", {}).get("url", ""))).path or "/"
    paths = [Path(f"{prefix}_{suffix}.csv") for suffix in ("stats", "stats_history", "failures", "exceptions")]
    with paths[0].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(STATS_HEADER)
        row = _stats_row(result)
        writer.writerow([method, name, *row])
        writer.writerow(["", "Aggregated", *row])
    with paths[1].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HISTORY_HEADER)
        for interval, previous in zip(result.intervals, (0.0, *(i.end_s for i in result.intervals)), strict=False):
            writer.writerow(_history_row(result, interval, interval.end_s - previous))
    with paths[2].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FAILURES_HEADER)
        for e in result.errors:
            writer.writerow([method, name, e.message if e.kind == "http" else f"{e.kind}: {e.message}", e.count,
                             _stamp(result, e.first_seen_s), _stamp(result, e.last_seen_s)])
    with paths[3].open("w", newline="") as f:
        csv.writer(f).writerow(EXCEPTIONS_HEADER)  # the generator records failures, never exceptions of its own
    return paths


def _stats_row(result: RunResult) -> list[object]:
    lat = result.latency
    c = result.counts
    failures = c.http_errors + c.errors + c.timeouts
    duration = result.duration_s or 1.0
    percentiles: list[object] = [round(lat.percentiles_ms[k]) for k in _PERCENTILE_KEYS] if lat.count else (
        ["N/A"] * len(_PERCENTILE_KEYS))
    return [c.requests, failures, round(lat.percentiles_ms["50"]), lat.mean_ms, lat.min_ms, lat.max_ms,
            result.bytes_in / c.requests if c.requests else 0.0, c.requests / duration, failures / duration,
            *percentiles]


def _history_row(result: RunResult, i: IntervalStats, length_s: float) -> list[object]:
    length_s = length_s if length_s > 0 else 1.0
    percentiles: list[object] = [round(i.window_percentiles_ms[k]) for k in _PERCENTILE_KEYS] if i.requests else (
        ["N/A"] * len(_PERCENTILE_KEYS))
    return [int(result.started_at_unix + i.end_s), i.users, "", "Aggregated", i.requests / length_s,
            i.failures / length_s, *percentiles, i.total_requests, i.total_failures, round(i.total_median_ms),
            i.total_mean_ms, i.total_min_ms, i.total_max_ms, i.total_mean_bytes]


def _stamp(result: RunResult, offset_s: float) -> str:
    return f"{result.started_at_unix + offset_s:.3f}"
