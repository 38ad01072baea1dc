"""One self-contained HTML report: a summary table and every figure inlined as SVG data, no scripts, no CDN.

The file must open offline years from now and in a mail attachment, so figures are embedded as
`data:image/svg+xml;base64` images (each SVG isolated, so ids in one cannot clash with another's) and the
page carries its own CSS. `--figures DIR` writes the same figures as PNG and SVG files.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inferlab import __version__
from inferlab.loadgen.result import RunResult
from inferlab.report.figures import Plot, all_plots, predicted_vs_measured
from inferlab.report.overlay import RATE_TOLERANCE, TARGETS, Comparison, Overlay, match
from inferlab.report.predictions import PredictedPoint
from inferlab.report.runs import RunView, views

#: The overlay table's metrics, those with a target (p95 has none: it is in the figure only).
TABLE_METRICS = ("p50", "p99", "throughput")
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.meta { color: #666; font-size: .9rem; }
table { border-collapse: collapse; font-size: .85rem; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; white-space: normal; }
th { background: #f4f4f4; } th[colspan] { text-align: center; }
.wide { overflow-x: auto; }
tr.invalid td { color: #a40000; }
td.beyond { background: #fde2e2; color: #a40000; font-weight: 600; }
figure { margin: 1.5rem 0; } figure img { width: 100%; max-width: 60rem; display: block; }
figcaption { color: #555; font-size: .9rem; margin-top: .3rem; }
pre { background: #f7f7f7; padding: .8rem; overflow-x: auto; font-size: .8rem; }
"""


