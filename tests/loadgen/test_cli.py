"""`inferlab bench` as a hey drop-in: flags, hey's sections, hey's CSV, locust CSVs, JSON."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from click.testing import CliRunner

from inferlab.cli.main import cli
from inferlab.loadgen.result import RunResult
from tests.loadgen.conftest import TinyServer

HEY_SECTIONS = ("Summary:", "Response time histogram:", "Latency distribution:",
                "Details (average, fastest, slowest):", "Status code distribution:")


def bench(*args: str) -> str:
    result = CliRunner().invoke(cli, ["bench", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_seed_hey_command_works_with_bench_in_its_place(tiny: TinyServer, tmp_path: Path) -> None:
    body = tmp_path / "input.json"
    body.write_text('{"inputs": []}')
    before = tiny.requests
    out = bench("-n", "101", "-c", "10", "-m", "POST", "-H", "Content-type: application/json", "-D", str(body),
                tiny.url + "/")
    assert tiny.requests - before == 101
    positions = [out.index(section) for section in HEY_SECTIONS]
    assert positions == sorted(positions)
    assert "  [200]\t101 responses" in out
    assert "  50% in " in out and "  99% in " in out
    assert "Requests/sec:\t" in out
    assert "  Total data:\t202 bytes\n  Size/request:\t2 bytes\n" in out  # bodies only, as hey counts


def test_errors_get_hey_error_distribution(tiny: TinyServer) -> None:
    out = bench("-n", "4", "-c", "2", "-t", "0.2", tiny.url + "/never")
    assert "Error distribution:\n  [4]\tno complete response within 0.2 s" in out


def test_hey_csv_output(tiny: TinyServer) -> None:
    out = bench("-n", "5", "-c", "1", "-o", "csv", tiny.url + "/")
    lines = out.splitlines()
    assert lines[0] == "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset"
    assert len(lines) == 6
    assert all(line.split(",")[6] == "200" for line in lines[1:])


def test_locust_csvs_have_locust_headers(tiny: TinyServer, tmp_path: Path) -> None:
    prefix = tmp_path / "run"
    bench("-n", "50", "-c", "2", "--csv", str(prefix), tiny.url + "/status?code=500")
    headers = {suffix: next(csv.reader((tmp_path / f"run_{suffix}.csv").open())) for suffix in
               ("stats", "stats_history", "failures", "exceptions")}
    pct = "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
    assert ",".join(headers["stats"]) == ("Type,Name,Request Count,Failure Count,Median Response Time,"
                                          "Average Response Time,Min Response Time,Max Response Time,"
                                          f"Average Content Size,Requests/s,Failures/s,{pct}")
    assert ",".join(headers["stats_history"]) == (
        f"Timestamp,User Count,Type,Name,Requests/s,Failures/s,{pct},Total Request Count,Total Failure Count,"
        "Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,"
        "Total Average Content Size")
    assert ",".join(headers["failures"]) == "Method,Name,Error,Occurrences,First Seen,Last Seen"
    assert ",".join(headers["exceptions"]) == "Count,Message,Traceback,Nodes"
    rows = list(csv.reader((tmp_path / "run_stats.csv").open()))
    assert rows[1][:4] == ["GET", "/status", "50", "50"]
    assert rows[2][:4] == ["", "Aggregated", "50", "50"]
    failures = list(csv.reader((tmp_path / "run_failures.csv").open()))
    assert failures[1][2:4] == ["HTTP 500", "50"]


def test_json_output_and_requests_csv(tiny: TinyServer, tmp_path: Path) -> None:
    out = bench("-n", "8", "-c", "2", "-o", "json", "--requests-csv", str(tmp_path / "r.csv"), tiny.url + "/")
    result = RunResult.from_json(out)
    assert result.counts.requests == 8
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert len(rows) == 8
    assert float(rows[0]["server_infer_ms"]) == 0.3


def test_open_loop_flags_print_latency_from_the_schedule(tiny: TinyServer) -> None:
    out = bench("--rate", "200", "--poisson", "-n", "40", "-c", "8", tiny.url + "/")
    assert "Latency from the intended send time" in out
    # VALID or not depends on how busy the machine is (a timed verdict); that it is given does not.
    assert re.search(r"Generator self-check: (VALID|INVALID)", out)


def test_bad_flags_are_usage_errors(tiny: TinyServer) -> None:
    result = CliRunner().invoke(cli, ["bench", "-H", "no-colon", tiny.url + "/"])
    assert result.exit_code == 2
    assert "expected 'Name: value'" in result.output
    result = CliRunner().invoke(cli, ["bench", "--rate", "10", "--stages", "1s@5", tiny.url + "/"])
    assert result.exit_code == 2
    assert "give one" in result.output


def test_more_hey_flags_and_fail_invalid(tiny: TinyServer) -> None:
    out = bench("-n", "6", "-c", "2", "-cpus", "1", "-host", "example.test", "-disable-compression", tiny.url + "/")
    assert "  [200]\t6 responses" in out
    result = CliRunner().invoke(cli, ["bench", "-n", "6", "-c", "2", "--max-lag-ms", "0", "--fail-invalid",
                                      tiny.url + "/"])
    assert result.exit_code == 1
    assert "RESULT IS INVALID" in result.output
