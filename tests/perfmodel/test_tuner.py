from __future__ import annotations

import pytest

from inferlab.config import ModelConfig
from inferlab.errors import InvalidInput
from inferlab.perfmodel.profile import Profile
from inferlab.perfmodel.tuner import Slo, candidate_configs, tune

PROFILE = Profile("m", (), {"1x1": {1: (0.010,), 8: (0.020,)}, "1x2": {1: (0.006,), 8: (0.012,)},
                            "2x1": {1: (0.011,), 8: (0.022,)}})


def test_multi_threaded_sessions_leave_a_core_to_the_event_loop() -> None:
    settings = {(c.instances, c.runtime.intra_op_threads) for c in candidate_configs(PROFILE, ModelConfig(), cores=2)}
    assert settings == {(1, 1), (2, 1)}
    assert (1, 2) in {(c.instances, c.runtime.intra_op_threads)
                      for c in candidate_configs(PROFILE, ModelConfig(), cores=4)}


def test_batch_sizes_stop_at_the_largest_measured() -> None:
    sizes = {c.max_batch_size for c in candidate_configs(PROFILE, ModelConfig(), cores=2)}
    assert sizes == {0, 2, 4, 8}


def test_max_rate_ranks_by_sustainable_rate() -> None:
    best = tune(PROFILE, Slo.parse("p99=100ms"), None, protocol="none", cores=2)
    assert best[0].meets_slo and best[0].max_rate_rps is not None
    assert best[0].max_rate_rps > 500  # batches of 8 on two instances: 800/s at most
    assert best[0].max_rate_rps >= (best[-1].max_rate_rps or 0.0)


def test_slo_parsing() -> None:
    assert Slo.parse("p95 = 250us") == Slo("p95", 0.00025)
    with pytest.raises(InvalidInput, match="not like 'p99=50ms'"):
        Slo.parse("p99<50ms")
