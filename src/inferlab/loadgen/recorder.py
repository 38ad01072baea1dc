"""Per-process recording: finished exchanges -> HDR histograms per phase, counts, errors, intervals.

The hot path only appends a finished `Exchange` to `pending`; once per interval `flush()` turns the batch
into numpy columns and records them in bulk, so recording costs no Python call per request per phase.
The result of a process is a picklable `WorkerResult` that `aggregate.py` merges exactly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from inferlab.loadgen.histogram import LatencyHistogram
from inferlab.loadgen.http1 import Exchange
from inferlab.loadgen.result import RequestRecord
from inferlab.loadgen.servertiming import parse_server_timing

PHASES = ("connect", "write", "wait", "read")


@dataclass(slots=True)
class Window:
    """What one process completed in one interval."""

    end_s: float
    users: int
    requests: int
    failures: int
    bytes_in: int
    latency: str  # encoded histogram of the window's latencies


@dataclass(slots=True)
class WorkerResult:
    """Everything one generator process measured, ready to merge with its siblings."""

    process: int
    histograms: dict[str, str] = field(default_factory=dict)  # latency, service, lag, transport, phases, server:NAME
    clamped: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # requests ok http_errors errors timeouts warmup not_sent
    status_codes: Counter[int] = field(default_factory=Counter)
    errors: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (kind, message) -> [n, first, last]
    windows: list[Window] = field(default_factory=list)
    records: list[RequestRecord] = field(default_factory=list)
    bytes_in: int = 0
    body_bytes_in: int = 0
    bytes_out: int = 0
    first_start_s: float = 0.0
    last_done_s: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0


class Recorder:
    """Collects one process's finished exchanges; `flush()` once per interval, `finish()` at the end.

    Example:
        >>> rec = Recorder(start=t0, warmup_end=t0, process=0, keep_records=False)
        >>> rec.pending.append(exchange)      # from the connection callbacks
        >>> rec.flush(now=perf_counter(), users=8)
    """

    def __init__(self, start: float, warmup_end: float, process: int, keep_records: bool) -> None:
        self.start = start
        self.warmup_end = warmup_end
        self.keep_records = keep_records
        self.pending: list[Exchange] = []
        self.result = WorkerResult(process)
        self._hists: dict[str, LatencyHistogram] = {}
        self._first = float("inf")
        self._last = 0.0

    def _hist(self, name: str) -> LatencyHistogram:
        hist = self._hists.get(name)
        if hist is None:
            hist = self._hists[name] = LatencyHistogram()
        return hist

    def flush(self, now: float, users: int) -> None:
        """Record everything finished since the last flush as one interval ending at `now`."""
        batch, self.pending = self.pending, []
        res = self.result
        measured = [e for e in batch if (e.connect_start or e.sent or e.intended) >= self.warmup_end]
        res.counts["warmup"] += len(batch) - len(measured)
        window = LatencyHistogram()
        failures = 0
        bytes_in = 0
        if measured:
            failures, bytes_in = self._record(measured, window)
        res.windows.append(Window(now - self.start, users, len(measured), failures, bytes_in, window.encode()))

    def _record(self, batch: list[Exchange], window: LatencyHistogram) -> tuple[int, int]:
        res = self.result
        n = len(batch)
        col = _columns(batch)
        sent = col["sent"] > 0
        start = np.where(col["connect_start"] > 0, col["connect_start"], col["sent"])
        latency = (col["done"] - col["intended"])[sent] * 1000.0
        service = (col["done"] - start)[sent] * 1000.0
        self._hist("latency").record_ms(latency)
        window.record_ms(latency)
        self._hist("service").record_ms(service)
        self._hist("lag").record_ms((start - col["ready"])[sent] * 1000.0)
        status = col["status"]
        complete = (status > 0) & np.array([not e.error_kind for e in batch], dtype=bool)
        opened = complete & (col["connect_start"] > 0)
        self._hist("connect").record_ms((col["connect_end"] - col["connect_start"])[opened] * 1000.0)
        self._hist("write").record_ms((col["written"] - col["sent"])[complete] * 1000.0)
        self._hist("wait").record_ms((col["first_byte"] - col["written"])[complete] * 1000.0)
        self._hist("read").record_ms((col["done"] - col["first_byte"])[complete] * 1000.0)
        timings = self._server_timings(batch, col)
        res.status_codes.update(int(s) for s in status[status > 0])
        failures = 0
        for e in batch:
            if e.error_kind:
                res.counts["timeouts" if e.error_kind == "timeout" else "errors"] += 1
                self._tally(e.error_kind, e.error, e.done)
            elif e.status >= 400:
                res.counts["http_errors"] += 1
                self._tally("http", e.error or f"HTTP {e.status}", e.done)
            else:
                continue
            failures += 1
        res.counts["requests"] += n
        res.counts["ok"] += n - failures
        bytes_in = int(col["bytes_in"].sum())
        res.bytes_in += bytes_in
        res.bytes_out += int(col["bytes_out"].sum())
        res.body_bytes_in += bytes_in - sum(e.head_bytes for e in batch)
        self._first = min(self._first, float(start[sent].min()) if sent.any() else self._first)
        self._last = max(self._last, float(col["done"].max()))
        if self.keep_records:
            res.records.extend(self._records(batch, col, timings))
        return failures, bytes_in

    def _server_timings(self, batch: list[Exchange], col: dict[str, npt.NDArray[np.float64]]) -> list[dict[str, float]]:
        parsed = [parse_server_timing(e.server_timing) if e.server_timing else {} for e in batch]
        names = {name for spans in parsed for name in spans}
        for name in names:
            self._hist(f"server:{name}").record_ms(np.array([s[name] for s in parsed if name in s]))
        if "total" in names:
            totals = np.array([s.get("total", np.nan) for s in parsed])
            has = ~np.isnan(totals) & (col["status"] > 0)
            start = np.where(col["connect_start"] > 0, col["connect_start"], col["sent"])
            self._hist("transport").record_ms(np.maximum((col["done"] - start)[has] * 1000.0 - totals[has], 0.0))
        return parsed

    def _tally(self, kind: str, message: str, at: float) -> None:
        t = at - self.start
        entry = self.result.errors.get((kind, message))
        if entry is None:
            self.result.errors[(kind, message)] = [1, t, t]
        else:
            entry[0] += 1
            entry[2] = t

    def _records(self, batch: list[Exchange], col: dict[str, npt.NDArray[np.float64]],
                 timings: list[dict[str, float]]) -> list[RequestRecord]:
        s = self.start
        process = self.result.process
        out = []
        for e, spans in zip(batch, timings, strict=True):
            begin = e.connect_start or e.sent
            complete = e.status > 0 and not e.error_kind
            out.append(RequestRecord(
                index=e.index, intended_s=e.intended - s, sent_s=(e.sent - s) if e.sent else 0.0,
                connect_ms=(e.connect_end - e.connect_start) * 1000.0 if e.connect_start and e.connect_end else 0.0,
                write_ms=(e.written - e.sent) * 1000.0 if complete else 0.0,
                wait_ms=(e.first_byte - e.written) * 1000.0 if complete else 0.0,
                read_ms=(e.done - e.first_byte) * 1000.0 if complete else 0.0,
                latency_ms=(e.done - e.intended) * 1000.0 if e.sent else 0.0,
                service_ms=(e.done - begin) * 1000.0 if e.sent else 0.0,
                status=e.status, bytes_in=e.bytes_in, bytes_out=e.bytes_out, error_kind=e.error_kind,
                error=e.error, server_timing_ms=spans, process=process,
            ))
        return out

    def finish(self, not_sent: int, cpu_s: float, wall_s: float) -> WorkerResult:
        res = self.result
        res.counts["not_sent"] += not_sent
        res.histograms = {name: hist.encode() for name, hist in self._hists.items()}
        res.clamped = sum(h.clamped for h in self._hists.values())
        res.first_start_s = self._first - self.start if self._last else 0.0
        res.last_done_s = self._last - self.start if self._last else 0.0
        res.cpu_s = cpu_s
        res.wall_s = wall_s
        return res


_FLOAT_FIELDS = ("intended", "ready", "sent", "connect_start", "connect_end", "written", "first_byte", "done")


def _columns(batch: list[Exchange]) -> dict[str, npt.NDArray[np.float64]]:
    n = len(batch)
    cols = {name: np.fromiter((getattr(e, name) for e in batch), np.float64, n) for name in _FLOAT_FIELDS}
    cols["status"] = np.fromiter((e.status for e in batch), np.float64, n)
    cols["bytes_in"] = np.fromiter((e.bytes_in for e in batch), np.float64, n)
    cols["bytes_out"] = np.fromiter((e.bytes_out for e in batch), np.float64, n)
    return cols
