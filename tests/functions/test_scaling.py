"""Autoscaling on a live server: scale up under concurrent load, back down, to zero, and cold starts."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.functions.conftest import deploy, write_function

SLOW = """
    import time

    from inferlab.functions import Handler, Request

    class Slow(Handler):
        def handle(self, request: Request) -> str:
            time.sleep(0.15)
            return "done"
"""


def wait_until(check: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    """Poll `check` every 20 ms until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout_s} s")


def status(client: httpx.Client, name: str) -> dict[str, Any]:
    row: dict[str, Any] = client.get(f"/system/function/{name}").json()
    return row


def test_scales_up_under_load_and_back_down(fn_client: httpx.Client, tmp_path: Path) -> None:
    folder = write_function(tmp_path / "slow", SLOW, max_instances=4, concurrency=1, idle_timeout_s=0.4,
                            scale_down_delay_s=0.2)
    assert deploy(fn_client, "slow", folder).status_code == 202
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: fn_client.post("/function/slow", content=b""), range(16)))
    assert [r.status_code for r in replies] == [200] * 16
    assert len({r.headers["x-function-instance"] for r in replies}) >= 2
    peak = max(point["instances"] for point in status(fn_client, "slow")["metrics"]["instances_over_time"])
    assert 2 <= peak <= 4
    wait_until(lambda: status(fn_client, "slow")["replicas"] == 1)  # load gone: one stays warm
    wait_until(lambda: status(fn_client, "slow")["replicas"] == 0)  # then the idle timeout
    events = status(fn_client, "slow")["metrics"]["scale_events"]
    assert any(e["to"] > e["from"] and e["reason"] == "load" for e in events)
    assert events[-1]["to"] == 0 and events[-1]["reason"] == "idle timeout"


def test_scale_to_zero_then_cold_start(fn_client: httpx.Client, tmp_path: Path) -> None:
    folder = write_function(tmp_path / "zero", SLOW.replace("0.15", "0"), idle_timeout_s=0.2, scale_down_delay_s=0)
    assert deploy(fn_client, "zero", folder).status_code == 202
    assert status(fn_client, "zero")["replicas"] == 0  # min_instances 0: nothing runs until called
    first = fn_client.post("/function/zero")
    assert first.headers["x-cold-start"] == "true"
    warm = fn_client.post("/function/zero")
    assert warm.headers["x-cold-start"] == "false" and "cold-start" not in warm.headers["server-timing"]
    wait_until(lambda: status(fn_client, "zero")["replicas"] == 0)
    cold = fn_client.post("/function/zero")
    assert cold.status_code == 200 and cold.headers["x-cold-start"] == "true"
    cold_ms = float(cold.headers["x-cold-start-ms"])
    assert cold_ms > 0 and f"cold-start;dur={cold_ms:.3f}" in cold.headers["server-timing"]
    metrics = status(fn_client, "zero")["metrics"]
    assert metrics["cold_starts"] == 2 and metrics["cold_requests"] == 2
    assert metrics["cold_start_ms"]["last"] > 0


def test_min_instances_and_manual_scale(fn_client: httpx.Client, tmp_path: Path) -> None:
    folder = write_function(tmp_path / "warm", SLOW.replace("0.15", "0"), min_instances=1, idle_timeout_s=0.2)
    assert deploy(fn_client, "warm", folder).status_code == 202
    wait_until(lambda: status(fn_client, "warm")["availableReplicas"] == 1)
    assert fn_client.post("/function/warm").headers["x-cold-start"] == "false"
    assert fn_client.post("/system/scale-function/warm", json={"replicas": 3}).status_code == 202
    wait_until(lambda: status(fn_client, "warm")["availableReplicas"] == 3)
    wait_until(lambda: status(fn_client, "warm")["replicas"] == 1)  # the hold ends; min_instances stays
    bad = fn_client.post("/system/scale-function/warm", json={"replicas": -1})
    assert bad.status_code == 400 and "replicas" in bad.json()["error"]


def test_histogram_keep_warm_prewarms_before_the_next_call(fn_client: httpx.Client, tmp_path: Path) -> None:
    folder = write_function(tmp_path / "periodic", SLOW.replace("0.15", "0"), keep_warm="histogram",
                            idle_timeout_s=0.2, scale_down_delay_s=0)
    assert deploy(fn_client, "periodic", folder).status_code == 202
    cold = []
    for _ in range(13):  # a call every ~0.4 s: 8 idle gaps teach the histogram, the rest use it
        cold.append(fn_client.post("/function/periodic").headers["x-cold-start"] == "true")
        time.sleep(0.4)
    assert cold[-3:] == [False, False, False]  # pre-warmed in time, though it was unloaded in between
    reasons = [e["reason"] for e in status(fn_client, "periodic")["metrics"]["scale_events"]]
    assert "pre-warm (histogram)" in reasons and "outside keep-warm window (histogram)" in reasons
