"""RunResult JSON round trip."""

from __future__ import annotations

from inferlab.loadgen.result import (
    SCHEMA,
    Counts,
    Environment,
    ErrorCount,
    IntervalStats,
    LatencySummary,
    RequestRecord,
    RunResult,
    SelfCheck,
)


def _summary(ms: float) -> LatencySummary:
    return LatencySummary(3, ms, ms, ms, 0.0, {"50": ms, "99": ms}, "HISTFAAAA")


def sample_result() -> RunResult:
    record = RequestRecord(0, 0.0, 0.001, 0.2, 0.01, 1.5, 0.1, 1.9, 1.8, 200, 120, 80,
                           server_timing_ms={"infer": 0.4, "total": 1.0})
    return RunResult(
        config={"url": "http://127.0.0.1:1/", "rate": 10.0},
        environment=Environment("0.1.0", "3.11", "linux", "cpu", 2, "host", "uvloop", "2026-01-01T00:00:00Z"),
        mode="open", processes=1, started_at_unix=1.5, duration_s=1.0, warmup_s=0.0,
        counts=Counts(3, 2, 0, 0, 1), requests_per_s=3.0, ok_per_s=2.0, success_rate=2 / 3,
        bytes_in=10, bytes_out=20, latency=_summary(2.0), service=_summary(1.0),
        phases={"wait": _summary(0.5)}, server_timing={"infer": _summary(0.4)}, transport=None,
        status_codes={"200": 2}, errors=(ErrorCount("timeout", "timed out after 1 s", 1, 0.5, 0.5),),
        intervals=(IntervalStats(1.0, 4, 3, 1, {"50": 1.0}, 3, 1, 1.0, 1.0, 1.0, 1.0, 10.0),),
        self_check=SelfCheck(True, (), _summary(0.01), 12.5, 0.1, 5.0, 90.0),
        requests=(record,),
    )


def test_json_round_trip_is_exact() -> None:
    result = sample_result()
    again = RunResult.from_json(result.to_json())
    assert again == result
    assert again.schema == SCHEMA
    assert isinstance(again.requests[0], RequestRecord)
    assert again.requests[0].server_timing_ms == {"infer": 0.4, "total": 1.0}
