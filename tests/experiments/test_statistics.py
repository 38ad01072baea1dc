"""Early stopping, stability and sweep specs: the pure rules sweeps and scenarios rest on."""

from __future__ import annotations

import math

import pytest

from inferlab.errors import InvalidInput
from inferlab.experiments.earlystop import binomial_tail, early_stopping, min_passing, min_queries, percentile_estimate
from inferlab.experiments.points import LoadPoint, parse_sweep, sweep_points
from inferlab.experiments.stability import Window, is_stable


def test_min_queries_match_mlperf() -> None:
    # With no query over the bound, p**h <= 1 - c gives h = ceil(ln 0.01 / ln p): 459 for p99, 44 for p90.
    assert min_queries(0.99) == 459 == math.ceil(math.log(0.01) / math.log(0.99))
    assert min_queries(0.90) == 44


def test_binomial_tail_matches_direct_sum() -> None:
    n, k, p = 30, 25, 0.8
    direct = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
    assert binomial_tail(n, k, p) == pytest.approx(direct, rel=1e-12)


def test_more_overlatency_queries_need_more_queries() -> None:
    needed = [min_passing(t, 0.99) + t for t in range(5)]
    assert needed == sorted(needed) and len(set(needed)) == 5
    assert early_stopping(needed[3], 3, 0.99).ok
    assert not early_stopping(needed[3] - 1, 3, 0.99).ok


def test_percentile_estimate_is_conservative() -> None:
    latencies = [float(i) for i in range(1, 1001)]  # the true p90 is 900
    estimate = percentile_estimate(latencies, 0.90)
    assert estimate is not None and 900 < estimate < 950
    assert percentile_estimate(latencies[:40], 0.90) is None  # too few queries to claim a p90


def test_stability_needs_three_close_windows() -> None:
    close = [Window(100.0, 10.0), Window(104.0, 10.5), Window(98.0, 9.8)]
    assert is_stable(close, tolerance=0.10)
    assert not is_stable(close[:2], tolerance=0.10)
    assert not is_stable([*close[:2], Window(130.0, 10.0)], tolerance=0.10)
    assert not is_stable([*close[:2], Window(100.0, 14.0)], tolerance=0.10)
    assert not is_stable([Window(0.0, 1.0)] * 3)


def test_sweep_specs_expand_to_points() -> None:
    assert parse_sweep("concurrency=1,2,4") == ("concurrency", (1.0, 2.0, 4.0))
    assert parse_sweep("think=0,1s,5") == ("think_s", (0.0, 1.0, 5.0))
    points = sweep_points(["concurrency=1,2", "think=0,1"])
    assert [p.label() for p in points] == ["c=1", "c=2", "c=1 think=1s", "c=2 think=1s"]
    assert [p.mode for p in sweep_points(["rate=50,100"])] == ["open", "open"]
    assert LoadPoint.from_dict(points[3].as_dict()) == points[3]


@pytest.mark.parametrize("spec", ["threads=1,2", "concurrency", "concurrency=1.5", "rate=0", "rate=a,b", "think=-1"])
def test_bad_sweep_specs_say_what_is_wrong(spec: str) -> None:
    with pytest.raises(InvalidInput, match="sweep"):
        parse_sweep(spec)


def test_rate_and_concurrency_sweeps_do_not_mix() -> None:
    with pytest.raises(InvalidInput, match="not both"):
        sweep_points(["rate=1", "concurrency=2"])
