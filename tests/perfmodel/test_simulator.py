from __future__ import annotations

import numpy as np
import pytest

from inferlab.errors import InvalidInput
from inferlab.perfmodel.queueing import md1, mm1, mmc
from inferlab.perfmodel.service import ServiceTimes
from inferlab.perfmodel.simulator import (
    BatchPolicy,
    Overhead,
    constant_arrivals,
    fifo_departures,
    poisson_arrivals,
    shared_departures,
    simulate,
    trace_arrivals,
)

EXPONENTIAL = ServiceTimes.from_samples({1: np.random.default_rng(5).exponential(1.0, 200_000)})


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_reproduces_mm1_mean_wait(rho: float) -> None:
    r = simulate(poisson_arrivals(rho, 600_000, seed=1), EXPONENTIAL, BatchPolicy(), seed=2, warmup_fraction=0.01)
    assert r.mean_wait_s == pytest.approx(mm1(rho, 1.0).wait_s, rel=0.03)
    assert r.utilisation == pytest.approx(rho, rel=0.02)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_reproduces_md1_mean_wait(rho: float) -> None:
    arrivals = poisson_arrivals(rho, 300_000, seed=3)
    r = simulate(arrivals, ServiceTimes.constant(1.0), BatchPolicy(), warmup_fraction=0.01)
    assert r.mean_wait_s == pytest.approx(md1(rho, 1.0).wait_s, rel=0.03)
    assert r.mean_queue_length == pytest.approx(md1(rho, 1.0).queue_length, rel=0.04)


def test_reproduces_mmc_mean_wait_with_three_instances() -> None:
    r = simulate(poisson_arrivals(2.4, 300_000, seed=4), EXPONENTIAL, BatchPolicy(instances=3), warmup_fraction=0.01)
    assert r.mean_wait_s == pytest.approx(mmc(2.4, 1.0, 3).wait_s, rel=0.05)


def test_fifo_departures_match_a_plain_loop() -> None:
    rng = np.random.default_rng(0)
    a, s = np.cumsum(rng.exponential(1.0, 500)), rng.exponential(0.9, 500)
    expected, d = [], 0.0
    for ai, si in zip(a, s, strict=True):
        d = max(ai, d) + si
        expected.append(d)
    np.testing.assert_allclose(fifo_departures(a, s), expected)


def test_full_batches_form_when_requests_arrive_faster_than_the_delay() -> None:
    # 8 arrivals every 1 ms, batch of 4 takes 1 ms, delay 100 ms: every batch fills to the maximum.
    r = simulate(constant_arrivals(1000.0, 8), ServiceTimes.constant(0.001), BatchPolicy(4, 0.1))
    assert r.mean_batch_size == 4
    assert r.mean_latency_s == pytest.approx(0.0025)  # the first of a batch waits 3 ms for the rest, the last 0


def test_delay_flushes_a_partial_batch() -> None:
    r = simulate(constant_arrivals(10.0, 3), ServiceTimes.constant(0.001), BatchPolicy(8, 0.005))
    assert r.mean_batch_size == 1
    assert r.mean_latency_s == pytest.approx(0.006)


def test_preferred_size_flushes_early() -> None:
    r = simulate(constant_arrivals(1000.0, 4), ServiceTimes.constant(0.0001), BatchPolicy(8, 1.0, (2,)))
    assert r.mean_batch_size == 2


def test_bounded_queue_drops_the_excess() -> None:
    r = simulate(trace_arrivals(np.zeros(10)), ServiceTimes.constant(1.0), BatchPolicy(max_queue_size=3))
    assert r.completed == 4 and r.dropped == 6  # one taken at once, three wait, the rest are turned away


def test_overhead_serialises_on_the_front_end() -> None:
    r = simulate(trace_arrivals(np.zeros(4)), ServiceTimes.constant(0.0), BatchPolicy(instances=4),
                 Overhead(serial_s=0.01, delay_s=0.002))
    assert r.p99_s == pytest.approx(0.042, rel=0.01)


def test_interpolates_unmeasured_batch_sizes() -> None:
    st = ServiceTimes.from_samples({1: [1.0, 3.0], 4: [4.0, 6.0]})
    assert st.mean(2) == pytest.approx(3.0)
    assert st.mean(7) == pytest.approx(8.0)  # extrapolated from the last two sizes


