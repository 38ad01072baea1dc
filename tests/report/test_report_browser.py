"""A report built from real runs opens in headless Chromium with no console errors and every figure drawn."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inferlab.experiments.driver import LoadgenDriver
from inferlab.experiments.points import LoadPoint, sweep_points
from inferlab.experiments.sweep import SweepSettings, run_sweep
from inferlab.importers import load_results
from inferlab.loadgen.payloads import model_target
from inferlab.loadgen.plan import Target
from inferlab.loadgen.result import RunResult
from inferlab.report.figures import FIGURES
from inferlab.report.render import render_report
from tests.experiments.sleep_server import serve_sleep
from tests.report.browser import PageShot, blank_figures, chromium, open_page

SAMPLES = Path(__file__).parents[1] / "importers" / "samples"
pytestmark = pytest.mark.skipif(chromium() is None, reason="needs Debian chromium")


@pytest.fixture(scope="module")
def real_runs(base_url: str) -> list[RunResult]:
    """A digits sweep over threads x think time, two runs of a server that sends Server-Timing, and a JTL."""
    settings = SweepSettings(window_s=0.3, warmup_s=0.2, tolerance=0.5, max_windows=4)
    digits = LoadgenDriver(model_target(base_url, "digits"), labels={"series": "digits REST"})
    runs = [s.result for s in run_sweep(digits, sweep_points(["concurrency=1,2,4", "think=0,0.002"]), settings)]
    with serve_sleep(workers=2, service_s=0.004) as url:
        for series in ("sleep 2 workers A", "sleep 2 workers B"):
            driver = LoadgenDriver(Target(f"{url}/"), labels={"series": series})
            runs.append(driver.run(LoadPoint(rate=150.0), duration_s=2.2, warmup_s=0.2))
    return runs + load_results(SAMPLES / "results.jtl")


def test_report_renders_every_figure_without_console_errors(real_runs: list[RunResult], tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_report(real_runs, title="browser check", figures_dir=tmp_path / "figures"))
    text = page.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing is fetched from elsewhere
    shot = open_page(page)
    assert shot.console_errors == []
    assert {f["id"] for f in shot.figures} == {make.__name__ for make in FIGURES}
    assert all(f["complete"] and f["naturalWidth"] > 0 for f in shot.figures), shot.figures
    assert blank_figures(shot) == []
    saved = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert saved == sorted(f"{make.__name__}.{ext}" for make in FIGURES for ext in ("png", "svg"))


def test_checker_catches_console_errors_and_blank_figures(tmp_path: Path) -> None:
    """The browser check itself must fail on a broken page, or its passing above would mean nothing."""
    page = tmp_path / "broken.html"
    page.write_text('<html><body><script>console.error("boom")</script>'
                    '<figure id="empty"><img style="width:600px;height:300px" src="data:image/png;base64,AAAA">'
                    "</figure></body></html>")
    shot: PageShot = open_page(page)
    assert any("boom" in e for e in shot.console_errors)
    assert shot.figures[0]["naturalWidth"] == 0
    (verdict,) = blank_figures(shot)  # a broken-image icon is a few pixels of ink, not a chart
    assert verdict.startswith("empty: ")


def test_figures_dir_gets_png_and_svg_copies(tmp_path: Path) -> None:
    runs = load_results(SAMPLES)
    render_report(runs, figures_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert {p.suffix for p in files} == {".png", ".svg"}
    assert all(p.stat().st_size > 1000 for p in files)
