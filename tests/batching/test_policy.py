"""The batch-forming rule on its own: full, preferred, delay, and requests that must run alone."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import pytest

from inferlab.batching.policy import DELAY, FULL, PREFERRED, BatchPolicy
from inferlab.config import BatchingConfig, ModelConfig
from inferlab.errors import RepositoryError


@dataclass(frozen=True)
class P:
    rows: int = 1
    key: Hashable | None = "a"


def test_batching_off_runs_each_request_alone_at_once() -> None:
    assert BatchPolicy().decide([P(), P()], 0.0) == (1, FULL)


def test_waits_until_the_delay_then_takes_everything() -> None:
    policy = BatchPolicy(8, 0.01)
    assert policy.decide([P(), P(), P()], 0.005) is None
    assert policy.decide([P(), P(), P()], 0.01) == (3, DELAY)


def test_full_when_rows_reach_max_batch_size() -> None:
    assert BatchPolicy(4, 1.0).decide([P(2), P(1), P(1), P(1)], 0.0) == (3, FULL)


def test_full_when_the_next_request_does_not_fit_or_stack() -> None:
    policy = BatchPolicy(8, 1.0)
    assert policy.decide([P(3), P(3), P(3)], 0.0) == (2, FULL)
    assert policy.decide([P(1), P(1, "b"), P(1)], 0.0) == (1, FULL)


def test_unstackable_head_runs_alone_without_waiting() -> None:
    assert BatchPolicy(8, 1.0).decide([P(1, None), P()], 0.0) == (1, FULL)


def test_preferred_takes_the_longest_prefix_of_a_preferred_size() -> None:
    policy = BatchPolicy(16, 1.0, frozenset({2, 4}))
    assert policy.decide([P()], 0.0) is None
    assert policy.decide([P(), P(), P()], 0.0) == (2, PREFERRED)
    assert policy.decide([P(), P(), P(), P(), P()], 0.0) == (4, PREFERRED)


def test_zero_delay_flushes_what_is_there() -> None:
    assert BatchPolicy(8, 0.0).decide([P(), P()], 0.0) == (2, DELAY)


def test_from_config_checks_batching_needs_a_batch_dimension() -> None:
    with pytest.raises(RepositoryError, match="max_batch_size >= 1"):
        BatchPolicy.from_config(ModelConfig(batching=BatchingConfig(enabled=True)))
    with pytest.raises(RepositoryError, match=r"preferred_batch_sizes \[16\]"):
        BatchPolicy.from_config(ModelConfig(max_batch_size=8, batching=BatchingConfig(True, 0, (4, 16))))
    policy = BatchPolicy.from_config(ModelConfig(max_batch_size=8, batching=BatchingConfig(True, 250, (4,))))
    assert policy == BatchPolicy(8, 0.00025, frozenset({4}))
