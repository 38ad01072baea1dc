"""The whole loop for real: profile digits, predict two rates, measure them open loop, report predicted vs measured."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from inferlab.cli.main import cli
from tests.report.browser import blank_figures, chromium, open_page

SRC = Path(__file__).parents[2] / "src"
RATES = (100, 200)
pytestmark = pytest.mark.skipif(chromium() is None, reason="needs Debian chromium")


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}{result.exception!r}"
    return result.output


@pytest.fixture(scope="module")
def flow(base_url: str, model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with digits.profile.json, pred.json (`predict --json` redirected to a file) and three runs."""
    folder = tmp_path_factory.mktemp("overlay")
    profile = folder / "digits.profile.json"
    _invoke("profile", "digits", "--model-repository", str(model_repository), "--batch-sizes", "1,2",
            "--settings", "1x1", "--seconds-per-point", "0.1", "--overhead-seconds", "0.3", "-o", str(profile))
    with (folder / "pred.json").open("wb") as out:  # as a user saves it: stdout to a file
        subprocess.run([sys.executable, "-m", "inferlab", "predict", "--profile", str(profile), "--rates",
                        ",".join(map(str, RATES)), "--requests", "3000", "--json"],
                       stdout=out, check=True, env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=60)
    runs = folder / "runs"
    runs.mkdir()
    for rate in RATES:
        _invoke("bench", base_url, "--model", "digits", "--rate", str(rate), "--poisson", "-n", str(rate),
                "-c", "8", "--no-progress", "--json", str(runs / f"open-{rate}.json"))
    _invoke("bench", base_url, "--model", "digits", "-n", "40", "-c", "2", "--no-progress",
            "--json", str(runs / "closed.json"))
    return folder


def test_report_overlays_a_real_prediction_on_real_runs(flow: Path) -> None:
    page = flow / "report.html"
    output = _invoke("report", str(flow / "runs"), "--prediction", str(flow / "pred.json"), "-o", str(page),
                     "--figures", str(flow / "figures"))
    assert "(3 run(s), 2 predicted rate(s))" in output
    text = page.read_text()
    table = text[text.index('<table id="overlay">'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr(?: class=\"invalid\")?><td>[^<]*</td><td>([^<]*)</td>", table)
    assert rows == [str(r) for r in RATES]
    assert len(re.findall(r"<td(?: class=\"beyond\")?>[+-]\d+%</td>", table)) == 3 * len(RATES)  # p50, p99, throughput
    unmatched = text[text.index('<ul class="meta" id="unmatched">'):]
    assert "c=2: closed loop" in unmatched[:unmatched.index("</ul>")]
    shot = open_page(page)
    assert shot.console_errors == []
    overlay = [f for f in shot.figures if f["id"] == "predicted_vs_measured"]
    assert len(overlay) == 1 and overlay[0]["complete"] and overlay[0]["naturalWidth"] > 0
    assert blank_figures(shot) == []
    assert (flow / "figures" / "predicted_vs_measured.svg").stat().st_size > 1000


def test_report_refuses_a_prediction_file_that_is_not_predict_output(flow: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(flow / "runs"), "--prediction", str(flow / "digits.profile.json"),
                                      "-o", str(flow / "never.html")])
    assert result.exit_code != 0
    assert "digits.profile.json #1: missing rate_rps" in str(result.exception)
    assert not (flow / "never.html").exists()
