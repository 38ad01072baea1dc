"""Merging a step's windows adds counts and histograms exactly and lays intervals end to end."""

from __future__ import annotations

import numpy as np
import pytest

from inferlab.experiments.windows import merge_windows
from inferlab.importers.records import result_from_records
from inferlab.loadgen.histogram import LatencyHistogram
from inferlab.loadgen.result import RequestRecord, RunResult


def _window(latencies_ms: list[float], status: int = 200) -> RunResult:
    failed = status >= 400
    records = [RequestRecord(index=i, intended_s=i * 0.5, sent_s=i * 0.5, connect_ms=0.0, write_ms=0.0,
                             wait_ms=v, read_ms=0.0, latency_ms=v, service_ms=v, status=status, bytes_in=10,
                             bytes_out=5, error_kind="http" if failed else "", error=f"HTTP {status}" if failed else "")
               for i, v in enumerate(latencies_ms)]
    return result_from_records(records, tool="test", config={}, started_at_unix=1.0)


def test_merged_windows_equal_one_histogram_of_all_values() -> None:
    a, b = [1.0, 2.0, 3.0, 40.0], [5.0, 6.0, 500.0]
    merged = merge_windows([_window(a), _window(b, status=500)])
    expected = LatencyHistogram()
    expected.record_ms(np.array(a + b))
    # Equal within HDR resolution: a decoded histogram knows its max only to its bucket (3 digits).
    wanted = expected.summary().percentiles_ms
    assert merged.latency.percentiles_ms == pytest.approx(wanted, rel=1e-3)
    assert merged.latency.count == 7
    assert (merged.counts.requests, merged.counts.ok, merged.counts.http_errors) == (7, 4, 3)
    assert merged.status_codes == {"200": 4, "500": 3}
    assert merged.bytes_in == 70
    assert merged.success_rate == 4 / 7
    ends = [i.end_s for i in merged.intervals]
    assert ends == sorted(ends) and merged.intervals[-1].total_requests == 7
    assert merged.errors[0].count == 3
    assert [r.sent_s for r in merged.requests] == sorted(r.sent_s for r in merged.requests)


def test_one_window_is_returned_as_is() -> None:
    window = _window([1.0])
    assert merge_windows([window]) is window
