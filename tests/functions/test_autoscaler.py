"""The scaling policy and the idle-gap histogram, as pure functions."""

from __future__ import annotations

import pytest

from inferlab.functions.autoscaler import IdleHistogram, KeepWarmWindow, ScaleInputs, ScalePolicy

POLICY = ScalePolicy(min_instances=0, max_instances=5, concurrency=2, idle_timeout_s=10.0)


@pytest.mark.parametrize(("demand", "target"), [(1, 1), (2, 1), (3, 2), (8, 4), (50, 5)])
def test_load_keeps_inflight_per_instance_near_the_target(demand: int, target: int) -> None:
    assert POLICY.decide(ScaleInputs(current=1, demand=demand, idle_s=0)).target == target


def test_capped_at_max_says_so() -> None:
    decision = POLICY.decide(ScaleInputs(current=5, demand=50, idle_s=0))
    assert decision.target == 5 and "max_instances" in decision.reason


def test_idle_keeps_one_warm_until_the_timeout_then_zero() -> None:
    assert POLICY.decide(ScaleInputs(current=3, demand=0, idle_s=1)).target == 1
    decision = POLICY.decide(ScaleInputs(current=1, demand=0, idle_s=10))
    assert (decision.target, decision.reason) == (0, "idle timeout")
    assert POLICY.decide(ScaleInputs(current=0, demand=0, idle_s=1)).target == 0  # nothing to keep warm


def test_min_instances_and_manual_floor() -> None:
    policy = ScalePolicy(min_instances=2, max_instances=5, concurrency=1, idle_timeout_s=1)
    assert policy.decide(ScaleInputs(current=2, demand=0, idle_s=100)).target == 2
    decision = POLICY.decide(ScaleInputs(current=0, demand=0, idle_s=100, floor=3))
    assert (decision.target, decision.reason) == (3, "manual scale")


def test_keep_warm_window_unloads_then_prewarms() -> None:
    window = KeepWarmWindow(prewarm_s=4.0, keepalive_s=2.0)
    assert POLICY.decide(ScaleInputs(current=1, demand=0, idle_s=1), window).target == 0
    prewarm = POLICY.decide(ScaleInputs(current=0, demand=0, idle_s=4.5), window)
    assert (prewarm.target, prewarm.reason) == (1, "pre-warm (histogram)")
    assert POLICY.decide(ScaleInputs(current=1, demand=0, idle_s=6.5), window).target == 0


def test_histogram_window_brackets_the_gaps() -> None:
    histogram = IdleHistogram()
    for gap in [5.0, 5.2, 4.9, 5.1, 5.3, 4.8, 5.0, 5.05, 4.95, 5.15]:
        histogram.record(gap)
    window = histogram.window(expected_start_s=0.5)
    assert window is not None
    assert 3.0 < window.prewarm_s < 4.8  # wakes before the shortest gap, less the start time
    assert window.prewarm_s + window.keepalive_s > 5.3  # and stays past the longest


def test_histogram_falls_back_with_few_samples_or_out_of_range_gaps() -> None:
    histogram = IdleHistogram()
    for _ in range(3):
        histogram.record(1.0)
    assert histogram.window(0.0) is None
    for _ in range(10):
        histogram.record(7200.0)  # beyond the 1 h range
    assert histogram.window(0.0) is None
    assert histogram.total == 13 and histogram.overflow == 10


def test_short_gaps_keep_the_instance_loaded() -> None:
    histogram = IdleHistogram()
    for _ in range(20):
        histogram.record(0.005)
    window = histogram.window(expected_start_s=0.2)
    assert window is not None and window.prewarm_s == 0.0
    assert POLICY.decide(ScaleInputs(current=1, demand=0, idle_s=0.001), window).target == 1
