"""The engine against a real loopback server: exact counts, open-loop timing, stalls, phases, failures."""

from __future__ import annotations

import math

from inferlab.loadgen.launch import run
from inferlab.loadgen.plan import LoadPlan, RateShape, Target, ThinkTime
from tests.loadgen.conftest import TinyServer


def _rate(per_s: float, poisson: bool = False) -> RateShape:
    return RateShape(((math.inf, per_s, per_s),), poisson)


def test_closed_loop_sends_exactly_n_even_when_n_is_not_a_multiple_of_c(tiny: TinyServer) -> None:
    before = tiny.requests
    result = run(LoadPlan(Target(tiny.url + "/"), concurrency=7, requests=1003))
    assert result.counts.requests == result.counts.ok == 1003
    assert tiny.requests - before == 1003
    assert result.latency.count == 1003
    assert result.status_codes == {"200": 1003}


def test_two_processes_split_n_exactly_and_merge_histograms(tiny: TinyServer) -> None:
    before = tiny.requests
    result = run(LoadPlan(Target(tiny.url + "/"), concurrency=5, requests=501, processes=2, record_requests=True))
    assert result.counts.requests == 501
    assert tiny.requests - before == 501
    assert result.latency.count == result.service.count == 501
    assert {r.process for r in result.requests} == {0, 1}
    assert sum(i.requests for i in result.intervals) == 501


def test_open_loop_holds_the_rate_within_two_percent_over_ten_seconds(tiny: TinyServer) -> None:
    result = run(LoadPlan(Target(tiny.url + "/"), mode="open", concurrency=20, requests=None, duration_s=10.0,
                          arrivals=_rate(200.0), record_requests=True))
    sent = [r.sent_s for r in result.requests if r.sent_s]
    span = max(sent) - min(sent)
    achieved = (len(sent) - 1) / span
    assert abs(achieved - 200.0) / 200.0 < 0.02
    assert abs(len(sent) - 2000) <= 1
    assert result.self_check.valid, result.self_check.reasons
    assert result.self_check.send_lag.percentiles_ms["99"] < 5.0


def test_a_stall_shows_in_open_loop_p99_while_closed_loop_hides_it(tiny: TinyServer) -> None:
    tiny.stall(0.55, 1.0)
    opened = run(LoadPlan(Target(tiny.url + "/"), mode="open", concurrency=400, requests=None, duration_s=2.0,
                          arrivals=_rate(300.0)))
    tiny.stall(0.55, 1.0)
    closed = run(LoadPlan(Target(tiny.url + "/"), concurrency=2, requests=None, duration_s=2.0))
    assert opened.latency.percentiles_ms["99"] > 800.0  # requests scheduled during the stall waited for it
    assert opened.latency.percentiles_ms["75"] > 200.0  # half the schedule fell in the stall
    assert closed.latency.max_ms > 800.0  # the two stalled users saw it...
    assert closed.latency.percentiles_ms["99"] < 100.0  # ...but their silence kept it out of the percentiles


def test_phases_and_server_timing_are_joined_per_request(tiny: TinyServer) -> None:
    result = run(LoadPlan(Target(tiny.url + "/"), concurrency=2, requests=20, record_requests=True))
    assert len(result.requests) == 20
    for r in result.requests:
        assert r.server_timing_ms == {"decode": 0.1, "queue": 0.2, "infer": 0.3, "encode": 0.05, "total": 0.7}
        assert min(r.write_ms, r.wait_ms, r.read_ms, r.connect_ms) >= 0.0
        assert abs(r.connect_ms + r.write_ms + r.wait_ms + r.read_ms - r.service_ms) < 0.05
        assert r.latency_ms >= r.service_ms - 1e-6
    assert sum(r.connect_ms > 0 for r in result.requests) == 2  # one new connection per user, then reused
    assert set(result.server_timing) == {"decode", "queue", "infer", "encode", "total"}
    assert result.server_timing["infer"].count == 20
    assert result.transport is not None and result.transport.count == 20


def test_timeouts_are_counted_and_do_not_stop_the_run(tiny: TinyServer) -> None:
    result = run(LoadPlan(Target(tiny.url + "/never"), concurrency=3, requests=6, timeout_s=0.2))
    assert result.counts.timeouts == 6
    assert result.counts.ok == 0
    assert result.errors[0].kind == "timeout" and result.errors[0].count == 6
    assert result.latency.min_ms >= 200.0


def test_connection_refused_is_counted_not_raised() -> None:
    result = run(LoadPlan(Target("http://127.0.0.1:9/"), concurrency=2, requests=10))
    assert result.counts.requests == result.counts.errors == 10
    assert result.errors[0].kind == "connect"
    assert "refused" in result.errors[0].message


def test_http_errors_chunked_bodies_and_connection_close_are_handled(tiny: TinyServer) -> None:
    failed = run(LoadPlan(Target(tiny.url + "/status?code=503"), concurrency=2, requests=10))
    assert failed.counts.http_errors == 10 and failed.status_codes == {"503": 10}
    assert failed.success_rate == 0.0
    chunked = run(LoadPlan(Target(tiny.url + "/chunked"), concurrency=2, requests=10))
    assert chunked.counts.ok == 10
    closing = run(LoadPlan(Target(tiny.url + "/close"), concurrency=2, requests=10, record_requests=True))
    assert closing.counts.ok == 10
    assert all(r.connect_ms > 0 for r in closing.requests)  # every request needed a new connection


def test_warmup_requests_are_excluded(tiny: TinyServer) -> None:
    result = run(LoadPlan(Target(tiny.url + "/sleep?ms=20"), concurrency=1, requests=None, duration_s=0.5,
                          warmup_s=0.25))
    assert result.counts.warmup >= 5
    assert result.counts.requests >= 5
    assert result.latency.count == result.counts.requests


def test_per_user_rate_and_think_time_pace_a_closed_loop(tiny: TinyServer) -> None:
    paced = run(LoadPlan(Target(tiny.url + "/"), concurrency=2, requests=None, duration_s=1.0, per_user_rate=10.0))
    assert 16 <= paced.counts.requests <= 22
    thinking = run(LoadPlan(Target(tiny.url + "/"), concurrency=2, requests=6, think=ThinkTime("fixed", 0.05)))
    assert thinking.counts.requests == 6
    assert thinking.duration_s >= 0.1


def test_open_loop_requests_wait_for_a_connection_and_count_from_the_schedule(tiny: TinyServer) -> None:
    result = run(LoadPlan(Target(tiny.url + "/sleep?ms=50"), mode="open", concurrency=1, requests=10,
                          arrivals=_rate(100.0), record_requests=True))
    assert result.counts.ok == 10
    last = max(result.requests, key=lambda r: r.intended_s)
    assert last.latency_ms > 300.0  # queued behind nine 50 ms requests on the one connection
    assert last.service_ms < 150.0
    assert result.self_check.send_lag.percentiles_ms["99"] < 5.0  # waiting for a connection is not lag
