"""Plots with matplotlib: load curves, the seed 004 thread/think-time plots, time series, histograms, breakdowns.

Each function takes the report's runs and returns a `Figure`, or None when the runs hold nothing it could
show (no closed-loop sweep, no Server-Timing spans). Figures are built with the object API, never pyplot,
so nothing global is touched and reports can be rendered from any thread.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from hdrh.histogram import HdrHistogram
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from inferlab.report.overlay import LATENCIES, Comparison, Overlay
from inferlab.report.runs import RunView

SIZE = (8.0, 4.2)
PERCENTILE_STYLES = (("50", "-", "p50"), ("90", "--", "p90"), ("99", ":", "p99"))
#: Server-Timing names grouped into the stacked breakdown's parts, in stacking order.
BREAKDOWN = (("pre-processing", ("decode",)), ("queue", ("queue",)), ("inference", ("infer",)),
             ("post-processing", ("encode",)))
#: Server-Timing names inside the server's total that are transport: the rest of a large body arriving.
TRANSPORT_SPANS = ("receive",)
MAX_LINES = 8  # more lines than this on one axis stop being readable


@dataclass(frozen=True, slots=True)
class Plot:
    """A finished figure with the name its files get and the caption the report shows under it."""

    name: str
    title: str
    caption: str
    figure: Figure


#: Predicted-vs-measured line style per latency percentile, as PERCENTILE_STYLES with p95 between.
OVERLAY_STYLES = {"p50": ("-", "C0"), "p95": ("--", "C2"), "p99": (":", "C4")}  # C3 (red) marks misses
CAPACITY_IN_VIEW = 2.0  # draw the predicted capacity when it is at most this many times the highest rate


def _log_y(ax: Axes) -> None:
    """Log scale with plain numbers (0.5, 2, 10), not 5x10^-1; over more than a decade only 1, 2, 5 x 10^k,

    since every minor tick labelled over several decades crowds its labels into each other."""
    ax.set_yscale("log")

    def plain(value: float, _: object) -> str:
        low, high = ax.get_ylim()
        mantissa = round(value / 10 ** math.floor(math.log10(value)), 6) if value > 0 else 0.0
        return f"{value:g}" if high <= 10 * low or mantissa in (1.0, 2.0, 5.0) else ""

    ax.yaxis.set_major_formatter(FuncFormatter(plain))
    ax.yaxis.set_minor_formatter(FuncFormatter(plain))


def _figure(rows: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(SIZE[0], SIZE[1] * rows), layout="constrained")
    axes = figure.subplots(rows, 1, squeeze=False)[:, 0]
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return figure, list(axes)


def _colors() -> itertools.cycle[str]:
    return itertools.cycle(f"C{i}" for i in range(10))


def _by_series(runs: Sequence[RunView]) -> dict[str, list[RunView]]:
    groups: dict[str, list[RunView]] = {}
    for run in runs:
        key = run.series + (f" think={run.think_s:g}s" if run.think_s else "")
        groups.setdefault(key, []).append(run)
    return {k: sorted(v, key=lambda r: r.load) for k, v in groups.items()}


def _load_label(runs: Sequence[RunView]) -> str:
    modes = {r.mode for r in runs}
    if modes == {"open"}:
        return "offered rate (requests/s)"
    if modes == {"closed"}:
        return "concurrent users (threads)"
    return "load (users, or requests/s for open-loop runs)"


def _curves(runs: Sequence[RunView]) -> dict[str, list[RunView]]:
    """Series with at least two load points: a single point is no curve."""
    return {k: v for k, v in _by_series(runs).items() if len({r.load for r in v}) >= 2}


def throughput_vs_load(runs: Sequence[RunView]) -> Plot | None:
    curves = _curves(runs)
    if not curves:
        return None
    figure, (ax,) = _figure()
    for (series, points), color in zip(curves.items(), _colors(), strict=False):
        x = [r.load for r in points]
        ax.plot(x, [r.result.ok_per_s for r in points], "o-", color=color, label=f"{series} (ok)")
        if any(r.result.ok_per_s < r.result.requests_per_s for r in points):
            ax.plot(x, [r.result.requests_per_s for r in points], "x--", color=color, alpha=0.6,
                    label=f"{series} (all)")
    ax.set_xlabel(_load_label([r for points in curves.values() for r in points]))
    ax.set_ylabel("throughput (requests/s)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")
    return Plot("throughput_vs_load", "Throughput vs load",
                "Completed requests per second at each load step; dashed lines include failed requests.", figure)


def latency_vs_load(runs: Sequence[RunView]) -> Plot | None:
    curves = _curves(runs)
    if not curves:
        return None
    figure, (ax,) = _figure()
    for (series, points), color in zip(curves.items(), _colors(), strict=False):
        x = [r.load for r in points]
        for key, style, name in PERCENTILE_STYLES[::2]:
            y = [r.result.latency.percentiles_ms.get(key, np.nan) for r in points]
            ax.plot(x, y, style, marker="o", color=color, label=f"{series} {name}")
    ax.set_xlabel(_load_label([r for points in curves.values() for r in points]))
    ax.set_ylabel("latency (ms)")
    _log_y(ax)
    ax.legend(fontsize="small", ncols=2)
    return Plot("latency_vs_load", "Latency percentiles vs load",
                "p50 (solid) and p99 (dotted) latency at each load step, timed from the intended send time.", figure)


def _closed_curves(runs: Sequence[RunView]) -> dict[str, list[RunView]]:
    return _curves([r for r in runs if r.mode == "closed"])


def mean_response_vs_threads(runs: Sequence[RunView]) -> Plot | None:
    curves = _closed_curves(runs)
    if not curves:
        return None
    figure, (ax,) = _figure()
    for (series, points), color in zip(curves.items(), _colors(), strict=False):
        x = [r.concurrency for r in points]
        ax.plot(x, [r.result.latency.mean_ms for r in points], "o-", color=color, label=f"{series} mean")
        ax.plot(x, [r.result.latency.percentiles_ms.get("50", np.nan) for r in points], "s--", color=color,
                alpha=0.7, label=f"{series} median")
    ax.set_xlabel("number of threads (concurrent users)")
    ax.set_ylabel("response time (ms)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")
    return Plot("mean_response_vs_threads", "Mean response time vs threads, per think time",
                "Mean (solid) and median (dashed) response time for each number of threads; one colour per "
                "think time, as in seed 004.", figure)


def success_rate_vs_threads(runs: Sequence[RunView]) -> Plot | None:
    curves = _closed_curves(runs)
    if not curves:
        return None
    figure, (ax,) = _figure()
    for (series, points), color in zip(curves.items(), _colors(), strict=False):
        ax.plot([r.concurrency for r in points], [100.0 * r.result.success_rate for r in points], "o-",
                color=color, label=series)
    ax.set_xlabel("number of threads (concurrent users)")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-2, 102)
    ax.legend(fontsize="small")
    return Plot("success_rate_vs_threads", "Success rate vs threads, per think time",
                "Share of requests answered with a status below 400, for each number of threads and think time.",
                figure)


def _busiest(runs: Sequence[RunView]) -> list[RunView]:
    """The highest-load run of each series: where time series and distributions say the most."""
    picked = [max(points, key=lambda r: r.load) for points in _by_series(runs).values()]
    return picked[:MAX_LINES]


def latency_over_time(runs: Sequence[RunView]) -> Plot | None:
    chosen = [r for r in _busiest(runs) if len(r.result.intervals) >= 2]
    if not chosen:
        return None
    figure, (top, bottom) = _figure(rows=2)
    for run, color in zip(chosen, _colors(), strict=False):
        intervals = run.result.intervals
        step_s = float(run.result.config.get("interval_s") or 1.0)
        # the first interval's clock starts at the run's start, but its counts only after the warm-up
        start = max(intervals[0].end_s - step_s, min(run.result.warmup_s, intervals[0].end_s - 1e-3))
        widths = np.diff([start, *(i.end_s for i in intervals)])
        # a run's short final interval holds only the drain: a few stragglers that would spike or dip
        full = [(i, w) for i, w in zip(intervals, widths, strict=True) if w >= step_s / 2 and i.requests]
        ends = [i.end_s for i, _ in full]
        for key, style, name in PERCENTILE_STYLES[::2]:
            top.plot(ends, [i.window_percentiles_ms.get(key, np.nan) for i, _ in full], style, marker=".",
                     color=color, label=f"{run.name} {name}")
        bottom.plot(ends, [i.requests / w for i, w in full], "-", marker=".", color=color, label=run.name)
    top.set_ylabel("latency (ms)")
    _log_y(top)
    top.legend(fontsize="small", ncols=2)
    bottom.set_xlabel("time since start (s)")
    bottom.set_ylabel("requests/s")
    bottom.set_ylim(bottom=0)
    return Plot("latency_over_time", "Latency and throughput over time",
                "Per-interval p50 (solid) and p99 (dotted) latency and completed requests per second, for the "
                "highest load of each series.", figure)


def _histogram_points(encoded: str) -> tuple[np.ndarray, np.ndarray]:
    """(value_ms, count) pairs of an HdrHistogram encoding, from its recorded buckets."""
    histogram = HdrHistogram.decode(encoded)
    values, counts = [], []
    for item in histogram.get_recorded_iterator():
        values.append(item.value_iterated_to / 1000.0)
        counts.append(item.count_added_in_this_iter_step)
    return np.array(values), np.array(counts, dtype=np.float64)


def latency_histogram(runs: Sequence[RunView]) -> Plot | None:
    chosen = [r for r in _busiest(runs) if r.result.latency.histogram]
    if not chosen:
        return None
    decoded = [_histogram_points(r.result.latency.histogram) for r in chosen]
    low = max(min(v.min() for v, _ in decoded), 1e-3)
    high = max(max(v.max() for v, _ in decoded), low * 1.01)
    bins = np.geomspace(low * 0.95, high * 1.05, 60).tolist()
    figure, (ax,) = _figure()
    for run, (values, counts), color in zip(chosen, decoded, _colors(), strict=False):
        share = 100.0 * counts / counts.sum()
        ax.hist(values, bins=bins, weights=share, histtype="step", linewidth=1.6, color=color, label=run.name)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("requests (%)")
    ax.legend(fontsize="small")
    return Plot("latency_histogram", "Latency histogram",
                "Share of requests per latency bin (log-spaced), from each run's exact HDR histogram.", figure)


def server_breakdown(runs: Sequence[RunView]) -> Plot | None:
    chosen = [r for r in runs if r.result.server_timing][: MAX_LINES * 2]
    if not chosen:
        return None
    parts: dict[str, list[float]] = {"transport": [], **{name: [] for name, _ in BREAKDOWN}, "other server": []}
    for run in chosen:
        timing = run.result.server_timing
        transport = run.result.transport
        named = sum(timing[k].mean_ms for k in TRANSPORT_SPANS if k in timing)
        parts["transport"].append((transport.mean_ms if transport else 0.0) + named)
        for name, keys in BREAKDOWN:
            value = sum(timing[k].mean_ms for k in keys if k in timing)
            parts[name].append(value)
            named += value
        total = timing["total"].mean_ms if "total" in timing else named
        parts["other server"].append(max(total - named, 0.0))
    figure, (ax,) = _figure()
    x = np.arange(len(chosen))
    bottom = np.zeros(len(chosen))
    for (name, values), color in zip(parts.items(), _colors(), strict=False):
        ax.bar(x, values, bottom=bottom, color=color, label=name, width=0.6)
        bottom += np.array(values)
    ax.set_xticks(x, [r.name for r in chosen], rotation=20, ha="right", fontsize="small")
    ax.set_ylabel("mean time per request (ms)")
    ax.legend(fontsize="small", ncols=3)
    return Plot("server_breakdown", "Where the time goes: client/transport vs server stages",
                "Mean per-request time from the server's Server-Timing spans (decode, queue, infer, encode) and "
                "the transport share (client time minus the server's total), stacked.", figure)


def percentile_comparison(runs: Sequence[RunView]) -> Plot | None:
    chosen = _busiest(runs)
    if len(chosen) < 2:
        return None
    figure, (ax,) = _figure()
    for run, color in zip(chosen, _colors(), strict=False):
        keys = [k for k in run.result.latency.percentiles_ms if float(k) < 100.0]
        x = [1.0 / (1.0 - float(k) / 100.0) for k in keys]
        ax.plot(x, [run.result.latency.percentiles_ms[k] for k in keys], "o-", color=color, label=run.name)
    ticks = [2.0, 10.0, 100.0, 1000.0, 10000.0]
    ax.set_xscale("log")
    ax.set_xticks(ticks, ["p50", "p90", "p99", "p99.9", "p99.99"])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.legend(fontsize="small")
    return Plot("percentile_comparison", "Latency percentiles, runs compared",
                "The latency percentile spectrum of several runs on one chart (e.g. REST vs gRPC, batch sizes), "
                "each at its series' highest load.", figure)


def predicted_vs_measured(overlay: Overlay) -> Plot | None:
    """Predicted lines, measured markers, each marker labelled with its relative error (red beyond target)."""
    if not overlay.predicted:
        return None
    rates = [p.rate_rps for p in overlay.predicted]
    figure, (top, bottom) = _figure(rows=2)
    for name in LATENCIES:
        style, color = OVERLAY_STYLES[name]
        values = [p.percentile_ms(name) for p in overlay.predicted]
        if all(v is None for v in values):
            continue
        top.plot(rates, [np.nan if v is None else v for v in values], style, color=color,
                 label=f"{name} predicted")
        _measured(top, overlay.matched, name, color, f"{name} measured")
    top.set_ylabel("latency (ms)")
    _log_y(top)
    top.legend(fontsize="small", ncols=3)
    capacity = [p.capacity_rps for p in overlay.predicted]
    on_scale = max(capacity) <= CAPACITY_IN_VIEW * max(rates)  # far above the rates it would flatten the curve
    off = "" if on_scale else f" (capacity {max(capacity):.0f}/s, off scale)"
    bottom.plot(rates, [p.throughput_rps for p in overlay.predicted], "-", color="C1",
                label=f"throughput predicted{off}")
    if on_scale:
        bottom.plot(rates, capacity, "--", color="C7", label="capacity predicted")
    _measured(bottom, overlay.matched, "throughput", "C1", "throughput measured (ok/s)")
    bottom.set_ylabel("throughput (requests/s)")
    bottom.set_ylim(bottom=0)
    bottom.legend(fontsize="small", ncols=2)
    right = 1.1 * max(rates + [c.run.rate for c in overlay.matched])  # room for the labels of the last markers
    for ax in (top, bottom):
        ax.set_xlabel("offered rate (requests/s)")
        ax.set_xlim(0, right)
    return Plot("predicted_vs_measured", "Predicted vs measured",
                "Lines: the performance model's prediction at each offered rate. Markers: open-loop runs at that "
                "rate, labelled with (measured - predicted) / measured; red labels miss the target (p50 15%, "
                "p99 25%, throughput 10%).", figure)


def _measured(ax: Axes, matched: Sequence[Comparison], name: str, color: str, label: str) -> None:
    found = [(c.run.rate, m) for c in matched if (m := c.metric(name)) is not None]
    if not found:
        return
    ax.plot([x for x, _ in found], [m.measured for _, m in found], "o", color=color, label=label)
    for x, m in found:
        ax.annotate(m.percent, (x, m.measured), xytext=(4, 4), textcoords="offset points", fontsize=7,
                    color="#c00000" if m.beyond_target else "#333333")


#: Every figure the report tries, in the order it shows them.
FIGURES: tuple[Callable[[Sequence[RunView]], Plot | None], ...] = (
    throughput_vs_load, latency_vs_load, mean_response_vs_threads, success_rate_vs_threads, latency_over_time,
    latency_histogram, server_breakdown, percentile_comparison,
)


def all_plots(runs: Sequence[RunView]) -> list[Plot]:
    return [plot for make in FIGURES if (plot := make(runs)) is not None]
