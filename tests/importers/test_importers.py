"""Each tool's sample file loads into a RunResult whose numbers are the file's, and survives a JSON round trip."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from inferlab.errors import InvalidInput
from inferlab.importers import load_results
from inferlab.loadgen.result import RunResult

SAMPLES = Path(__file__).parent / "samples"


def _rows(name: str) -> list[dict[str, str]]:
    with (SAMPLES / name).open() as handle:
        return list(csv.DictReader(handle))


def _round_trip(result: RunResult) -> RunResult:
    again = RunResult.from_json(result.to_json())
    assert again == result
    return again


def test_hey_csv_keeps_every_row_and_phase() -> None:
    (result,) = load_results(SAMPLES / "hey.csv")
    rows = _rows("hey.csv")
    result = _round_trip(result)
    assert result.config["tool"] == "hey"
    assert result.counts.requests == result.counts.ok == len(rows) == len(result.requests)
    for row, record in zip(rows, result.requests, strict=True):
        assert record.latency_ms == pytest.approx(float(row["response-time"]) * 1000)
        assert record.connect_ms == pytest.approx(float(row["DNS+dialup"]) * 1000)
        assert record.wait_ms == pytest.approx(float(row["Response-delay"]) * 1000)
        assert record.sent_s == pytest.approx(float(row["offset"]))
    slowest = max(float(r["response-time"]) for r in rows) * 1000
    assert result.latency.max_ms == pytest.approx(slowest, rel=1e-3)
    assert result.status_codes == {"200": len(rows)}
    assert sum(i.requests for i in result.intervals) == len(rows)


def test_jtl_counts_failures_and_threads() -> None:
    (result,) = load_results(SAMPLES / "results.jtl")
    rows = _rows("results.jtl")
    result = _round_trip(result)
    failed = [r for r in rows if r["success"] == "false"]
    assert result.counts.requests == len(rows)
    assert result.counts.http_errors == len(failed) == 2
    assert result.counts.ok == len(rows) - len(failed)
    assert result.config["load"]["concurrency"] == max(int(r["allThreads"]) for r in rows)
    assert result.status_codes == {"200": len(rows) - 2, "504": 2}
    for row, record in zip(rows, result.requests, strict=True):
        assert record.latency_ms == float(row["elapsed"])
        assert record.connect_ms + record.wait_ms == float(row["Latency"])
        assert record.bytes_in == int(row["bytes"])
    assert result.started_at_unix == int(rows[0]["timeStamp"]) / 1000
    assert result.errors[0].kind == "http" and result.errors[0].count == 2


def test_locust_stats_history_and_failures() -> None:
    (result,) = load_results(SAMPLES / "run_stats.csv")
    result = _round_trip(result)
    assert result.counts.requests == 1200 and result.counts.errors == 6
    assert result.requests_per_s == 40.0
    assert result.latency.percentiles_ms["99"] == 70.0 and result.latency.percentiles_ms["99.9"] == 190.0
    assert "10" not in result.latency.percentiles_ms  # locust has no p10; it is not invented
    assert [i.requests for i in result.intervals] == [0, 38, 41, 41]
    assert result.config["load"]["concurrency"] == 4
    assert {e.kind: e.count for e in result.errors} == {"http": 4, "protocol": 2}


def test_folder_of_mixed_results_loads_all(tmp_path: Path) -> None:
    for name in ("hey.csv", "results.jtl"):
        shutil.copy(SAMPLES / name, tmp_path / name)
    (result,) = load_results(SAMPLES / "hey.csv")
    (tmp_path / "run.json").write_text(result.to_json())
    tools = sorted(r.config["tool"] for r in load_results(tmp_path))
    assert tools == ["hey", "hey", "jmeter"]


def test_unknown_file_is_rejected_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(InvalidInput, match=r"notes\.txt: unknown format"):
        load_results(bad)
    with pytest.raises(InvalidInput, match="no such file"):
        load_results(tmp_path / "missing.json")
