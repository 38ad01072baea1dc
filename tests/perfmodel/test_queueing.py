from __future__ import annotations

import math

import pytest

from inferlab.errors import InvalidInput
from inferlab.perfmodel.queueing import batch_bound, erlang_c, md1, mg1, mgc, mm1, mmc


def test_mm1_textbook_values() -> None:
    m = mm1(lam=8.0, mu=10.0)
    assert m.utilisation == pytest.approx(0.8)
    assert m.wait_s == pytest.approx(0.4)
    assert m.response_s == pytest.approx(0.5)
    assert m.queue_length == pytest.approx(3.2)


def test_md1_waits_half_as_long_as_mm1() -> None:
    assert md1(8.0, 0.1).wait_s == pytest.approx(mm1(8.0, 10.0).wait_s / 2)


def test_erlang_c_known_value() -> None:
    # 2 servers, offered load 1 Erlang: C = 1/3
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert mmc(1.0, 1.0, 2).wait_s == pytest.approx((1 / 3) / (2 - 1))


def test_mgc_reduces_to_pollaczek_khinchine_for_one_server() -> None:
    mean, scv = 0.01, 0.3
    second = mean * mean * (1 + scv)
    assert mgc(60.0, mean, scv, 1).wait_s == pytest.approx(mg1(60.0, mean, second).wait_s)


def test_unstable_queue_reports_infinite_wait() -> None:
    m = mmc(30.0, 10.0, 2)
    assert not m.stable and math.isinf(m.wait_s)


def test_batch_bound_picks_smallest_stable_batch() -> None:
    means = [0.010, 0.012, 0.014, 0.016]  # capacity per instance 100, 167, 214, 250 /s
    bound = batch_bound(150.0, means, 1, max_queue_delay_s=0.005)
    assert bound.capacity_rps == pytest.approx(250.0)
    assert bound.batch_size == 2
    assert bound.latency_floor_s == pytest.approx(1 / 300 + 0.012)


def test_bad_parameters_name_what_is_wrong() -> None:
    with pytest.raises(InvalidInput, match="servers >= 1"):
        mmc(1.0, 1.0, 0)
