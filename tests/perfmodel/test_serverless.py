from __future__ import annotations

import pytest

from inferlab.errors import InvalidInput
from inferlab.perfmodel.serverless import FunctionModel, mean_running_instances, simulate_functions

SIMFAAS_EXAMPLE = FunctionModel(arrival_rps=0.9, warm_s=1.991, cold_s=2.244, idle_timeout_s=600)


def test_reproduces_simfaas_published_example() -> None:
    r = simulate_functions(SIMFAAS_EXAMPLE, duration_s=1e6, seed=1)
    assert r.cold_start_probability == pytest.approx(0.0014, rel=0.10)
    assert r.mean_instances == pytest.approx(7.6612, rel=0.10)
    assert r.mean_running == pytest.approx(mean_running_instances(SIMFAAS_EXAMPLE, r.cold_start_probability), rel=0.02)
    assert r.mean_idle == pytest.approx(r.mean_instances - r.mean_running)
    assert r.rejection_probability == 0.0


def test_no_idle_timeout_makes_every_request_cold() -> None:
    r = simulate_functions(FunctionModel(1.0, 0.1, 0.5, idle_timeout_s=0, exponential=False), duration_s=1000)
    assert r.cold_start_probability == 1.0
    assert r.mean_response_s == pytest.approx(0.5)


def test_concurrency_limit_rejects() -> None:
    r = simulate_functions(FunctionModel(50.0, 1.0, 1.0, idle_timeout_s=10, max_concurrency=5), duration_s=200)
    assert r.rejection_probability > 0.5
    assert r.mean_running <= 5.0


def test_rejects_bad_model() -> None:
    with pytest.raises(InvalidInput, match="must be > 0"):
        FunctionModel(0.0, 1.0, 1.0, 1.0)
