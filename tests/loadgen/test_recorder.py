"""Recording in chunks: the generator never holds a whole interval's requests to record at once, and chunking
changes nothing in what is recorded."""

from __future__ import annotations

import math
from time import perf_counter

import pytest

from inferlab.loadgen import runner
from inferlab.loadgen.histogram import LatencyHistogram
from inferlab.loadgen.http1 import Exchange
from inferlab.loadgen.launch import run
from inferlab.loadgen.plan import LoadPlan, RateShape, Target
from inferlab.loadgen.recorder import CHUNK, Recorder
from tests.loadgen.conftest import TinyServer


def test_open_loop_records_in_chunks_not_once_per_interval(tiny: TinyServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recording a second's requests at once held the event loop for ~30 ms at 3,000/s and made sends late."""
    most = [0]
    after = runner.Driver._after

    def watch(self: runner.Driver, conn: object, ex: Exchange) -> None:
        most[0] = max(most[0], len(self.recorder.pending))
        after(self, conn, ex)  # type: ignore[arg-type]

    monkeypatch.setattr(runner.Driver, "_after", watch)
    result = run(LoadPlan(Target(tiny.url + "/"), mode="open", concurrency=20, requests=600, interval_s=30.0,
                          arrivals=RateShape(((math.inf, 600.0, 600.0),))))
    assert result.counts.ok == 600 and result.latency.count == 600
    assert len(result.intervals) == 1 and result.intervals[0].requests == 600
    assert 0 < most[0] <= CHUNK


def _exchange(index: int, at: float, server_timing: bytes, status: int = 200) -> Exchange:
    ex = Exchange(index, at)
    ex.sent = ex.written = at + 1e-4
    ex.first_byte = ex.done = at + 2e-3
    ex.status, ex.bytes_in, ex.head_bytes = status, 100, 40
    ex.server_timing = server_timing
    return ex


def test_chunks_with_different_server_timing_spans_merge_into_one_interval() -> None:
    t0 = perf_counter()
    rec = Recorder(t0, t0, 0, keep_records=False)
    rec.pending = [_exchange(i, t0 + i * 1e-3, b"infer;dur=1.5, total;dur=1.8") for i in range(CHUNK)]
    rec.record()
    rec.pending = [_exchange(CHUNK + i, t0 + 1.0, b"queue;dur=0.5", 503 if i == 0 else 200) for i in range(5)]
    rec.record()
    rec.pending = [_exchange(CHUNK + 5, t0 + 1.0, b"")]
    rec.flush(t0 + 2.0, users=1)
    out = rec.finish(0, 0.0, 2.0)
    window = out.windows[0]
    assert (window.requests, window.failures, window.bytes_in) == (CHUNK + 6, 1, 100 * (CHUNK + 6))
    assert out.counts["ok"] == CHUNK + 5 and out.counts["http_errors"] == 1
    assert out.status_codes == {200: CHUNK + 5, 503: 1}
    assert out.body_bytes_in == 60 * (CHUNK + 6)
    counts = {name: LatencyHistogram.decode(text).count for name, text in out.histograms.items()}
    assert counts["server:infer"] == counts["server:total"] == counts["transport"] == CHUNK
    assert counts["server:queue"] == 5
    assert counts["latency"] == CHUNK + 6