def svg_bytes(plot: Plot) -> bytes:
    buffer = io.BytesIO()
    plot.figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def save_figures(plots: Sequence[Plot], folder: Path) -> list[Path]:
    """Each figure as NAME.png (150 dpi) and NAME.svg; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in plots:
        for suffix, options in ((".png", {"dpi": 150}), (".svg", {"metadata": {"Date": None}})):
            path = folder / f"{plot.name}{suffix}"
            plot.figure.savefig(path, **options)
            written.append(path)
    return written


def render_report(results: Sequence[RunResult], title: str = "inferlab report", notes: Sequence[str] = (),
                  figures_dir: Path | None = None, predictions: Sequence[PredictedPoint] = (),
                  rate_tolerance: float = RATE_TOLERANCE) -> str:
    """The report's HTML text; with `figures_dir`, also the figure files.

    With `predictions` (from `inferlab predict --json`) it adds a "Predicted vs measured" section.
    """
    runs = views(results)
    plots = all_plots(runs)
    overlay = match(runs, predictions, rate_tolerance) if predictions else None
    overlay_plot = predicted_vs_measured(overlay) if overlay is not None else None
    if figures_dir is not None:
        save_figures(plots + ([overlay_plot] if overlay_plot else []), figures_dir)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{len(runs)} run(s), generated {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC '
        f"by inferlab {__version__}. Latency is timed from each request's intended send time.</p>",
        "<h2>Runs</h2>",
        _table(runs),
    ]
    parts += [f"<pre>{html.escape(note)}</pre>" for note in notes]
    if overlay is not None:
        parts.append(_overlay_section(overlay, overlay_plot, rate_tolerance))
    parts += [f"<h2>{html.escape(plot.title)}</h2>{_figure(plot)}" for plot in plots]
    parts.append(_environments(runs))
    parts.append("</body></html>")
    return "\n".join(parts)


def _figure(plot: Plot) -> str:
    data = base64.b64encode(svg_bytes(plot)).decode()
    return (f'<figure id="{plot.name}"><img alt="{html.escape(plot.title)}" src="data:image/svg+xml;base64,{data}">'
            f"<figcaption>{html.escape(plot.caption)}</figcaption></figure>")


def _overlay_section(overlay: Overlay, plot: Plot | None, tolerance: float) -> str:
    """The figure, one table row per matched run, and every run that could not be compared, with why."""
    within = sum(not any(m.beyond_target for m in c.metrics) for c in overlay.matched)
    parts = [
        "<h2>Predicted vs measured</h2>",
        f'<p class="meta">{len(overlay.predicted)} predicted rate(s); {len(overlay.matched)} run(s) matched to a '
        f"prediction within {100 * tolerance:g}% of their offered rate, {within} of them within every target. "
        "Relative error = (measured - predicted) / measured; highlighted beyond the target.</p>",
    ]
    if plot is not None:
        parts.append(_figure(plot))
    if overlay.matched:
        parts.append(_overlay_table(overlay.matched))
    if overlay.unmatched:
        items = "".join(f"<li>{html.escape(u.run.name)}: {html.escape(u.reason)}</li>" for u in overlay.unmatched)
        parts.append(f'<h3>Runs not compared</h3><ul class="meta" id="unmatched">{items}</ul>')
    return "".join(parts)


def _overlay_table(matched: Sequence[Comparison]) -> str:
    names = [n for n in TABLE_METRICS if any(c.metric(n) for c in matched)]
    groups = "".join(f'<th colspan="3">{n} {"req/s" if n == "throughput" else "ms"}'
                     f'{f" (±{100 * t:g}%)" if (t := TARGETS[n]) else ""}</th>' for n in names)
    head = ('<div class="wide"><table id="overlay"><thead><tr><th rowspan="2">run</th><th rowspan="2">rate/s</th>'
            f'{groups}<th rowspan="2">generator</th></tr><tr>'
            + "<th>pred.</th><th>meas.</th><th>error</th>" * len(names) + "</tr></thead><tbody>")
    rows = [head]
    for c in matched:
        rate = f"{c.run.rate:g}" + ("" if c.run.rate == c.predicted.rate_rps else f" (model: {c.predicted.rate_rps:g})")
        cells = [f"<td>{html.escape(c.run.name)}</td><td>{rate}</td>"]
        for name in names:
            m = c.metric(name)
            if m is None:
                cells.append("<td>-</td>" * 3)
                continue
            css = ' class="beyond"' if m.beyond_target else ""
            cells.append(f"<td>{_number(m.predicted)}</td><td>{_number(m.measured)}</td><td{css}>{m.percent}</td>")
        valid = c.run.result.self_check.valid
        cells.append(f"<td>{'ok' if valid else 'INVALID'}</td>")
        rows.append(("<tr>" if valid else '<tr class="invalid">') + "".join(cells) + "</tr>")
    rows.append("</tbody></table></div>")
    return "".join(rows)


def _table(runs: Sequence[RunView]) -> str:
    head = ("run", "mode", "requests", "ok %", "req/s", "mean ms", "p50 ms", "p90 ms", "p99 ms", "max ms",
            "errors", "step", "generator")
    rows = ["<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for run in runs:
        r = run.result
        p = r.latency.percentiles_ms
        check = "ok" if r.self_check.valid else "INVALID: " + "; ".join(r.self_check.reasons)
        cells = (run.name, r.mode, f"{r.counts.requests:,}", f"{100 * r.success_rate:.1f}", f"{r.requests_per_s:.1f}",
                 f"{r.latency.mean_ms:.2f}", _ms(p.get("50")), _ms(p.get("90")), _ms(p.get("99")),
                 f"{r.latency.max_ms:.2f}", str(r.counts.requests - r.counts.ok), _stability(r.config), check)
        css = "" if r.self_check.valid else ' class="invalid"'
        rows.append(f"<tr{css}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    rows.append("</tbody></table>")
    return "".join(rows)


def _stability(config: dict[str, Any]) -> str:
    """A sweep step's verdict: did its last windows agree, and after how many windows?"""
    step = config.get("step")
    if not isinstance(step, dict):
        return "-"
    return f"{'stable' if step.get('stable') else 'NOT STABLE'} ({step.get('windows', '?')} windows)"


def _number(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "-"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _environments(runs: Sequence[RunView]) -> str:
    """Each distinct environment once, so a number can be traced to the machine that produced it."""
    seen = []
    for run in runs:
        env = run.result.environment
        line = (f"{env.hostname or '?'}: {env.cpu_model or 'cpu ?'} x{env.cpu_count}, python {env.python or '?'}, "
                f"{env.platform or '?'}, loop {env.event_loop or '?'}, inferlab {env.inferlab_version}")
        if env.argv and env.argv[0].startswith("imported"):
            line = f"{env.argv[0]} (started {env.started_at or 'unknown'})"
        if line not in seen:
            seen.append(line)
    items = "".join(f"<li>{html.escape(line)}</li>" for line in seen)
    return f"<h2>Environment</h2><ul class=\"meta\">{items}</ul>"