def test_rejects_bad_policy() -> None:
    with pytest.raises(InvalidInput, match="instances must be >= 1"):
        BatchPolicy(instances=0)


def test_requests_finding_the_system_idle_pay_the_wake_up_penalty() -> None:
    # arrivals 10 ms apart, 1 ms service: every request finds the system idle for 9 ms (the first: forever)
    overhead = Overhead(idle_gap_s=(0.0, 0.002, 0.005), idle_penalty_s=(0.0, 0.0004, 0.001))
    r = simulate(constant_arrivals(100.0, 50), ServiceTimes.constant(0.001), BatchPolicy(), overhead)
    assert r.p50_s == pytest.approx(0.002)
    busy = simulate(constant_arrivals(1000.0, 50), ServiceTimes.constant(0.001), BatchPolicy(), overhead)
    assert busy.p50_s == pytest.approx(0.001)  # back to back: only the first request found it idle


def test_jitter_spreads_latency_without_queueing() -> None:
    jittery = Overhead(jitter_s=(-0.0005, 0.0, 0.0, 0.002))
    r = simulate(constant_arrivals(10.0, 4000), ServiceTimes.constant(0.001), BatchPolicy(), jittery)
    assert r.p50_s == pytest.approx(0.001)
    assert r.p99_s == pytest.approx(0.003)
    assert r.mean_wait_s == pytest.approx(0.0)


def test_the_loop_shares_itself_between_the_requests_it_holds() -> None:
    # Two requests at once, 1 ms of loop work each: processor sharing sends both out at 2 ms (FIFO: 1 and 2 ms).
    assert shared_departures(np.zeros(2), np.array([0.001, 0.001])) == pytest.approx([0.002, 0.002])
    # A short one arriving during a long one overtakes it.
    assert shared_departures(np.array([0.0, 0.001]), np.array([0.005, 0.001])) == pytest.approx([0.006, 0.003])
    # M/D/1 under processor sharing: the mean time in the system is s / (1 - rho) (FIFO: s (1 + rho / (2 (1 - rho)))).
    arrivals = poisson_arrivals(0.5, 200_000, seed=6)
    sojourn = shared_departures(arrivals, np.ones(arrivals.size)) - arrivals
    assert float(sojourn[2000:].mean()) == pytest.approx(1.0 / (1 - 0.5), rel=0.03)


def test_the_front_end_shares_the_loop_and_hands_requests_over_as_they_finish() -> None:
    # 5 ms and 1 ms of loop work (the first found the loop cold): the second leaves first and is batched first.
    overhead = Overhead(serial_s=0.001, idle_gap_s=(0.0, 1.0), idle_loop_s=(0.004, 0.004))
    r = simulate(np.array([0.0, 0.001]), ServiceTimes.constant(0.010), BatchPolicy(), overhead)
    # Loop: the second leaves at 3 ms, the first at 6 ms; one instance: 3-13 ms, then 13-23 ms.
    assert r.mean_latency_s == pytest.approx(((0.013 - 0.001) + 0.023) / 2)


def test_a_batchs_replies_queue_on_the_loop_together() -> None:
    # 1 ms of loop work per request, half of it the reply; four requests 2 ms apart fill a batch of 4.
    overhead = Overhead(serial_s=0.001, reply_share=0.5)
    r = simulate(np.array([0.0, 0.002, 0.004, 0.006]), ServiceTimes.constant(0.010), BatchPolicy(4, 0.1), overhead)
    # In: 0.5 ms each, the last done at 6.5 ms; the batch runs to 16.5 ms; the four replies share the loop: 18.5 ms.
    assert r.mean_latency_s == pytest.approx(0.0185 - 0.003)
    # Charged all on the way in, the batch would end at 17 ms and every reply leave with it.
    whole = simulate(np.array([0.0, 0.002, 0.004, 0.006]), ServiceTimes.constant(0.010), BatchPolicy(4, 0.1),
                     Overhead(serial_s=0.001))
    assert whole.mean_latency_s == pytest.approx(0.017 - 0.003)
