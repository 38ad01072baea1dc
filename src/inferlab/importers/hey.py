"""`hey -o csv` output -> RunResult: one row per successful request, times in seconds, `offset` from the start."""

from __future__ import annotations

import csv
import io

from inferlab.errors import InvalidInput
from inferlab.importers.records import result_from_records
from inferlab.loadgen.heyformat import HEY_CSV_HEADER
from inferlab.loadgen.result import RequestRecord, RunResult

HEADER = tuple(HEY_CSV_HEADER.split(","))  # what our own hey-format writer puts first


def is_hey_csv(head: str) -> bool:
    return head.lstrip().startswith(f"{HEADER[0]},")


def import_hey_csv(text: str, source: str = "hey.csv") -> RunResult:
    """hey writes no failed requests and no start time, so the run starts at 0 and every row is a response.

    `DNS+dialup` is the connect phase (0 on a reused connection), `Response-delay` the wait for the first
    byte, as in our own records; hey runs closed loop, so latency and service time are the same number.
    """
    reader = csv.reader(io.StringIO(text))
    header = tuple(next(reader, ()))
    if header != HEADER:
        raise InvalidInput(f"{source}: not a `hey -o csv` file; expected the header {','.join(HEADER)}")
    records: list[RequestRecord] = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            total, dial, _dns, write, delay, read, status, offset = (float(v) for v in row)
        except ValueError:
            raise InvalidInput(f"{source}: line {line}: expected 8 numbers, got {row}") from None
        records.append(RequestRecord(
            index=len(records), intended_s=offset, sent_s=offset, connect_ms=dial * 1000.0, write_ms=write * 1000.0,
            wait_ms=delay * 1000.0, read_ms=read * 1000.0, latency_ms=total * 1000.0, service_ms=total * 1000.0,
            status=int(status), bytes_in=0, bytes_out=0,
        ))
    return result_from_records(records, tool="hey", config={"source": source, "load": {"mode": "closed"}},
                               started_at_unix=0.0)
