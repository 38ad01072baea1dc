"""locust `--csv PREFIX` files -> RunResult: `_stats.csv` (Aggregated row), `_stats_history.csv`, `_failures.csv`.

locust keeps no per-request data, so the result carries its aggregate numbers as they are: percentiles
rounded to locust's 2-significant-digit buckets, no histogram to merge, no phases and no stdev.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from inferlab.errors import InvalidInput
from inferlab.importers.records import WINDOW_PERCENTILES, imported_environment, summarize
from inferlab.loadgen.result import (
    Counts,
    ErrorCount,
    IntervalStats,
    LatencySummary,
    RunResult,
    SelfCheck,
    percentile_key,
)

#: Column names across locust versions (issue #1292: older files say "# requests" and so on).
_ALIASES = {
    "Request Count": ("Request Count", "# requests"),
    "Failure Count": ("Failure Count", "# failures"),
    "Median Response Time": ("Median Response Time", "Median response time"),
    "Average Response Time": ("Average Response Time", "Average response time"),
    "Min Response Time": ("Min Response Time", "Min response time"),
    "Max Response Time": ("Max Response Time", "Max response time"),
    "Average Content Size": ("Average Content Size", "Average content size"),
    "Requests/s": ("Requests/s",),
}


def is_locust_stats(path: Path) -> bool:
    return path.name.endswith("_stats.csv")


def import_locust(stats_path: Path) -> RunResult:
    """Read PREFIX_stats.csv and, when present beside it, PREFIX_stats_history.csv and PREFIX_failures.csv."""
    prefix = str(stats_path)[: -len("_stats.csv")]
    history_path, failures_path = Path(prefix + "_stats_history.csv"), Path(prefix + "_failures.csv")
    aggregated = _aggregated_row(stats_path)
    history = _rows(history_path.read_text()) if history_path.is_file() else []
    history = [row for row in history if row.get("Name") == "Aggregated"]
    failures = _rows(failures_path.read_text()) if failures_path.is_file() else []
    requests, failed = int(_get(aggregated, "Request Count")), int(_get(aggregated, "Failure Count"))
    rate = float(_get(aggregated, "Requests/s"))
    started = float(history[0]["Timestamp"]) if history else 0.0
    duration = requests / rate if rate > 0 else 0.0
    latency = LatencySummary(
        count=requests, min_ms=float(_get(aggregated, "Min Response Time")),
        mean_ms=float(_get(aggregated, "Average Response Time")),
        max_ms=float(_get(aggregated, "Max Response Time")), stdev_ms=0.0,
        percentiles_ms=_percentiles(aggregated),
    )
    users = max((int(row.get("User Count") or 0) for row in history), default=0)
    errors = tuple(ErrorCount(kind="http" if "HTTP" in row["Error"] else "protocol", message=row["Error"],
                              count=int(row["Occurrences"]), first_seen_s=0.0, last_seen_s=0.0)
                   for row in failures)
    empty = summarize([])
    return RunResult(
        config={"tool": "locust", "source": stats_path.name, "load": {"mode": "closed", "concurrency": users}},
        environment=imported_environment("locust", started),
        mode="closed", processes=1, started_at_unix=started, duration_s=duration, warmup_s=0.0,
        counts=Counts(requests=requests, ok=requests - failed, http_errors=0, errors=failed, timeouts=0),
        requests_per_s=rate, ok_per_s=(requests - failed) / duration if duration else 0.0,
        success_rate=(requests - failed) / requests if requests else 1.0,
        bytes_in=round(float(_get(aggregated, "Average Content Size")) * requests), bytes_out=0,
        latency=latency, service=latency, phases={}, server_timing={}, transport=None, status_codes={},
        errors=errors, intervals=_intervals(history, started),
        self_check=SelfCheck(valid=True, reasons=(), send_lag=empty, cpu_percent=0.0, cpu_seconds=0.0,
                             max_lag_p99_ms=0.0, max_cpu_percent=0.0),
    )


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _aggregated_row(path: Path) -> dict[str, str]:
    rows = _rows(path.read_text())
    for row in rows:
        if row.get("Name") == "Aggregated" or row.get("Name", "").lower() == "total":
            return row
    raise InvalidInput(f"{path.name}: not a locust stats file; expected a row named 'Aggregated'")


def _get(row: dict[str, str], column: str) -> str:
    for name in _ALIASES.get(column, (column,)):
        if name in row and row[name] not in ("", "N/A"):
            return row[name]
    return "0"


def _percentiles(row: dict[str, str]) -> dict[str, float]:
    """Only the percentiles locust wrote; ours it lacks (10, 25) stay absent rather than made up."""
    out = {}
    for p in WINDOW_PERCENTILES:
        value = row.get(f"{p:g}%")
        if value not in (None, "", "N/A"):
            out[percentile_key(p)] = float(value)
    return out


def _intervals(history: list[dict[str, str]], started: float) -> tuple[IntervalStats, ...]:
    rows = []
    previous_requests = previous_failures = 0
    for row in history:
        total_requests = int(row.get("Total Request Count") or 0)
        total_failures = int(row.get("Total Failure Count") or 0)
        rows.append(IntervalStats(
            end_s=float(row["Timestamp"]) - started + 1.0,
            users=int(row.get("User Count") or 0),
            requests=total_requests - previous_requests,
            failures=total_failures - previous_failures,
            window_percentiles_ms=_percentiles(row),
            total_requests=total_requests, total_failures=total_failures,
            total_median_ms=float(row.get("Total Median Response Time") or 0),
            total_mean_ms=float(row.get("Total Average Response Time") or 0),
            total_min_ms=float(row.get("Total Min Response Time") or 0),
            total_max_ms=float(row.get("Total Max Response Time") or 0),
            total_mean_bytes=float(row.get("Total Average Content Size") or 0),
        ))
        previous_requests, previous_failures = total_requests, total_failures
    return tuple(rows)
