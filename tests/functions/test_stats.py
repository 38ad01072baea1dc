"""Function stats: the /system/functions numbers and the same events as Prometheus series."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from inferlab.functions.stats import FunctionCollectors, FunctionStats


def test_events_update_both_views() -> None:
    registry = CollectorRegistry()
    collectors = FunctionCollectors(registry)
    stats = FunctionStats("blur", collectors)
    stats.scaled(0, 2, "load")
    stats.started(0.02)
    stats.started(0.04)
    stats.ready_instances(2)
    stats.invoked(ok=True, cold=True)
    stats.invoked(ok=False, cold=False)
    stats.scaled(2, 0, "idle timeout")
    stats.ready_instances(0)
    view = stats.as_dict()
    assert (view["invocations"], view["errors"], view["cold_starts"], view["cold_requests"]) == (2, 1, 2, 1)
    assert view["cold_start_ms"] == {"last": 40.0, "mean": 30.0}
    assert [(e["from"], e["to"], e["reason"]) for e in view["scale_events"]] == [(0, 2, "load"), (2, 0, "idle timeout")]
    assert [p["instances"] for p in view["instances_over_time"]] == [2, 0]
    text = generate_latest(registry).decode()
    assert 'inferlab_function_instances{function="blur"} 0.0' in text
    assert 'inferlab_function_invocations_total{function="blur",outcome="ok"} 1.0' in text
    assert 'inferlab_function_cold_starts_total{function="blur"} 2.0' in text
    assert 'inferlab_function_cold_start_seconds_count{function="blur"} 2.0' in text
    assert 'inferlab_function_scale_events_total{direction="down",function="blur"} 1.0' in text or \
        'inferlab_function_scale_events_total{function="blur",direction="down"} 1.0' in text
    collectors.forget("blur")
    assert 'function="blur"' not in generate_latest(registry).decode()


def test_stats_without_prometheus() -> None:
    stats = FunctionStats("plain")
    stats.started(0.01)
    assert stats.as_dict()["cold_starts"] == 1 and stats.mean_cold_start_s() == 0.01
