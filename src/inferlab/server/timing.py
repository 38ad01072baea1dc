"""Where a request's server time went: the Server-Timing header, V2 response parameters, the access log.

The parts tile the request's life inside the server with no gap, so they add up to the total:

    receive received -> read          the rest of the body arriving after its head: transport, not decoding
                                      (0.06 ms for 600 KB, 0.12 ms for 1.1 MB from a client on this machine;
                                      a slow client's upload shows here)
    decode  read -> enqueued          parse the body, validate it against the model
    queue   enqueued -> infer_start   wait in the model's queue for a batch and a free instance
    infer   infer_start -> infer_end  the runtime call (for the whole batch this request ran in)
    encode  infer_end -> encoded      split the batch, hand the rows back, serialise the reply

`batch` is the number of rows in the batch the request ran in. Time before the adapter sees the
request (HTTP parsing in uvicorn) and after it returns the body (socket writes) is not included.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from time import perf_counter
from typing import Any

import orjson

from inferlab.errors import InvalidInput
from inferlab.messages import InferRequest, Timings

TIMEOUT_HEADER = "Inferlab-Timeout-Ms"
TIMEOUT_PARAMETER = "timeout"
"""V2 request parameter, in microseconds as in Triton; the header is in milliseconds."""

access_logger = logging.getLogger("inferlab.access")


def arrived(request: InferRequest, received: float, read: float, timeout_header: str | None) -> None:
    """Record when the adapter got the request and its whole body, and the timeout its header asked for."""
    request.timings.received = received
    request.timings.read = read
    if timeout_header is not None:
        try:
            timeout_ms = float(timeout_header)
        except ValueError:
            timeout_ms = -1.0
        if not timeout_ms >= 0:
            raise InvalidInput(f"header {TIMEOUT_HEADER}: {timeout_header!r} is not a number of milliseconds >= 0")
        request.parameters.setdefault(TIMEOUT_PARAMETER, round(timeout_ms * 1000))


def deadline(request: InferRequest) -> float:
    """The perf_counter time by which the request must have started running; 0 for none."""
    raw = request.parameters.get(TIMEOUT_PARAMETER)
    if raw is None:
        return 0.0
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise InvalidInput(f"parameter '{TIMEOUT_PARAMETER}': {raw!r} is not a number of microseconds >= 0")
    return request.timings.received + raw / 1e6 if raw else 0.0


def parts_ms(t: Timings) -> dict[str, float]:
    """receive, decode, queue, infer, encode and total in ms (encode and total once `encoded` is stamped)."""
    read = t.read or t.received
    parts = {
        "receive": (read - t.received) * 1e3,
        "decode": (t.enqueued - read) * 1e3,
        "queue": (t.infer_start - t.enqueued) * 1e3,
        "infer": (t.infer_end - t.infer_start) * 1e3,
    }
    if t.encoded:
        parts["encode"] = (t.encoded - t.infer_end) * 1e3
        parts["total"] = (t.encoded - t.received) * 1e3
    return parts


def response_parameters(t: Timings) -> dict[str, Any]:
    """The V2 response `parameters`: what is known before the body is encoded (so no encode/total)."""
    parameters: dict[str, Any] = {f"{name}_ms": round(value, 3) for name, value in parts_ms(t).items()}
    parameters["batch_size"] = t.batch_size
    return parameters


def server_timing(t: Timings) -> str:
    """The `Server-Timing` header value (durations in ms, as the header's spec wants)."""
    items = [f"{name};dur={value:.3f}" for name, value in parts_ms(t).items()]
    items.append(f'batch;desc="{t.batch_size}"')
    return ", ".join(items)


class AccessLog:
    """One JSON line per inference request on the `inferlab.access` logger, when enabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._pid = os.getpid()  # tells the worker processes apart

    def write(
        self, model: str, version: str | None, request_id: str | None, t: Timings, status: int,
        error: str | None = None,
    ) -> None:
        if not self.enabled:
            return
        line: dict[str, Any] = {
            "ts": round(time.time(), 6),
            "id": request_id or uuid.uuid4().hex[:16],
            "model": model,
            "version": version,
            "status": status,
            "pid": self._pid,
        }
        if error is None:
            line.update({f"{k}_ms": round(v, 3) for k, v in parts_ms(t).items()})
            line["batch_size"] = t.batch_size
        else:
            line["total_ms"] = round((perf_counter() - t.received) * 1e3, 3)
            line["error"] = error
        access_logger.info(orjson.dumps(line).decode())
