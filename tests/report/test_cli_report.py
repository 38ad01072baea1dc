"""`inferlab report` from the command line: files and folders in, one HTML file and figure files out."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from inferlab.cli.main import cli

SAMPLES = Path(__file__).parents[1] / "importers" / "samples"


def test_report_command_writes_html_and_figures(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", str(SAMPLES), "-o", str(out), "--figures", str(tmp_path / "f"),
                                      "--title", "old runs"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "(3 run(s))" in result.output
    html = out.read_text()
    assert "<title>old runs</title>" in html and html.count("data:image/svg+xml;base64,") >= 3
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched
    assert "hey: hey.csv" in html and "c=0" not in html
    assert "<td>-</td>" in html  # imported runs are no sweep steps
    assert len(list((tmp_path / "f").glob("*.png"))) == len(list((tmp_path / "f").glob("*.svg"))) >= 3


def test_report_command_rejects_unknown_files(tmp_path: Path) -> None:
    bad = tmp_path / "x.txt"
    bad.write_text("nothing")
    result = CliRunner().invoke(cli, ["report", str(bad), "-o", str(tmp_path / "r.html")])
    assert result.exit_code != 0
    assert "x.txt: unknown format" in str(result.exception)
