"""`inferlab sweep`, `inferlab scenario` and `inferlab experiment run` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from inferlab.cli.main import cli
from inferlab.errors import InvalidInput
from tests.experiments.sleep_server import serve_sleep


def test_sweep_command_saves_one_result_per_step(base_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [
        "sweep", base_url, "--model", "digits", "--sweep", "concurrency=1,2", "--window", "0.3", "--warmup", "0.1",
        "--stability", "0.5", "--max-windows", "4", "--series", "cli sweep", "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.iterdir()
    index = json.loads((folder / "index.json").read_text())
    assert [(e["series"], e["load"]["concurrency"]) for e in index] == [("cli sweep", 1), ("cli sweep", 2)]
    assert "c=2" in result.output and "windows" in result.output
    html = tmp_path / "r.html"
    assert CliRunner().invoke(cli, ["report", str(folder), "-o", str(html)]).exit_code == 0
    assert html.read_text().count(" windows)</td>") == 2  # each step's stability verdict is in the table


def test_single_stream_prints_a_verdict_and_saves_it(tmp_path: Path) -> None:
    with serve_sleep(workers=1, service_s=0.002) as url:
        result = CliRunner().invoke(cli, ["scenario", "single-stream", f"{url}/", "--duration", "1.0",
                                          "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = result.stdout.strip().splitlines()
    assert "Scenario : SingleStream" in summary and summary[-1] == "Result is : VALID"
    (folder,) = tmp_path.iterdir()
    assert (folder / "summary.txt").read_text().strip().endswith("Result is : VALID")
    assert len(list((folder / "runs").iterdir())) == 1


def test_bad_sweep_and_slo_are_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_sweep = runner.invoke(cli, ["sweep", "http://127.0.0.1:1/", "--sweep", "users=1,2", "--results", str(tmp_path)])
    assert isinstance(bad_sweep.exception, InvalidInput) and "users=1,2" in str(bad_sweep.exception)
    bad_slo = runner.invoke(cli, ["scenario", "server", "http://127.0.0.1:1/", "--slo", "p99=fast"])
    assert bad_slo.exit_code == 2 and "expected e.g. p99=50ms" in bad_slo.output


@pytest.mark.parametrize("text", ["url: http://127.0.0.1:1\nmodel: m\nload: {concurrency: [0]}"])
def test_experiment_file_errors_name_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["experiment", "run", str(path), "--results", str(tmp_path)])
    assert isinstance(result.exception, InvalidInput) and "concurrency=0" in str(result.exception)
