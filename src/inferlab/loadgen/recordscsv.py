"""The per-request CSV: every RequestRecord on one row, with one column per Server-Timing metric."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from inferlab.loadgen.result import RequestRecord

COLUMNS = ("index", "process", "intended_s", "sent_s", "connect_ms", "write_ms", "wait_ms", "read_ms", "latency_ms",
           "service_ms", "status", "bytes_in", "bytes_out", "error_kind", "error")


def write_requests_csv(records: Sequence[RequestRecord], path: str | Path) -> Path:
    """Rows in intended-send order; `server_<name>_ms` columns for every metric any response carried."""
    names = sorted({name for r in records for name in r.server_timing_ms})
    out = Path(path)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*COLUMNS, *(f"server_{name}_ms" for name in names)])
        for r in records:
            writer.writerow([r.index, r.process, f"{r.intended_s:.6f}", f"{r.sent_s:.6f}", f"{r.connect_ms:.4f}",
                             f"{r.write_ms:.4f}", f"{r.wait_ms:.4f}", f"{r.read_ms:.4f}", f"{r.latency_ms:.4f}",
                             f"{r.service_ms:.4f}", r.status, r.bytes_in, r.bytes_out, r.error_kind, r.error,
                             *(f"{r.server_timing_ms[n]:.4f}" if n in r.server_timing_ms else "" for n in names)])
    return out
