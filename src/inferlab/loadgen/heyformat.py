"""hey's text summary and `-o csv` rows, from a RunResult, so `inferlab bench` can replace hey in scripts.

The sections and their formats are hey's (print.go): Summary, Response time histogram, Latency
distribution, Details, Status code distribution, Error distribution. What hey cannot tell is appended
after them: open-loop latency vs service time, Server-Timing spans, and the generator's self-check.
Differences from hey, on purpose: every request asked for is counted (no n % c remainder dropped),
statistics cover every request (no 1M-sample cap).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

import numpy as np

from inferlab.loadgen.histogram import value_counts_ms
from inferlab.loadgen.result import LatencySummary, RequestRecord, RunResult

HEY_PERCENTILES = ("10", "25", "50", "75", "90", "95", "99")
HEY_CSV_HEADER = "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset"
_BAR = "\u25a0"


def render_text(result: RunResult) -> str:
    """hey's summary for this run, followed by inferlab's own sections."""
    out = io.StringIO()
    w = out.write
    lat = result.latency
    total_s = result.duration_s
    if lat.count:
        w("\nSummary:\n")
        w(f"  Total:\t{total_s:4.4f} secs\n")
        w(f"  Slowest:\t{lat.max_ms / 1000:4.4f} secs\n")
        w(f"  Fastest:\t{lat.min_ms / 1000:4.4f} secs\n")
        w(f"  Average:\t{lat.mean_ms / 1000:4.4f} secs\n")
        w(f"  Requests/sec:\t{result.requests_per_s:4.4f}\n")
        w("  \n")
        if result.body_bytes_in:
            w(f"  Total data:\t{result.body_bytes_in} bytes\n")
            w(f"  Size/request:\t{result.body_bytes_in // max(result.counts.requests, 1)} bytes\n")
        w("\nResponse time histogram:\n")
        w(_histogram(lat))
        w("\n\nLatency distribution:\n")
        for p in HEY_PERCENTILES:
            w(f"  {p}% in {lat.percentiles_ms[p] / 1000:4.4f} secs\n")
    w("\nDetails (average, fastest, slowest):\n")
    connect = result.phases.get("connect")
    requests = max(result.counts.requests, 1)
    if connect is not None and connect.count:
        w(f"  DNS+dialup:\t{connect.mean_ms * connect.count / requests / 1000:4.4f} secs, "
          f"{connect.min_ms / 1000:4.4f} secs, {connect.max_ms / 1000:4.4f} secs\n")
    else:
        w("  DNS+dialup:\t0.0000 secs, 0.0000 secs, 0.0000 secs\n")
    w("  DNS-lookup:\t0.0000 secs, 0.0000 secs, 0.0000 secs\n")
    for label, name in (("req write", "write"), ("resp wait", "wait"), ("resp read", "read")):
        s = result.phases.get(name)
        if s is None or not s.count:
            w(f"  {label}:\t0.0000 secs, 0.0000 secs, 0.0000 secs\n")
        else:
            w(f"  {label}:\t{s.mean_ms / 1000:4.4f} secs, {s.min_ms / 1000:4.4f} secs, {s.max_ms / 1000:4.4f} secs\n")
    w("\nStatus code distribution:\n")
    for code, n in result.status_codes.items():
        w(f"  [{code}]\t{n} responses\n")
    transport_errors = [e for e in result.errors if e.kind != "http"]
    if transport_errors:
        w("\nError distribution:\n")
        for e in transport_errors:
            w(f"  [{e.count}]\t{e.message}\n")
    w("\n")
    w(_extras(result))
    return out.getvalue()


def _histogram(lat: LatencySummary) -> str:
    """hey's 11 linear buckets from fastest to slowest, bars scaled to 40 marks."""
    fastest, slowest = lat.min_ms / 1000, lat.max_ms / 1000
    edges = [fastest + (slowest - fastest) / 10 * i for i in range(10)] + [slowest]
    values, counts = value_counts_ms(lat.histogram)
    bucket = np.minimum(np.searchsorted(np.array(edges), values / 1000, side="left"), 10)
    per_bucket = np.bincount(bucket, weights=counts, minlength=11).astype(np.int64)
    top = int(per_bucket.max()) if per_bucket.size else 0
    lines = []
    for edge, n in zip(edges, per_bucket.tolist(), strict=True):
        bar = (n * 40 + top // 2) // top if top else 0
        lines.append(f"  {edge:4.3f} [{n}]\t|{_BAR * bar}\n")
    return "".join(lines)


def _extras(result: RunResult) -> str:
    lines = []
    c = result.counts
    lines.append(f"Requests:\t{c.requests} sent, {c.ok} ok, {c.http_errors} HTTP errors, {c.errors} errors, "
                 f"{c.timeouts} timeouts" + (f", {c.not_sent} never sent" if c.not_sent else "")
                 + (f" ({c.warmup} warm-up requests excluded)" if c.warmup else ""))
    pct = ("50", "90", "99", "99.9")
    if result.mode == "open":
        lines.append("Latency from the intended send time (coordinated-omission free): "
                     + ", ".join(f"p{p} {result.latency.percentiles_ms[p]:.3f} ms" for p in pct))
    lines.append("Service time from the actual send: "
                 + ", ".join(f"p{p} {result.service.percentiles_ms[p]:.3f} ms" for p in pct))
    if result.server_timing:
        lines.append("Server-Timing (mean / p50 / p99 ms):")
        for name, s in result.server_timing.items():
            lines.append(f"  {name}:\t{s.mean_ms:.3f} / {s.percentiles_ms['50']:.3f} / {s.percentiles_ms['99']:.3f}")
        if result.transport is not None:
            t = result.transport
            lines.append(f"  transport (service - total):\t{t.mean_ms:.3f} / {t.percentiles_ms['50']:.3f} / "
                         f"{t.percentiles_ms['99']:.3f}")
    check = result.self_check
    lag = check.send_lag.percentiles_ms
    status = "VALID" if check.valid else "INVALID"
    lines.append(f"Generator self-check: {status} (send lag p50 {lag['50']:.3f} ms, p99 {lag['99']:.3f} ms; "
                 f"CPU {check.cpu_percent:.0f}% of a core)")
    lines.extend(f"  INVALID: {reason}" for reason in check.reasons)
    return "\n".join(lines) + "\n"


def invalid_banner(result: RunResult) -> str:
    """The loud warning printed to stderr when the generator could not keep up ("" for a valid run)."""
    if result.self_check.valid:
        return ""
    rule = "!" * 78
    body = "\n".join(f"!! {r}" for r in result.self_check.reasons)
    return f"{rule}\n!! RESULT IS INVALID: the load generator could not keep up.\n{body}\n{rule}\n"


def hey_csv(records: Iterable[RequestRecord]) -> str:
    """hey -o csv: one row per successful request, seconds with 4 decimals, offset from the run's start."""
    out = io.StringIO()
    out.write(HEY_CSV_HEADER + "\n")
    writer = csv.writer(out, lineterminator="\n")
    for r in records:
        if r.error_kind or r.status == 0:
            continue
        writer.writerow([f"{r.service_ms / 1000:4.4f}", f"{r.connect_ms / 1000:4.4f}", "0.0000",
                         f"{r.write_ms / 1000:4.4f}", f"{r.wait_ms / 1000:4.4f}", f"{r.read_ms / 1000:4.4f}",
                         r.status, f"{r.sent_s:4.4f}"])
    return out.getvalue()
