"""Prometheus collectors on an instance-owned CollectorRegistry, one labelled set per model version.

Names and meanings (all labelled `model`, `version`):

    inferlab_request_success_total            inference requests answered with outputs
    inferlab_request_failure_total{reason}    failed ones: invalid, not_found, not_ready, overloaded,
                                              timeout, runtime, other
    inferlab_request_duration_seconds         server time per request, received -> reply encoded
    inferlab_queue_duration_seconds           per request, queued -> its batch started running
    inferlab_inference_duration_seconds       per request, the runtime call of the batch it ran in
    inferlab_batch_size                       rows in each batch run (one observation per batch)
    inferlab_batch_flushes_total{cause}       batches started, by cause: full, preferred, delay
    inferlab_queue_depth                      requests waiting in the queue now
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inferlab.batching.policy import CAUSES
from inferlab.errors import (
    DeadlineExceeded,
    InferlabError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    Overloaded,
    RuntimeFailure,
)
from inferlab.messages import Timings

LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
REASONS: tuple[tuple[type[InferlabError], str], ...] = (
    (InvalidInput, "invalid"),
    (ModelNotFound, "not_found"),
    (ModelNotReady, "not_ready"),
    (Overloaded, "overloaded"),
    (DeadlineExceeded, "timeout"),
    (RuntimeFailure, "runtime"),
)
CONTENT_TYPE = "text/plain; version=0.0.4"


def failure_reason(exc: Exception) -> str:
    return next((reason for cls, reason in REASONS if isinstance(exc, cls)), "other")


class Metrics:
    """The server's collectors; `model(name, version)` gives the bound children for one version.

    With `multiprocess_dir` (several worker processes; prometheus_client must have been imported with
    PROMETHEUS_MULTIPROC_DIR set to it) values live in per-process files there, and `/metrics` on any
    worker sums every worker's counts.
    """

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self._multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model", "version"]
        r = self.registry
        self.success = Counter("inferlab_request_success", "Inference requests answered with outputs.", labels,
                               registry=r)
        self.failure = Counter("inferlab_request_failure", "Inference requests that failed, by reason.",
                               [*labels, "reason"], registry=r)
        self.request_s = Histogram("inferlab_request_duration_seconds", "Server time per request.", labels,
                                   buckets=LATENCY_BUCKETS_S, registry=r)
        self.queue_s = Histogram("inferlab_queue_duration_seconds", "Time from queued to the batch starting.",
                                 labels, buckets=LATENCY_BUCKETS_S, registry=r)
        self.infer_s = Histogram("inferlab_inference_duration_seconds", "Runtime call of the request's batch.",
                                 labels, buckets=LATENCY_BUCKETS_S, registry=r)
        self.batch_rows = Histogram("inferlab_batch_size", "Rows in each batch run.", labels,
                                    buckets=BATCH_BUCKETS, registry=r)
        self.flushes = Counter("inferlab_batch_flushes", "Batches started, by cause (full, preferred, delay).",
                               [*labels, "cause"], registry=r)
        self.depth = Gauge("inferlab_queue_depth", "Requests waiting in the model's queue.", labels, registry=r,
                           multiprocess_mode="livesum")
        self._models: dict[tuple[str, str], ModelMetrics] = {}

    def model(self, name: str, version: int | str) -> ModelMetrics:
        key = (name, str(version))
        found = self._models.get(key)
        if found is None:
            found = self._models[key] = ModelMetrics(self, *key)
        return found

    def failed(self, name: str, version: str | None, exc: Exception) -> None:
        self.failure.labels(name, version or "", failure_reason(exc)).inc()

    def exposition(self) -> bytes:
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, self._multiprocess_dir)  # type: ignore[no-untyped-call]  # untyped upstream
        return generate_latest(merged)

    def route(self) -> Route:
        """`GET /metrics` in the Prometheus text format."""

        async def metrics(request: Request) -> Response:
            return Response(self.exposition(), media_type=CONTENT_TYPE)

        return Route("/metrics", metrics, methods=["GET"])


class ModelMetrics:
    """The children of every collector for one model version, bound once (labels() is not free)."""

    def __init__(self, metrics: Metrics, name: str, version: str) -> None:
        self.success = metrics.success.labels(name, version)
        self.request_s = metrics.request_s.labels(name, version)
        self.queue_s = metrics.queue_s.labels(name, version)
        self.infer_s = metrics.infer_s.labels(name, version)
        self.batch_rows = metrics.batch_rows.labels(name, version)
        self.flush = {cause: metrics.flushes.labels(name, version, cause) for cause in CAUSES}
        self.depth = metrics.depth.labels(name, version)

    def succeeded(self, t: Timings) -> None:
        self.success.inc()
        self.request_s.observe(t.encoded - t.received)
        self.queue_s.observe(t.infer_start - t.enqueued)
        self.infer_s.observe(t.infer_end - t.infer_start)

    # BatchObserver
    def flushed(self, cause: str, rows: int) -> None:
        self.flush[cause].inc()
        self.batch_rows.observe(rows)

    def queue_depth(self, depth: int) -> None:
        self.depth.set(depth)
