"""The request and response objects every serving layer passes; no protocol types cross this line."""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from inferlab.tensors import Array


@dataclass(slots=True)
class Timings:
    """perf_counter stamps of one request's life in the server, in seconds.

    Filled in as the request moves: the adapter stamps `received`, `read` and `encoded`, the scheduler
    `enqueued`/`batch_start`, the runtime call `infer_start`/`infer_end`. `read` stays 0 when the
    body came with the request (gRPC) and there was nothing to wait for.
    """

    received: float = field(default_factory=perf_counter)
    read: float = 0.0
    enqueued: float = 0.0
    batch_start: float = 0.0
    infer_start: float = 0.0
    infer_end: float = 0.0
    encoded: float = 0.0
    batch_size: int = 1


@dataclass(slots=True)
class InferRequest:
    """An inference call after decoding: inputs are numpy arrays keyed by input name."""

    model: str
    version: str | None
    inputs: dict[str, Array]
    outputs: list[str] | None = None
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)


@dataclass(slots=True)
class InferResponse:
    """The result of one InferRequest: outputs keyed by name, in the order the client asked for."""

    model: str
    version: str
    outputs: dict[str, Array]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
