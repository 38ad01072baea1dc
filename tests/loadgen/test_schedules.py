"""Intended send times (constant, Poisson, stages, traces), histograms and Server-Timing parsing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from inferlab.errors import InvalidInput
from inferlab.loadgen.arrivals import intended_offsets, parse_stages
from inferlab.loadgen.histogram import LatencyHistogram, merge_encoded
from inferlab.loadgen.plan import Arrivals, RateShape, ThinkTime, parse_duration
from inferlab.loadgen.servertiming import parse_server_timing
from inferlab.loadgen.traces import read_azure, read_infless, read_timestamps


def offsets(arrivals: Arrivals, count: int | None = None, duration_s: float | None = None, process: int = 0,
            processes: int = 1, seed: int = 0) -> np.ndarray:
    chunks = intended_offsets(arrivals, seed=seed, count=count, duration_s=duration_s, process=process,
                              processes=processes)
    return np.concatenate([np.empty(0), *chunks])


def test_constant_rate_is_evenly_spaced_and_exact() -> None:
    times = offsets(RateShape(((math.inf, 250.0, 250.0),)), duration_s=2.0)
    assert times.size == 500
    assert np.allclose(np.diff(times), 0.004)


def test_poisson_is_seeded_and_has_the_rate() -> None:
    shape = RateShape(((math.inf, 1000.0, 1000.0),), poisson=True)
    times = offsets(shape, duration_s=20.0, seed=7)
    assert abs(times.size - 20000) < 3 * math.sqrt(20000)
    assert np.array_equal(times, offsets(shape, duration_s=20.0, seed=7))
    gaps = np.diff(times)
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.05  # exponential gaps: coefficient of variation 1


def test_processes_split_one_schedule_exactly() -> None:
    shape = RateShape(((math.inf, 500.0, 500.0),), poisson=True)
    whole = offsets(shape, count=10001, seed=1)
    parts = [offsets(shape, count=10001, process=i, processes=3, seed=1) for i in range(3)]
    assert sum(p.size for p in parts) == 10001
    assert np.array_equal(np.sort(np.concatenate(parts)), whole)


def test_stages_ramp_and_step() -> None:
    times = offsets(parse_stages("10s@0-100,10s@100,5s@0"))
    assert times.size == 1500  # 500 in the ramp, 1000 at the plateau, none at 0
    assert np.sum(times < 5.0) == 125  # a linear ramp puts a quarter of its arrivals in its first half
    assert times.max() < 20.0


def test_infless_levels_scale_a_peak_rate(tmp_path: Path) -> None:
    trace = tmp_path / "Bursty.txt"
    trace.write_text("0.5\n# comment\n1.0\n0\n")
    shape = read_infless(trace, peak_rate=40.0, hold_s=2.0)
    assert shape.stages == ((2.0, 20.0, 20.0), (2.0, 40.0, 40.0), (2.0, 0.0, 0.0))
    assert offsets(shape).size == 120


def test_azure_minutes_replay_exact_counts_with_time_scaling(tmp_path: Path) -> None:
    trace = tmp_path / "invocations_per_function_md.anon.d01.csv"
    minutes = ",".join(str(i) for i in range(1, 1441))
    trace.write_text(f"HashOwner,HashApp,HashFunction,Trigger,{minutes}\n"
                     f"o,a,f1abc,http,3,0,6{',0' * 1437}\n"
                     f"o,a,f2xyz,timer,1,1,1{',0' * 1437}\n")
    replay = read_azure(trace, "f1", minute_s=1.0, spread="equidistant")
    assert replay.offsets_s.size == 9
    assert np.sum(replay.offsets_s < 1.0) == 3 and np.sum(replay.offsets_s >= 2.0) == 6
    busiest = read_azure(trace, None, minute_s=0.5, count_scale=2.0, spread="exponential", seed=1)
    assert busiest.offsets_s.size == 18 and busiest.offsets_s.max() < 1.5
    with pytest.raises(InvalidInput, match="no function"):
        read_azure(trace, "zzz")


def test_timestamp_files_start_at_zero(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("time\n100.5\n100.0\n101.0\n")
    assert read_timestamps(trace, scale=2.0).offsets_s.tolist() == [0.0, 1.0, 2.0]


def test_histogram_matches_hdrhistogram_and_merges_exactly() -> None:
    values = np.random.default_rng(2).lognormal(0.0, 2.0, 20000)
    reference = HdrHistogram(1, 3_600_000_000, 3)
    for v in np.clip(np.rint(values * 1000), 1, None).astype(int).tolist():
        reference.record_value(v)
    halves = []
    for part in (values[:7000], values[7000:]):
        h = LatencyHistogram()
        h.record_ms(part)
        halves.append(h.encode())
    merged = merge_encoded(halves)
    for p in (50.0, 90.0, 99.0, 99.9, 100.0):
        assert merged.percentiles_ms([p])[f"{p:g}"] == reference.get_value_at_percentile(p) / 1000
    assert merged.count == 20000
    assert merged.summary().mean_ms == pytest.approx(reference.get_mean_value() / 1000)


def test_histogram_clamps_instead_of_dropping() -> None:
    h = LatencyHistogram()
    h.record_ms(np.array([0.0001, 5e9]))
    assert h.count == 2 and h.clamped == 1


def test_server_timing_names_are_generic() -> None:
    parsed = parse_server_timing(b'decode;dur=0.1, queue;dur=2, gpu;desc="A100";dur="1.5", cache, bad;dur=x')
    assert parsed == {"decode": 0.1, "queue": 2.0, "gpu": 1.5}


def test_small_parsers_reject_bad_input() -> None:
    assert parse_duration("250ms") == 0.25 and parse_duration("3m") == 180.0
    with pytest.raises(InvalidInput):
        parse_duration("soon")
    assert ThinkTime.parse("uniform:0.1:0.2") == ThinkTime("uniform", 0.1, 0.2)
    with pytest.raises(InvalidInput):
        ThinkTime.parse("gauss:1")
