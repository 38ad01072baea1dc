"""The load generator's result schema: per-request records and one RunResult, with exact JSON round trips.

Everything a report, an experiment or the performance model needs from a run is in `RunResult`; the
schema is documented field by field in docs/loadgen.md and versioned by `SCHEMA`. Times in summaries
are milliseconds (`_ms`), times on a run's clock are seconds since the run started (`_s`).

Example:
    >>> result = RunResult.from_json(path.read_text())
    >>> result.latency.percentiles_ms["99"], result.counts.timeouts, result.self_check.valid
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import orjson

SCHEMA = "inferlab.loadgen.result/1"

#: Percentiles every LatencySummary carries (keys of `percentiles_ms`): hey's, locust's and wrk2's together.
PERCENTILES = (10.0, 25.0, 50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0)

#: Error kinds (`RequestRecord.error_kind`, `ErrorCount.kind`). "http" is a response with status >= 400.
ERROR_KINDS = ("connect", "timeout", "closed", "protocol", "http")


def percentile_key(p: float) -> str:
    """The key a percentile has in `percentiles_ms`: "50", "99.9" (no trailing zeros)."""
    return f"{p:g}"


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the client saw it, with the server's own `Server-Timing` spans joined to it.

    Phases follow hey: `connect_ms` (0 on a reused connection), `write_ms` (request handed to the socket),
    `wait_ms` (written -> first response byte), `read_ms` (first byte -> last byte).
    `latency_ms` runs from the intended send time (open loop: the schedule; closed loop: when the user
    was ready to send), `service_ms` from the actual send; their difference is time spent waiting to send.
    """

    index: int
    intended_s: float
    sent_s: float
    connect_ms: float
    write_ms: float
    wait_ms: float
    read_ms: float
    latency_ms: float
    service_ms: float
    status: int  # 0 when no response arrived
    bytes_in: int
    bytes_out: int
    error_kind: str = ""  # "" or one of ERROR_KINDS
    error: str = ""  # the message, e.g. "connection refused"
    server_timing_ms: dict[str, float] = field(default_factory=dict)
    process: int = 0


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """A distribution from an HDR histogram (microsecond units, 3 significant digits) shown in ms.

    `histogram` is the base64 HdrHistogram encoding, so runs (or processes) can be merged exactly later.
    """

    count: int
    min_ms: float
    mean_ms: float
    max_ms: float
    stdev_ms: float
    percentiles_ms: dict[str, float]
    histogram: str = ""


@dataclass(frozen=True, slots=True)
class Counts:
    """Every request the generator meant to send, counted once: requests = ok + http_errors + errors + timeouts.

    `not_sent` are scheduled arrivals that were still waiting for a connection when the run ended (open
    loop); they are counted, not hidden, and are part of neither `requests` nor the histograms.
    """

    requests: int
    ok: int
    http_errors: int
    errors: int
    timeouts: int
    not_sent: int = 0
    warmup: int = 0  # requests started during warm-up: sent, but excluded from everything else


@dataclass(frozen=True, slots=True)
class ErrorCount:
    """Failures of one kind and message (hey's "Error distribution", locust's _failures.csv)."""

    kind: str
    message: str
    count: int
    first_seen_s: float
    last_seen_s: float


@dataclass(frozen=True, slots=True)
class IntervalStats:
    """One interval of the run (1 s by default): what locust's _stats_history.csv and time plots need.

    `window_*` describe requests completed in this interval; `total_*` everything completed up to its end.
    """

    end_s: float
    users: int  # connections busy or open (closed loop: active users)
    requests: int
    failures: int
    window_percentiles_ms: dict[str, float]
    total_requests: int
    total_failures: int
    total_median_ms: float
    total_mean_ms: float
    total_min_ms: float
    total_max_ms: float
    total_mean_bytes: float


@dataclass(frozen=True, slots=True)
class SelfCheck:
    """Could the generator keep up? A run is invalid when sends ran late or the generator ran out of CPU.

    `send_lag` is actual minus scheduled send time for every request (only the generator's own lateness:
    waiting for a free connection is not lag). `cpu_percent` is the busiest worker process's CPU over the run.
    """

    valid: bool
    reasons: tuple[str, ...]
    send_lag: LatencySummary
    cpu_percent: float
    cpu_seconds: float
    max_lag_p99_ms: float
    max_cpu_percent: float


@dataclass(frozen=True, slots=True)
class Environment:
    """Where the run happened, so a number can be traced back to the machine and versions that made it."""

    inferlab_version: str
    python: str
    platform: str
    cpu_model: str
    cpu_count: int
    hostname: str
    event_loop: str
    started_at: str  # ISO 8601 UTC
    argv: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of one run. `to_json()`/`from_json()` round-trip exactly; see docs/loadgen.md."""

    config: dict[str, Any]
    environment: Environment
    mode: str  # "open" or "closed"
    processes: int
    started_at_unix: float
    duration_s: float  # the measured window: first measured send to last completion
    warmup_s: float
    counts: Counts
    requests_per_s: float  # every measured request (errors included, as hey counts) per second
    ok_per_s: float
    success_rate: float  # ok / requests (1.0 when there were none)
    bytes_in: int
    bytes_out: int
    latency: LatencySummary  # from the intended send time (coordinated-omission free)
    service: LatencySummary  # from the actual send time
    phases: dict[str, LatencySummary]  # connect, write, wait, read
    server_timing: dict[str, LatencySummary]  # Server-Timing name -> its durations
    transport: LatencySummary | None  # service time minus the server's "total" span, per request
    status_codes: dict[str, int]
    errors: tuple[ErrorCount, ...]
    intervals: tuple[IntervalStats, ...]
    self_check: SelfCheck
    body_bytes_in: int = 0  # response bodies only (hey's "Total data")
    requests: tuple[RequestRecord, ...] = ()  # only when per-request records were asked for
    schema: str = SCHEMA

    def to_json(self, indent: bool = True) -> str:
        option = orjson.OPT_INDENT_2 if indent else 0
        return orjson.dumps(dataclasses.asdict(self), option=option).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> RunResult:
        data = orjson.loads(text)
        if data.get("schema") != SCHEMA:
            raise ValueError(f"result schema {data.get('schema')!r} is not {SCHEMA!r}")
        built: RunResult = _build(cls, data)
        return built


def _build(kind: Any, value: Any) -> Any:
    """Rebuild typed values from JSON data by walking the dataclass type hints."""
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        hints = typing.get_type_hints(kind)
        names = [f.name for f in dataclasses.fields(kind) if f.name in value]
        return kind(**{name: _build(hints[name], value[name]) for name in names})
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        return _build(next(a for a in args if a is not type(None)), value)
    if origin is tuple:
        return tuple(_build(args[0], v) for v in value)
    if origin is dict:
        return {k: _build(args[1], v) for k, v in value.items()}
    if kind is float:
        return float(value)
    return value
