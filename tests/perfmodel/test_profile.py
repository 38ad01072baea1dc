from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from inferlab.config import BatchingConfig, ModelConfig
from inferlab.errors import InvalidInput
from inferlab.loadgen.result import RequestRecord
from inferlab.perfmodel.overhead import (
    apply_config,
    encode_call,
    measure_overhead,
    median_infer_s,
    monotone_fit,
    paced_gap_s,
    paced_latencies,
    server_process,
    split_loop_cost,
)
from inferlab.perfmodel.predict import predict
from inferlab.perfmodel.profile import Profile, ProtocolOverhead, record_service_times, unstalled
from tests.conftest import SHARED_MODELS, make_repository


@pytest.fixture(scope="module")
def digits_profile() -> Profile:
    return record_service_times(SHARED_MODELS / "digits_mlp.onnx", "digits", batch_sizes=(1, 4),
                                settings=((1, 1), (2, 1)), seconds_per_point=0.05, max_samples=50)


def test_records_every_setting_and_batch_size(digits_profile: Profile) -> None:
    assert digits_profile.settings() == [(1, 1), (2, 1)]
    samples = digits_profile.service_s["2x1"][4]
    assert len(samples) >= 6 and all(s > 0 for s in samples)  # two instances, at least three calls each
    assert [(s.name, s.shape) for s in digits_profile.inputs] == [("input", (64,))]


