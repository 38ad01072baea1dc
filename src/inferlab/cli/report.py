"""`inferlab report RESULTS... -o report.html [--figures DIR] [--prediction P.json]`: one HTML file from many runs."""

from __future__ import annotations

from pathlib import Path

import click

from inferlab.importers import load_results
from inferlab.report.overlay import RATE_TOLERANCE
from inferlab.report.predictions import load_predictions
from inferlab.report.render import render_report


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="The HTML file to write.")
@click.option("--figures", "figures_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also save every figure here as PNG and SVG.")
@click.option("--title", default="inferlab report", show_default=True, help="The report's heading.")
@click.option("--prediction", "prediction_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="`inferlab predict --json` output to overlay on the open-loop runs; repeatable (one curve).")
@click.option("--rate-tolerance", default=RATE_TOLERANCE, show_default=True, type=click.FloatRange(0, 1),
              help="A run is compared with the predicted rate nearest its own if within this share of it.")
def report(results: tuple[Path, ...], output: Path, figures_dir: Path | None, title: str,
           prediction_files: tuple[Path, ...], rate_tolerance: float) -> None:
    """Build a report from RunResult JSON files, results folders, hey CSVs, JMeter JTLs or locust *_stats.csv.

    Example: inferlab report results/sweep-2026-11-23/ old/hey.csv -o report.html --figures figs/
    """
    runs = [run for path in results for run in load_results(path)]
    notes = [p.read_text() for path in results if path.is_dir() for p in sorted(path.rglob("summary*.txt"))]
    predictions = load_predictions(prediction_files)
    output.write_text(render_report(runs, title=title, notes=notes, figures_dir=figures_dir, predictions=predictions,
                                    rate_tolerance=rate_tolerance))
    overlaid = f", {len(predictions)} predicted rate(s)" if predictions else ""
    figures = f", figures in {figures_dir}" if figures_dir else ""
    click.echo(f"wrote {output} ({len(runs)} run(s){overlaid}){figures}")
