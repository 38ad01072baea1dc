"""Per-process recording: finished exchanges -> HDR histograms per phase, counts, errors, intervals.

The hot path only appends a finished `Exchange` to `pending`. Every `CHUNK` exchanges `record()` does the
per-request Python work (numpy columns, Server-Timing parsing, error tallies) for that small batch; once
per interval `flush()` records the interval's columns in the histograms in bulk, so recording costs no
Python call per request per phase. The split matters: doing all of it once per interval held the event
loop for ~10 µs per request at once (30 ms each second at 3,000 requests/s), and every arrival due
meanwhile was sent that late. The result of a process is a picklable `WorkerResult` that `aggregate.py`
merges exactly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from inferlab.loadgen.histogram import LatencyHistogram
from inferlab.loadgen.http1 import Exchange
from inferlab.loadgen.result import RequestRecord
from inferlab.loadgen.servertiming import parse_server_timing

PHASES = ("connect", "write", "wait", "read")

#: Finished exchanges taken in at a time: holds the event loop ~0.2 ms, not a whole interval's worth.
CHUNK = 32


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
    """Collects one process's finished exchanges; `record()` every CHUNK, `flush()` per interval, `finish()` at the end.

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
        self._chunks: list[Columns] = []  # the open interval's exchanges, taken in but not yet in the histograms
        self._first = float("inf")
        self._last = 0.0

    def _hist(self, name: str) -> LatencyHistogram:
        hist = self._hists.get(name)
        if hist is None:
            hist = self._hists[name] = LatencyHistogram()
        return hist

    def record(self) -> None:
        """Take in what finished since the last call: the per-request Python work, for a small batch."""
        batch, self.pending = self.pending, []
        measured = [e for e in batch if (e.connect_start or e.sent or e.intended) >= self.warmup_end]
        res = self.result
        res.counts["warmup"] += len(batch) - len(measured)
        if not measured:
            return
        col = _columns(measured)
        spans = [parse_server_timing(e.server_timing) if e.server_timing else {} for e in measured]
        for name in {name for metrics in spans for name in metrics}:
            col[f"server:{name}"] = np.array([metrics.get(name, np.nan) for metrics in spans], dtype=np.float64)
        for e in measured:
            if e.error_kind:
                res.counts["timeouts" if e.error_kind == "timeout" else "errors"] += 1
                self._tally(e.error_kind, e.error, e.done)
            elif e.status >= 400:
                res.counts["http_errors"] += 1
                self._tally("http", e.error or f"HTTP {e.status}", e.done)
        if self.keep_records:
            res.records.extend(self._records(measured, spans))
        self._chunks.append(col)

    def flush(self, now: float, users: int) -> None:
        """Close the interval at `now`: everything it finished goes into the histograms at once."""
        self.record()
        window = LatencyHistogram()
        requests = failures = bytes_in = 0
        if self._chunks:
            col = _concatenate(self._chunks)
            self._chunks = []
            requests, failures, bytes_in = self._record(col, window)
        self.result.windows.append(Window(now - self.start, users, requests, failures, bytes_in, window.encode()))

    def _record(self, col: Columns, window: LatencyHistogram) -> tuple[int, int, int]:
        res = self.result
        n = col["done"].size
        sent = col["sent"] > 0
        start = np.where(col["connect_start"] > 0, col["connect_start"], col["sent"])
        latency = (col["done"] - col["intended"])[sent] * 1000.0
        self._hist("latency").record_ms(latency)
        window.record_ms(latency)
        self._hist("service").record_ms((col["done"] - start)[sent] * 1000.0)
        self._hist("lag").record_ms((start - col["ready"])[sent] * 1000.0)
        status = col["status"]
        complete = (status > 0) & (col["error"] == 0)
        opened = complete & (col["connect_start"] > 0)
        self._hist("connect").record_ms((col["connect_end"] - col["connect_start"])[opened] * 1000.0)
        self._hist("write").record_ms((col["written"] - col["sent"])[complete] * 1000.0)
        self._hist("wait").record_ms((col["first_byte"] - col["written"])[complete] * 1000.0)
        self._hist("read").record_ms((col["done"] - col["first_byte"])[complete] * 1000.0)
        for name in (key for key in col if key.startswith("server:")):
            spans = col[name]
            self._hist(name).record_ms(spans[~np.isnan(spans)])
        if "server:total" in col:
            totals = col["server:total"]
            has = ~np.isnan(totals) & (status > 0)
            self._hist("transport").record_ms(np.maximum((col["done"] - start)[has] * 1000.0 - totals[has], 0.0))
        codes, code_counts = np.unique(status[status > 0], return_counts=True)
        res.status_codes.update({int(code): int(k) for code, k in zip(codes, code_counts, strict=True)})
        failures = int(np.count_nonzero((col["error"] > 0) | (status >= 400)))
        res.counts["requests"] += n
        res.counts["ok"] += n - failures
        bytes_in = int(col["bytes_in"].sum())
        res.bytes_in += bytes_in
        res.bytes_out += int(col["bytes_out"].sum())
        res.body_bytes_in += bytes_in - int(col["head_bytes"].sum())
        self._first = min(self._first, float(start[sent].min()) if sent.any() else self._first)
        self._last = max(self._last, float(col["done"].max()))
        return n, failures, bytes_in

    def _tally(self, kind: str, message: str, at: float) -> None:
        t = at - self.start
        entry = self.result.errors.get((kind, message))
        if entry is None:
            self.result.errors[(kind, message)] = [1, t, t]
        else:
            entry[0] += 1
            entry[2] = t

    def _records(self, batch: list[Exchange], timings: list[dict[str, float]]) -> list[RequestRecord]:
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


#: One batch of exchanges as numpy columns: timestamps, sizes, status, error flag, `server:NAME` spans (NaN: absent).
Columns = dict[str, npt.NDArray[np.float64]]

_FIELDS = ("intended", "ready", "sent", "connect_start", "connect_end", "written", "first_byte", "done", "status",
           "bytes_in", "bytes_out", "head_bytes")
_GET = attrgetter(*_FIELDS)


def _columns(batch: list[Exchange]) -> Columns:
    table = np.array([_GET(e) for e in batch], dtype=np.float64).reshape(len(batch), len(_FIELDS))
    cols = {name: table[:, i] for i, name in enumerate(_FIELDS)}
    cols["error"] = np.array([bool(e.error_kind) for e in batch], dtype=np.float64)
    return cols


def _concatenate(chunks: list[Columns]) -> Columns:
    """One set of columns from several batches; a span a batch never saw is NaN there."""
    if len(chunks) == 1:
        return chunks[0]
    names = {name for chunk in chunks for name in chunk}
    return {name: np.concatenate([chunk[name] if name in chunk else np.full(chunk["done"].size, np.nan)
                                  for chunk in chunks]) for name in names}
