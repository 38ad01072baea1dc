"""Core sharing (mean-field processor sharing) and the instance hand-off, against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from inferlab.perfmodel.cores import CpuDemand, stretch
from inferlab.perfmodel.profile import ProtocolOverhead
from inferlab.perfmodel.service import ServiceTimes
from inferlab.perfmodel.simulator import (
    BatchPolicy,
    Overhead,
    constant_arrivals,
    simulate,
    waking_fifo_departures,
)


def test_no_one_else_busy_means_no_slowdown() -> None:
    idle = stretch(CpuDemand(cores=2, loop_s=0.0), rate_rps=100.0, instance_busy=0.0, instances=2)
    assert idle.loop == pytest.approx(1.0) and idle.model == pytest.approx((1.0, 1.0))
    # Instances busy half the time each: the loop finds both computing a quarter of the time (3 threads).
    half = stretch(CpuDemand(cores=2, loop_s=0.0), rate_rps=100.0, instance_busy=0.5, instances=2)
    assert half.loop == pytest.approx(0.75 + 0.25 * 1.5) and half.model == pytest.approx((1.0, 1.0))


def test_threads_beyond_the_cores_share_them_evenly() -> None:
    # The loop is always busy: with two instances computing, three threads share two cores.
    s = stretch(CpuDemand(cores=2, loop_s=0.01), rate_rps=100.0, instance_busy=1.0, instances=2)
    assert s.loop_busy == 1.0
    assert s.model == pytest.approx((1.0, 1.5))  # one instance + the loop fit; two + the loop do not
    assert s.loop == pytest.approx(1.5)
    # Add a client busy half the time: a two-busy batch sees 3 or 4 threads, 1.5 or 2 times slower.
    c = stretch(CpuDemand(cores=2, loop_s=0.01, client_s=0.005), 100.0, 1.0, 2)
    assert c.client_busy == pytest.approx(0.5)
    assert c.model[1] == pytest.approx(0.5 * 1.5 + 0.5 * 2.0)
    assert c.model[0] == pytest.approx(0.5 * 1.0 + 0.5 * 1.5)


def test_two_workers_count_each_others_loops_and_instances() -> None:
    one = stretch(CpuDemand(cores=2, loop_s=0.005), 100.0, 1.0, 1)
    assert one.loop == pytest.approx(1.0) and one.model == pytest.approx((1.0,))  # a loop and an instance fit
    two = stretch(CpuDemand(cores=2, loop_s=0.002, workers=2), 100.0, 1.0, 1)
    # Each loop is busy U = 0.2 f with f = 1.5 (1 - U) + 2 U (two instances and maybe the other loop): U = 1/3.
    assert two.loop_busy == pytest.approx(1 / 3) and two.loop == pytest.approx(5 / 3)
    assert two.model == pytest.approx(((4 + 4 * 1.5 + 1 * 2.0) / 9,))  # 0, 1 or 2 loops beside two instances


def test_handoff_holds_the_instance_but_not_the_request() -> None:
    policy = BatchPolicy()
    slow = simulate(constant_arrivals(50.0, 400), ServiceTimes.constant(0.010), policy, Overhead(handoff_s=0.005))
    assert slow.p50_s == pytest.approx(0.010)  # an idle instance: the hand-off is not in the latency
    over = simulate(constant_arrivals(200.0, 2000), ServiceTimes.constant(0.010), policy, Overhead(handoff_s=0.005))
    assert over.throughput_rps == pytest.approx(1 / 0.015, rel=0.01)  # saturated: one batch per 15 ms
    assert np.isclose(over.utilisation, 1.0)


def test_only_requests_finding_the_loop_idle_pay_for_waking_it() -> None:
    burst = waking_fifo_departures(np.zeros(4), serial_s=0.001, wake_s=0.002)
    assert burst == pytest.approx([0.003, 0.004, 0.005, 0.006])  # one wake-up for the whole burst
    apart = waking_fifo_departures(np.array([0.0, 1.0, 2.0]), 0.001, 0.002)
    assert apart == pytest.approx([0.003, 1.003, 2.003])
    # One arriving while a round of the loop's work runs is served in the next round, which costs rewake_s.
    rounds = waking_fifo_departures(np.array([0.0, 0.001, 0.0015]), 0.001, 0.002, rewake_s=0.0015)
    assert rounds == pytest.approx([0.003, 0.0055, 0.0065])
    result = simulate(np.array([0.0, 1.0, 2.0]), ServiceTimes.constant(0.0), BatchPolicy(),
                      Overhead(serial_s=0.001, wake_s=0.002))
    assert result.p50_s == pytest.approx(0.003)
    # The loop's utilisation counts the wake-ups of the requests that find it idle.
    s = stretch(CpuDemand(cores=2, loop_s=0.001, wake_s=0.001), rate_rps=100.0, instance_busy=0.0, instances=1)
    assert s.loop_busy == pytest.approx(0.1 * (1 + (1 - s.loop_busy)))


def test_a_batch_slows_for_the_share_of_its_time_the_simulated_loop_works() -> None:
    arrivals = np.array([0.0, 0.010])  # the loop parses the second while the first one's batch runs
    front = Overhead(serial_s=0.010)
    plain = simulate(arrivals, ServiceTimes.constant(0.010), BatchPolicy(), front)
    shared = simulate(arrivals, ServiceTimes.constant(0.010), BatchPolicy(), front, model_stretch=((1.0, 2.0),))
    assert plain.mean_latency_s == pytest.approx(0.020)
    # First batch 0.010-0.030: the loop works all its (unstretched) 10 ms, so it runs 2x; the second starts at
    # 0.030 with the loop idle and ends at 0.040.
    assert shared.mean_latency_s == pytest.approx((0.030 + 0.030) / 2)


def test_the_batcher_spins_the_loop_for_the_last_tick_of_each_wait() -> None:
    # One request every 10 ms, 1 ms of service: each waits out the 2 ms delay alone, the last 1 ms spinning.
    policy = BatchPolicy(max_batch_size=8, max_queue_delay_s=0.002, spin_s=0.001)
    r = simulate(constant_arrivals(100.0, 200), ServiceTimes.constant(0.001), policy)
    assert r.loop_spin == pytest.approx(0.001 / 0.010, rel=0.02)
    short = simulate(constant_arrivals(100.0, 200), ServiceTimes.constant(0.001),
                     BatchPolicy(max_batch_size=8, max_queue_delay_s=0.0005, spin_s=0.001))
    assert short.loop_spin == pytest.approx(0.0005 / 0.010, rel=0.02)  # a wait shorter than a tick spins throughout
    # Eight at once fill the batch: nobody waits, nothing spins.
    full = simulate(np.zeros(8), ServiceTimes.constant(0.001), policy)
    assert full.loop_spin == 0.0


def test_a_spinning_loop_takes_a_core_from_the_instances() -> None:
    # Two busy single-threaded instances on two cores: alone they fit; with the loop runnable, 3 threads share 2.
    demand = CpuDemand(cores=2, loop_s=0.0)
    assert stretch(demand, 100.0, 1.0, 2).model[1] == pytest.approx(1.0)
    assert stretch(demand, 100.0, 1.0, 2, loop_spin=1.0).model[1] == pytest.approx(1.5)
    assert stretch(demand, 100.0, 1.0, 2, loop_spin=0.5).model[1] == pytest.approx(1.25)
    # In the simulation only a batch that leaves an instance free can overlap a spinning wait.
    service = ServiceTimes.constant(0.010)
    slow = ((1.0, 2.0),)
    one = simulate(np.zeros(1), service, BatchPolicy(instances=2), model_stretch=slow, loop_spin=0.5)
    assert one.mean_latency_s == pytest.approx(0.015)
    alone = simulate(np.zeros(1), service, BatchPolicy(), model_stretch=slow, loop_spin=0.5)
    assert alone.mean_latency_s == pytest.approx(0.010)


def test_a_loop_that_slept_runs_its_next_request_from_cold_caches() -> None:
    cold = {"idle_gap_s": (0.0, 1.0), "idle_extra_s": (0.0, 0.002)}
    out = waking_fifo_departures(np.array([0.0, 1.0]), 0.001, 0.0, **cold)
    assert out == pytest.approx([0.003, 1.0 + 0.001 + 0.002 * 0.997])  # asleep forever, then for 0.997 s
    # Unlike the wake-up delay, the cold start holds the loop: the request behind it waits.
    overhead = Overhead(serial_s=0.001, idle_gap_s=(0.0, 1.0), idle_loop_s=(0.005, 0.005))
    r = simulate(np.array([0.0, 0.001]), ServiceTimes.constant(0.0), BatchPolicy(), overhead)
    # The second shares the loop with the first's cold start: 2 ms for its 1 ms; the first leaves at 7 ms
    # (FIFO: the second would wait 5 ms for it).
    assert r.mean_latency_s == pytest.approx((0.007 + 0.002) / 2)
    # Its mean over Poisson arrivals: the loop has slept an exponential time, E[0.002 min(X, 1)] at rate 1.
    demand = CpuDemand(cores=2, loop_s=0.001, idle_gap_s=(0.0, 1.0), idle_loop_s=(0.0, 0.002))
    assert demand.cold_s(1.0) == pytest.approx(0.002 * (1 - np.exp(-1.0)), rel=0.01)
    assert stretch(demand, 100.0, 0.0, 1).loop_busy > stretch(CpuDemand(cores=2, loop_s=0.001), 100.0, 0.0, 1).loop_busy


def test_the_profile_splits_the_wake_up_penalty_into_loop_cpu_and_delay() -> None:
    oh = ProtocolOverhead(serial_s=0.001, delay_s=0.0, idle_gap_s=(0.0, 0.001, 0.01),
                          idle_penalty_s=(0.0, 0.0005, 0.001), idle_loop_s=(0.0, 0.0002, 0.0012)).as_overhead()
    assert oh.idle_loop_s == pytest.approx((0.0, 0.0002, 0.0012))
    assert oh.idle_penalty_s == pytest.approx((0.0, 0.0003, 0.0))  # the rest of the penalty, never below zero
