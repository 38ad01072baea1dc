"""The server scenario finds the capacity of a server with a known service time, and says why a run fails."""

from __future__ import annotations

import pytest

from inferlab.errors import InferlabError
from inferlab.experiments.driver import LoadgenDriver
from inferlab.experiments.points import LoadPoint
from inferlab.experiments.scenarios import ServerSettings, find_server_rate, single_stream
from inferlab.loadgen.plan import Target
from tests.experiments.sleep_server import serve_sleep


def test_server_scenario_finds_capacity_within_15_percent() -> None:
    with serve_sleep(workers=4, service_s=0.01) as url:  # 400/s in theory, less with event-loop overhead
        driver = LoadgenDriver(Target(f"{url}/"), record_requests=True)
        capacity = driver.run(LoadPoint(concurrency=16), duration_s=2.0, warmup_s=0.5).ok_per_s
        found = find_server_rate(driver, ServerSettings(target_ms=60.0), sut=url)
    assert found.valid, found.summary()
    assert abs(found.metric - capacity) <= 0.15 * capacity, (capacity, found.summary())
    assert any(not t.passed for t in found.trials)  # the search saw the failing side too
    summary = found.summary()
    assert summary.splitlines()[-1] == "Result is : VALID"
    assert "Scenario : Server" in summary


def test_too_short_single_stream_is_invalid_with_the_reason() -> None:
    with serve_sleep(workers=1, service_s=0.05) as url:
        driver = LoadgenDriver(Target(f"{url}/"), record_requests=True)
        verdict = single_stream(driver, duration_s=0.5, warmup_s=0.0, sut=url)
    last = verdict.summary().splitlines()[-1]
    assert not verdict.valid
    assert last.startswith("Result is : INVALID (") and "too few to back a p90 claim" in last


def test_server_scenario_against_a_wrong_url_says_so(base_url: str) -> None:
    driver = LoadgenDriver(Target(f"{base_url}/no/such/path"), record_requests=True)
    settings = ServerSettings(target_ms=50.0, probe_s=0.3, warmup_s=0.0)
    with pytest.raises(InferlabError, match=r"completed no request .*'404'.*target URL right"):
        find_server_rate(driver, settings)