def test_profile_round_trips_through_json(digits_profile: Profile, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    digits_profile.save(path)
    assert Profile.load(path) == digits_profile


def test_missing_setting_names_what_was_measured(digits_profile: Profile) -> None:
    with pytest.raises(InvalidInput, match="measured: 1x1, 2x1"):
        digits_profile.service_times(instances=1, threads=2)


def test_not_a_profile_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(InvalidInput, match="not an inferlab profile"):
        Profile.load(path)


def test_overhead_measured_through_a_real_server(digits_profile: Profile, tmp_path: Path) -> None:
    repo = make_repository(tmp_path, {"digits": "digits_mlp"})
    with server_process(repo) as server:
        oh = measure_overhead(server, encode_call("v2-json", "digits", digits_profile.inputs), 1e-5, seconds=0.2)
        binary = measure_overhead(server, encode_call("v2-binary", "digits", digits_profile.inputs), 1e-5, 0.2)
        apply_config(server.url, "digits", ModelConfig(max_batch_size=8, batching=BatchingConfig(enabled=True)))
        assert "max_batch_size: 8" in (repo / "digits" / "config.yaml").read_text()
    assert len(oh.latency_s) >= 20
    assert 0 < oh.serial_s <= float(np.median(oh.latency_s))
    assert oh.delay_s >= 0
    assert binary.serial_s > 0 and len(binary.idle_penalty_s) == len(binary.idle_gap_s)
    assert oh.client_cpu_s > 0 and list(oh.idle_penalty_s) == sorted(oh.idle_penalty_s)
    assert 0 < oh.reply_share < 1  # digits over JSON: encoding the reply is part of the loop's work
    assert oh.rewake_s == oh.wake_s  # a round straight after another costs the loop as much as waking it
    assert oh.infer_scale == 1.0  # digits: the loop, not the instance, is the busier station
    assert 0.00005 < oh.idle_gap_s[1] < 0.005  # paced 0.1 ms apart: a closed loop's 0.25 ms pause came out 0.007 ms


def test_the_wake_up_curve_pools_a_noisy_gap_with_its_neighbours() -> None:
    assert monotone_fit([1.0, 3.0, 2.0, 4.0]) == pytest.approx([1.0, 2.5, 2.5, 4.0])  # the textbook PAVA case
    assert monotone_fit([0.0, 0.1, 0.2]) == pytest.approx([0.0, 0.1, 0.2])  # already monotone: kept
    # One noisy gap at 4.4 ms among ~1 ms ones: a running maximum would put 4.4 ms on every longer gap.
    fit = monotone_fit([0.0, 4.4, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert fit == sorted(fit) and fit[-1] == pytest.approx((4.4 + 6.0) / 7)
    assert sum(fit) == pytest.approx(10.4)  # pooling keeps the total (least squares under the order)


def test_prediction_uses_the_configured_setting() -> None:
    prof = Profile("m", (), {"1x1": {1: (0.010,)}, "2x1": {1: (0.012,)}})
    one = predict(prof, ModelConfig(), 50.0, protocol="none", requests=2000)
    two = predict(prof, ModelConfig(instances=2), 50.0, protocol="none", requests=2000)
    assert one.capacity_rps == pytest.approx(100.0)
    assert two.capacity_rps == pytest.approx(2 / 0.012)
    assert one.sim.completed == 1900  # the first 5% are warm-up


def test_a_lone_batch_of_two_instances_runs_as_long_as_two_at_once() -> None:
    """In the server a lone call on one of two mobilenet_v2 instances took 3.73-3.75 ms, as two computing at once
    in process (3.61-3.72 ms), not as one alone (3.38-3.55 ms): their weights share the caches."""
    prof = Profile("m", (), {"1x1": {1: (0.010,)}, "2x1": {1: (0.012,)}})
    apart = predict(prof, ModelConfig(instances=2), 1.0, protocol="none", arrivals="constant", requests=200)
    assert apart.sim.p99_s == pytest.approx(0.012)


def test_workers_split_the_load_and_the_instances() -> None:
    prof = Profile("m", (), {"1x1": {1: (0.010,)}, "2x1": {1: (0.012,)}})
    two_workers = predict(prof, ModelConfig(instances=2), 100.0, protocol="none", requests=4000, workers=2)
    assert two_workers.policy.instances == 1  # each worker runs one of the two
    assert two_workers.capacity_rps == pytest.approx(2 / 0.012)
    assert two_workers.sim.throughput_rps == pytest.approx(100.0, rel=0.1)


def test_the_loop_and_client_share_the_cores_with_two_instances() -> None:
    """2 cores, two 10 ms instances, a 2 ms/request loop: the cores, not the instances alone, set the capacity."""
    oh = ProtocolOverhead(serial_s=0.002, delay_s=0.0)
    prof = Profile("m", (), {"1x1": {1: (0.010,)}, "2x1": {1: (0.010,)}}, {"v2-json": oh}, {"cpus": 2})
    # At saturation both instances compute, so the loop runs 1.5x slower (3 threads, 2 cores): busy 0.003 s
    # per request; a batch runs 1 + 0.003 rate / 2 times slower: rate * 0.010 * (1 + 0.0015 rate) / 2 = 1.
    expected = (-0.005 + (0.005 ** 2 + 4 * 0.0000075) ** 0.5) / (2 * 0.0000075)
    two = predict(prof, ModelConfig(instances=2), 100.0, requests=4000)
    assert two.capacity_rps == pytest.approx(expected, rel=0.01)
    assert two.capacity_rps < 2 / 0.012  # below what the cores could give if nothing waited for them
    alone = predict(prof, ModelConfig(instances=2), 100.0, protocol="none", requests=4000)
    assert alone.capacity_rps == pytest.approx(200.0)
    assert two.sim.p50_s > alone.sim.p50_s + 0.002  # the loop's cost, and a slower model


def test_a_client_on_this_machine_takes_its_share() -> None:
    oh = ProtocolOverhead(serial_s=0.001, delay_s=0.0, client_cpu_s=0.002)
    prof = Profile("m", (), {"1x1": {1: (0.004,)}, "2x1": {1: (0.004,)}}, {"v2-json": oh}, {"cpus": 2})
    here = predict(prof, ModelConfig(instances=2), 200.0, requests=4000)
    remote = predict(prof, ModelConfig(instances=2), 200.0, requests=4000, client_on_host=False)
    assert here.capacity_rps < remote.capacity_rps
    assert here.sim.p99_s > remote.sim.p99_s


def test_capacity_keeps_the_loop_wake_ups_seen_at_saturation() -> None:
    """Saturated in the profile, half the requests still found the loop idle: capacity assumes no better."""
    oh = ProtocolOverhead(serial_s=0.001, delay_s=0.0, wake_s=0.001, loop_busy=0.5)
    prof = Profile("m", (), {"1x1": {1: (1e-6,)}}, {"v2-json": oh}, {"cpus": 2})
    assert predict(prof, ModelConfig(), 100.0, requests=2000).capacity_rps == pytest.approx(1 / 0.0015, rel=1e-3)
    again = Profile.from_json(prof.to_json())
    assert again.overhead["v2-json"].loop_busy == 0.5 and again.overhead["v2-json"].wake_s == 0.001


def test_calls_preempted_for_most_of_their_time_are_left_out() -> None:
    calls = [(0.00001, 0.0), (0.00001, 0.000001), (0.035, 0.0349), (0.006, 0.0015), (0.010, 0.0004)]
    # The 35 ms call sat off its CPU for all but 0.1 ms: a stall of the machine, not of the model. The 6 ms one
    # was off it for 1.5 ms, a quarter of it: contention for the cores, which the profile is meant to measure.
    assert unstalled(calls) == [0.00001, 0.00001, 0.006, 0.010]
    assert unstalled([(0.02, 0.019)] * 3) == [0.02] * 3  # everything stalled: keep what there is


def record(i: int, lag_ms: float, latency_ms: float) -> RequestRecord:
    """Request `i` of a run paced 1 ms apart."""
    return RequestRecord(i, intended_s=i * 0.001, sent_s=i * 0.001 + lag_ms / 1e3, connect_ms=0.0, write_ms=0.0,
                         wait_ms=0.0, read_ms=0.0, latency_ms=latency_ms, service_ms=latency_ms - lag_ms,
                         status=200, bytes_in=0, bytes_out=0)


def test_paced_runs_time_from_the_schedule_and_skip_the_connection() -> None:
    # Sent every 1 ms; the first opened the connection (1.5 ms: the one meant for 1 ms waited 0.5 ms for it); the
    # others took 0.25 ms, 0.05 ms of it the client's lateness.
    result = SimpleNamespace(requests=[record(2, 0.05, 0.25), record(0, 0.5, 1.5), record(1, 0.5, 0.75),
                                       record(3, 0.05, 0.25)])
    assert paced_latencies(result) == pytest.approx([0.00025, 0.00025])  # from the intended send, lateness in
    assert paced_gap_s(result) == pytest.approx(0.0005)  # idle from a response to the next send: 0.25, 0.75 ms


def test_paced_requests_queued_behind_a_slow_connection_are_not_paced() -> None:
    # The connection took 5 ms to open: the requests meant for 1-4 ms waited for it, not after an idle gap.
    late = [record(i, 5.0 - i, 5.25 - i) for i in range(1, 5)]
    result = SimpleNamespace(requests=[record(0, 4.9, 5.0), *late, *(record(i, 0.05, 0.25) for i in range(5, 9))])
    assert paced_latencies(result) == pytest.approx([0.00025] * 3)  # from 6 ms on; 5 ms followed a 4.25 ms one
    assert paced_gap_s(result) == pytest.approx(0.00075)


def test_the_reply_share_and_rewake_round_trip_and_reach_the_simulation() -> None:
    oh = ProtocolOverhead(serial_s=0.001, delay_s=0.0, reply_share=0.25, rewake_s=0.0002)
    again = Profile.from_json(Profile("m", (), {"1x1": {1: (1e-6,)}}, {"v2-json": oh}).to_json())
    assert again.overhead["v2-json"] == oh
    assert again.overhead_for("v2-json").reply_share == 0.25 and again.overhead_for("v2-json").rewake_s == 0.0002


def test_a_loop_rarely_busy_when_saturated_keeps_its_cost_per_request() -> None:
    # Busy 98%: the difference is all waking (0.13 ms alone, 0.075 ms saturated).
    serial, wake = split_loop_cost(0.00013, 0.000075, 0.98, 0.001)
    assert serial + wake == pytest.approx(0.00013) and serial + wake * 0.02 == pytest.approx(0.000075)
    # Busy 9% (instance-bound): dividing by 0.09 put everything into waking; now a saturated request costs
    # what it cost there and only the rest is waking.
    assert split_loop_cost(0.000407, 0.00034, 0.09, 0.001) == pytest.approx((0.00034, 0.000067))


def test_an_instance_computing_alone_runs_as_slow_as_in_the_server() -> None:
    """The saturated server's `infer` spans (median 3.55 ms) over the lone instance's: the profile's scale."""
    spans = [record(i, 0.0, 4.0) for i in range(5)]
    for r, ms in zip(spans, (3.5, 3.4, 3.6, 90.0), strict=False):  # the 90 ms one was preempted: a median ignores it
        r.server_timing_ms["infer"] = ms  # and the last reported none
    assert median_infer_s(SimpleNamespace(requests=spans)) == pytest.approx(0.00355)
    assert median_infer_s(SimpleNamespace(requests=spans[4:])) == 0.0
    oh = ProtocolOverhead(serial_s=1e-6, delay_s=0.0, infer_scale=1.25)
    prof = Profile("m", (), {"1x1": {1: (0.010,)}, "2x1": {1: (0.012,)}}, {"v2-json": oh}, {"cpus": 8})
    assert Profile.from_json(prof.to_json()).overhead["v2-json"].infer_scale == 1.25
    one = predict(prof, ModelConfig(), 20.0, requests=2000)
    assert one.capacity_rps == pytest.approx(1 / 0.0125, rel=0.01)
    assert one.sim.p50_s == pytest.approx(0.0125, rel=0.02)
    # Two instances: the 2x1 samples were timed beside a neighbour already, and hold the capacity.
    assert predict(prof, ModelConfig(instances=2), 20.0, requests=2000).capacity_rps == pytest.approx(2 / 0.012,
                                                                                                      rel=0.01)
    assert predict(prof, ModelConfig(), 20.0, protocol="none", requests=2000).capacity_rps == pytest.approx(100.0)
