"""JMeter JTL (CSV) -> RunResult: one row per sample, `timeStamp` in epoch ms at the sample's start."""

from __future__ import annotations

import csv
import io

from inferlab.errors import InvalidInput
from inferlab.importers.records import result_from_records
from inferlab.loadgen.result import RequestRecord, RunResult

REQUIRED = ("timeStamp", "elapsed", "responseCode", "success")


def is_jtl(head: str) -> bool:
    return head.lstrip().startswith("timeStamp,")


def import_jtl(text: str, source: str = "results.jtl") -> RunResult:
    """JMeter's `Latency` is time to first byte and includes `Connect`, so wait = Latency - Connect and
    read = elapsed - Latency. `allThreads` is the number of threads running, JMeter's "users"; the
    largest value becomes the run's concurrency so thread sweeps (seed 004) plot against it.
    """
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
    if missing:
        raise InvalidInput(f"{source}: not a JMeter CSV JTL file; missing column(s) {missing}")
    rows = list(reader)
    try:
        start_ms = min(int(row["timeStamp"]) for row in rows) if rows else 0
        records: list[RequestRecord] = []
        users: list[int] = []
        for row in rows:
            records.append(_record(len(records), row, start_ms))
            users.append(int(row.get("allThreads") or row.get("grpThreads") or 0))
    except ValueError as exc:
        raise InvalidInput(f"{source}: line {len(records) + 2}: {exc}") from None
    threads = max(users, default=0)
    labels = sorted({row.get("label", "") for row in rows})
    config = {"source": source, "labels": labels, "load": {"mode": "closed", "concurrency": threads}}
    return result_from_records(records, tool="jmeter", config=config, started_at_unix=start_ms / 1000.0,
                               users=users)


def _record(index: int, row: dict[str, str], start_ms: int) -> RequestRecord:
    elapsed = float(row["elapsed"])
    connect = float(row.get("Connect") or 0)
    first_byte = float(row.get("Latency") or elapsed)
    code = row["responseCode"].strip()
    status = int(code) if code.isdigit() else 0
    ok = row["success"].strip().lower() == "true"
    kind = "" if ok else ("http" if status >= 400 else "protocol")
    message = "" if ok else (row.get("failureMessage") or row.get("responseMessage") or f"HTTP {status}")
    sent = (int(row["timeStamp"]) - start_ms) / 1000.0
    return RequestRecord(
        index=index, intended_s=sent, sent_s=sent, connect_ms=connect, write_ms=0.0,
        wait_ms=max(first_byte - connect, 0.0), read_ms=max(elapsed - first_byte, 0.0),
        latency_ms=elapsed, service_ms=elapsed, status=status,
        bytes_in=int(row.get("bytes") or 0), bytes_out=int(row.get("sentBytes") or 0),
        error_kind=kind, error=message,
    )
