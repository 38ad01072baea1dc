"""Predicted vs measured on hand-made runs: reading predictions, matching by rate, relative errors, the HTML section."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from inferlab.errors import InvalidInput
from inferlab.loadgen.result import Counts, Environment, LatencySummary, RunResult, SelfCheck
from inferlab.report.overlay import match, relative_error
from inferlab.report.predictions import PredictedPoint, load_predictions
from inferlab.report.render import render_report
from inferlab.report.runs import views


def _summary(percentiles: dict[str, float]) -> LatencySummary:
    return LatencySummary(100, 0.1, percentiles.get("50", 1.0), 10.0, 0.5, percentiles)


def hand_run(rate: float, p50: float, p95: float, p99: float, ok_per_s: float, *, mode: str = "open",
             arrivals: dict[str, Any] | None = None, valid: bool = True, series: str = "digits") -> RunResult:
    """A run as `inferlab bench --rate` records one, with the numbers the test wants."""
    stages = {"stages": [[None, rate, rate]], "poisson": True}
    return RunResult(
        config={"series": series, "mode": mode, "concurrency": 4, "arrivals": arrivals or stages},
        environment=Environment("0", "3.11", "linux", "cpu", 2, "host", "uvloop", "2026-01-01T00:00:00Z"),
        mode=mode, processes=1, started_at_unix=0.0, duration_s=10.0, warmup_s=0.0,
        counts=Counts(100, 100, 0, 0, 0), requests_per_s=ok_per_s, ok_per_s=ok_per_s, success_rate=1.0,
        bytes_in=0, bytes_out=0, latency=_summary({"50": p50, "95": p95, "99": p99}), service=_summary({}),
        phases={}, server_timing={}, transport=None, status_codes={"200": 100}, errors=(), intervals=(),
        self_check=SelfCheck(valid, () if valid else ("send lag",), _summary({}), 1.0, 0.1, 5.0, 90.0),
    )


def point(rate: float, p50_ms: float, p99_ms: float, throughput: float, p95_ms: float | None = None) -> PredictedPoint:
    return PredictedPoint(rate, throughput, 1000.0, p50_ms, p95_ms, p99_ms, "test")


def predict_json(rate: float, p50_s: Any, p99_s: float | None, **extra: Any) -> dict[str, Any]:
    """The fields `inferlab predict --json` writes for one rate (cli/perf.py prediction_json)."""
    return {"rate_rps": rate, "capacity_rps": 900.0, "utilisation": 0.1, "front_utilisation": 0.1,
            "throughput_rps": rate, "mean_queue_length": 0.0, "mean_latency_s": 0.001, "p50_s": p50_s,
            "p95_s": 0.0015, "p99_s": p99_s, "dropped": 0, "mean_batch_size": 1.0, "closed_form_mean_s": 0.001,
            "bound_batch_size": 1, "workers": 1, "policy": {"max_batch_size": 1}, **extra}


def test_relative_error_is_measured_minus_predicted_over_measured() -> None:
    assert relative_error(1.2, 1.0) == pytest.approx(0.2 / 1.2)
    assert relative_error(0.8, 1.0) == pytest.approx(-0.25)
    assert relative_error(0.0, 1.0) is None
    assert relative_error(math.nan, 1.0) is None
    assert relative_error(1.0, math.nan) is None


def test_runs_match_the_nearest_rate_within_tolerance_and_get_errors_per_metric() -> None:
    points = [point(50, 1.0, 2.0, 50.0, p95_ms=1.5), point(100, 1.0, 2.0, 100.0, p95_ms=1.5), point(200, 2, 4, 200)]
    runs = views([hand_run(101, 1.2, 3.0, 2.4, 95.0), hand_run(52, 1.0, 1.5, 3.0, 50.0)])
    overlay = match(runs, points)
    assert [c.predicted.rate_rps for c in overlay.matched] == [50, 100] and overlay.unmatched == ()
    at_100 = overlay.matched[1]
    p50, p95, p99, throughput = (at_100.metric(n) for n in ("p50", "p95", "p99", "throughput"))
    assert p50 is not None and p50.relative == pytest.approx(0.2 / 1.2) and p50.beyond_target  # > 15%
    assert p95 is not None and p95.relative == pytest.approx(0.5) and not p95.beyond_target  # p95 has no target
    assert p99 is not None and p99.relative == pytest.approx(0.4 / 2.4) and not p99.beyond_target  # < 25%
    assert throughput is not None and throughput.relative == pytest.approx(-5 / 95) and not throughput.beyond_target
    assert [m.percent for m in at_100.metrics] == ["+17%", "+50%", "+17%", "-5%"]
    p99_at_50 = overlay.matched[0].metric("p99")
    assert p99_at_50 is not None and p99_at_50.relative == pytest.approx(1 / 3) and p99_at_50.beyond_target


def test_an_error_exactly_at_the_target_is_within_it() -> None:
    (c,) = match(views([hand_run(100, 1.0, 1.0, 4.0, 90.0)]), [point(100, 0.85, 3.0, 100.0)]).matched
    assert [m.name for m in c.metrics if m.beyond_target] == ["throughput"]  # p50 +15%, p99 +25%: on the line


def test_runs_without_a_nearby_prediction_or_a_single_rate_are_listed_with_the_reason() -> None:
    runs = views([
        hand_run(160, 1, 1, 1, 160, series="a"),
        hand_run(104, 1, 1, 1, 104, series="b"),  # 4% from 100: matched
        hand_run(0, 1, 1, 1, 10, mode="closed", series="c"),
        hand_run(100, 1, 1, 1, 100, arrivals={"stages": [[10, 50, 150]], "poisson": False}, series="d"),
        hand_run(100, 1, 1, 1, 100, arrivals={"timestamps": 500}, series="e"),
    ])
    overlay = match(runs, [point(100, 1, 2, 100), point(200, 1, 2, 200)])
    assert [c.run.series for c in overlay.matched] == ["b"]
    reasons = {u.run.series: u.reason for u in overlay.unmatched}
    assert reasons["a"] == "the nearest prediction (200/s) is 25% from its rate 160/s (allowed: 5%)"
    assert reasons["c"].startswith("closed loop")
    assert reasons["d"].startswith("its rate changes")
    assert reasons["e"].startswith("trace replay")
    assert len(match(runs, [point(100, 1, 2, 100)], tolerance=0.0).matched) == 0


def test_predictions_read_predict_json_lists_single_objects_and_nulls(tmp_path: Path) -> None:
    listed = tmp_path / "a.json"
    listed.write_bytes(orjson.dumps([predict_json(100, 0.001, 0.002), predict_json(50, None, 0.004)]))
    single = tmp_path / "b.json"
    single.write_bytes(orjson.dumps({k: v for k, v in predict_json(300, 0.002, 0.009).items() if k != "p95_s"}))
    points = load_predictions([listed, single])
    assert [p.rate_rps for p in points] == [50, 100, 300]
    assert math.isnan(points[0].p50_ms) and points[0].p99_ms == pytest.approx(4.0)
    assert points[1].p95_ms == pytest.approx(1.5) and points[2].p95_ms is None
    assert points[1].source == "a.json #1"


@pytest.mark.parametrize(("content", "message"), [
    (b"not json", "bad.json: not JSON"),
    (b"[]", "bad.json: no predicted points"),
    (b"[3]", "bad.json #1: expected an object"),
    (orjson.dumps([{"rate_rps": 1}]), "bad.json #1: missing throughput_rps, capacity_rps, p50_s, p99_s"),
    (orjson.dumps([predict_json(0, 0.001, 0.002)]), "bad.json #1: rate_rps 0 is not > 0"),
    (orjson.dumps([predict_json(10, "fast", 0.002)]), "bad.json #1: p50_s is 'fast', expected a number"),
    (orjson.dumps([predict_json(10, 0.001, 0.002), predict_json(10, 0.001, 0.003)]),
     "rate 10/s is predicted twice (bad.json #1 and bad.json #2)"),
])
def test_bad_prediction_files_are_refused_with_what_is_wrong(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        load_predictions([bad])


def test_report_section_highlights_misses_and_lists_unmatched_runs(tmp_path: Path) -> None:
    runs = [hand_run(100, 1.2, 1.6, 2.1, 99.0), hand_run(205, 3.0, 4.0, 5.0, 150.0, valid=False),
            hand_run(100, 1.05, 1.5, 2.1, 100.0, series="digits b"), hand_run(400, 1, 1, 1, 400),
            hand_run(0, 1, 1, 1, 10, mode="closed")]
    text = render_report(runs, predictions=[point(100, 1.0, 2.0, 100.0, 1.5), point(200, 2.9, 4.9, 198.0, 4.0)],
                         figures_dir=tmp_path)
    section = text[text.index("<h2>Predicted vs measured</h2>"):text.index("<h2>", text.index("Runs not compared"))]
    assert "3 run(s) matched to a prediction within 5% of their offered rate, 1 of them within every target" in section
    assert 'id="predicted_vs_measured"' in section
    rows = re.findall(r"<tr(?: class=\"invalid\")?><td>.*?</tr>", section)
    assert [r.count('class="beyond"') for r in rows] == [0, 1, 1]
    assert rows[0].startswith("<tr><td>digits b rate=100/s</td><td>100</td>")
    assert re.findall(r'<td class="beyond">([^<]*)</td>', rows[1]) == ["+17%"]  # p50 only; p99 +5%, throughput -1%
    assert rows[2].startswith('<tr class="invalid"><td>digits rate=205/s</td><td>205 (model: 200)</td>')
    assert "INVALID" in rows[2]
    assert re.findall(r'<td class="beyond">([^<]*)</td>', rows[2]) == ["-32%"]  # throughput 150 vs 198
    assert "rate=400/s: the nearest prediction (200/s) is 50% from its rate 400/s" in section
    assert "c=4: closed loop" in section
    assert (tmp_path / "predicted_vs_measured.png").stat().st_size > 1000


def test_report_without_predictions_has_no_overlay_section() -> None:
    assert "Predicted vs measured" not in render_report([hand_run(100, 1, 1, 1, 100)])
