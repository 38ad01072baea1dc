"""Prometheus metrics: plain counters per model version, exported by a collector on an instance-owned registry.

Names and meanings (all labelled `model`, `version`):

    inferlab_request_success_total            inference requests answered with outputs
    inferlab_request_failure_total{reason}    failed ones: invalid, not_found, not_ready, overloaded,
                                              timeout, runtime, other (unknown models count as model="")
    inferlab_request_duration_seconds         server time per request, received -> reply encoded
    inferlab_queue_duration_seconds           per request, queued -> its batch started running
    inferlab_inference_duration_seconds       per request, the runtime call of the batch it ran in
    inferlab_batch_size                       rows in each batch run (one observation per batch)
    inferlab_batch_flushes_total{cause}       batches started, by cause: full, preferred, delay
    inferlab_queue_depth                      requests waiting in the queue now
    inferlab_worker_restarts_total            (unlabelled) worker processes the supervisor replaced

Why not prometheus_client's Counter/Histogram: on the hot path they cost ~10 us per request (and
~25 us in its multiprocess mode), a tenth of a tiny model's whole request. Here a request costs a few
integer increments; the collector builds the families only when /metrics is scraped. With several
worker processes each one writes a snapshot to a shared folder every second and /metrics on any
worker adds them up (other workers' counts may be up to a second old). When a worker dies the
supervisor keeps its last snapshot, with its gauges zeroed, so counters never go down, and writes the
restart count in a snapshot of its own. Collectors registered on `Metrics.summed` (the functions'
prometheus_client metrics) travel in the same snapshots as plain samples and are exported summed
over the workers, so any worker's /metrics tells the whole server's function counts.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
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
from inferlab.repository.store import write_atomic

LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
REASONS: tuple[tuple[type[InferlabError], str], ...] = (
    (InvalidInput, "invalid"),
    (ModelNotFound, "not_found"),
    (ModelNotReady, "not_ready"),
    (Overloaded, "overloaded"),
    (DeadlineExceeded, "timeout"),
    (RuntimeFailure, "runtime"),
)
CONTENT_TYPE = "text/plain; version=0.0.4"
SHARE_EVERY_S = 1.0
HISTOGRAMS = (
    ("request_s", "inferlab_request_duration_seconds", "Server time per request.", LATENCY_BUCKETS_S),
    ("queue_s", "inferlab_queue_duration_seconds", "Time from queued to the batch starting.", LATENCY_BUCKETS_S),
    ("infer_s", "inferlab_inference_duration_seconds", "Runtime call of the request's batch.", LATENCY_BUCKETS_S),
    ("batch_rows", "inferlab_batch_size", "Rows in each batch run.", BATCH_BUCKETS),
)

SUPERVISOR_FILE = "supervisor.json"

Snapshot = dict[str, Any]


def failure_reason(exc: Exception) -> str:
    return next((reason for cls, reason in REASONS if isinstance(exc, cls)), "other")


class Histogram:
    """Bucket counts (not yet cumulative) and the sum; observe() is one bisect and two additions."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class ModelMetrics:
    """One model version's counts; also the BatchObserver its batcher reports to."""

    def __init__(self) -> None:
        self.success = 0
        self.request_s = Histogram(LATENCY_BUCKETS_S)
        self.queue_s = Histogram(LATENCY_BUCKETS_S)
        self.infer_s = Histogram(LATENCY_BUCKETS_S)
        self.batch_rows = Histogram(BATCH_BUCKETS)
        self.flushes = dict.fromkeys(CAUSES, 0)
        self.depth = 0

    def succeeded(self, t: Timings) -> None:
        self.success += 1
        self.request_s.observe(t.encoded - t.received)
        self.queue_s.observe(t.infer_start - t.enqueued)
        self.infer_s.observe(t.infer_end - t.infer_start)

    def flushed(self, cause: str, rows: int) -> None:
        self.flushes[cause] += 1
        self.batch_rows.observe(rows)

    def queue_depth(self, depth: int) -> None:
        self.depth = depth

    def snapshot(self) -> Snapshot:
        out: Snapshot = {"success": self.success, "flushes": dict(self.flushes), "depth": self.depth}
        for key, *_ in HISTOGRAMS:
            h: Histogram = getattr(self, key)
            out[key] = [*h.counts, h.sum]
        return out


class Metrics:
    """All models' counts, the registry that exports them, and (with `share_dir`) the worker sharing.

    Example::

        metrics = Metrics()
        metrics.model("digits", 1).succeeded(timings)
        text = metrics.exposition()
    """

    def __init__(self, share_dir: Path | None = None) -> None:
        self._models: dict[tuple[str, str], ModelMetrics] = {}
        self._failures: dict[tuple[str, str, str], int] = {}
        self._share_dir = share_dir
        self.registry = CollectorRegistry(auto_describe=False)
        self.summed = CollectorRegistry(auto_describe=False)  # exported summed over the worker processes
        self.registry.register(_Exporter(self))
        self._stop = threading.Event()
        if share_dir is not None:
            self._own_file = share_dir / f"{os.getpid()}.json"
            threading.Thread(target=self._share_loop, name="metrics-share", daemon=True).start()

    def model(self, name: str, version: int | str) -> ModelMetrics:
        key = (name, str(version))
        found = self._models.get(key)
        if found is None:
            found = self._models[key] = ModelMetrics()
        return found

    def failed(self, name: str, version: str | None, exc: Exception) -> None:
        key = (name, version or "", failure_reason(exc))
        self._failures[key] = self._failures.get(key, 0) + 1

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def route(self) -> Route:
        """`GET /metrics` in the Prometheus text format."""

        async def metrics(request: Request) -> Response:
            return Response(self.exposition(), media_type=CONTENT_TYPE)

        return Route("/metrics", metrics, methods=["GET"])

    def close(self) -> None:
        self._stop.set()

    def snapshot(self) -> Snapshot:
        """This process's counts as plain data (list() copies are atomic under the GIL)."""
        return {
            "models": [[name, version, m.snapshot()] for (name, version), m in list(self._models.items())],
            "failures": [[*key, n] for key, n in list(self._failures.items())],
            "summed": _samples(self.summed),
        }

    def merged(self) -> Snapshot:
        """This process's counts plus every other worker's latest snapshot."""
        snapshots = [self.snapshot()]
        if self._share_dir is not None:
            for path in self._share_dir.glob("*.json"):
                if path != self._own_file:
                    with contextlib.suppress(OSError, orjson.JSONDecodeError):
                        snapshots.append(orjson.loads(path.read_bytes()))
        return _merge(snapshots)

    def _share_loop(self) -> None:
        while not self._stop.wait(SHARE_EVERY_S):
            write_atomic(self._own_file, orjson.dumps(self.snapshot()), durable=False)


def retire_worker(share_dir: Path, pid: int) -> None:
    """Keep dead worker `pid`'s last counts but not its gauges (its queue, its instances), under a new name.

    Two atomic steps, so a scrape never counts the worker twice: rewrite its file with zero depth, then
    rename it. The counts it gathered after its last snapshot (at most SHARE_EVERY_S) are lost with it.
    """
    own = share_dir / f"{pid}.json"
    try:
        snap = orjson.loads(own.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return  # it died before its first snapshot
    for _, _, counts in snap["models"]:
        counts["depth"] = 0
    for _, kind, _, samples in snap.get("summed", []):
        if kind == "gauge":
            for sample in samples:
                sample[2] = 0.0
    write_atomic(own, orjson.dumps(snap))
    os.replace(own, share_dir / f"dead-{pid}-{time.time_ns()}.json")


def record_restarts(share_dir: Path, restarts: int) -> None:
    """The supervisor's snapshot: how many workers it has replaced so far."""
    write_atomic(share_dir / SUPERVISOR_FILE, orjson.dumps({"models": [], "failures": [], "restarts": restarts}))


def _merge(snapshots: list[Snapshot]) -> Snapshot:
    models: dict[tuple[str, str], Snapshot] = {}
    failures: dict[tuple[str, str, str], int] = {}
    restarts = 0
    families: dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = {}  # type, help, sums
    for snap in snapshots:
        restarts += snap.get("restarts", 0)
        for name, kind, documentation, samples in snap.get("summed", []):
            values = families.setdefault(name, (kind, documentation, {}))[2]
            for sample, labels, value in samples:
                series = (sample, tuple(sorted(labels.items())))
                values[series] = values.get(series, 0.0) + value
        for name, version, counts in snap["models"]:
            into = models.get((name, version))
            if into is None:
                models[(name, version)] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in counts.items()}
                continue
            into["success"] += counts["success"]
            into["depth"] += counts["depth"]
            for cause, n in counts["flushes"].items():
                into["flushes"][cause] = into["flushes"].get(cause, 0) + n
            for key, *_ in HISTOGRAMS:
                into[key] = [a + b for a, b in zip(into[key], counts[key], strict=True)]
        for name, version, reason, n in snap["failures"]:
            failures[(name, version, reason)] = failures.get((name, version, reason), 0) + n
    return {
        "models": [[*k, v] for k, v in models.items()], "failures": [[*k, n] for k, n in failures.items()],
        "restarts": restarts, "summed": families,
    }


def _samples(registry: CollectorRegistry) -> list[list[Any]]:
    """Every family on `registry` as [name, type, help, [[sample name, labels, value], ...]].

    `_created` samples (a creation timestamp per series) are left out: a sum of timestamps means nothing.
    """
    return [
        [family.name, family.type, family.documentation,
         [[x.name, x.labels, x.value] for x in family.samples if not x.name.endswith("_created")]]
        for family in registry.collect()
    ]


class _Exporter:
    """The collector: turns the merged counts into Prometheus metric families at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        merged = self._metrics.merged()
        labels = ["model", "version"]
        success = CounterMetricFamily("inferlab_request_success", "Inference requests answered with outputs.",
                                      labels=labels)
        failure = CounterMetricFamily("inferlab_request_failure", "Inference requests that failed, by reason.",
                                      labels=[*labels, "reason"])
        flushes = CounterMetricFamily("inferlab_batch_flushes", "Batches started, by cause (full, preferred, delay).",
                                      labels=[*labels, "cause"])
        depth = GaugeMetricFamily("inferlab_queue_depth", "Requests waiting in the model's queue.", labels=labels)
        histograms = {key: HistogramMetricFamily(name, doc, labels=labels) for key, name, doc, _ in HISTOGRAMS}
        for name, version, counts in merged["models"]:
            success.add_metric([name, version], counts["success"])
            depth.add_metric([name, version], counts["depth"])
            for cause, n in counts["flushes"].items():
                flushes.add_metric([name, version, cause], n)
            for key, _, _, bounds in HISTOGRAMS:
                *buckets, total = counts[key]
                cumulative, running = [], 0
                for bound, n in zip((*(_le(b) for b in bounds), "+Inf"), buckets, strict=True):
                    running += n
                    cumulative.append((bound, running))
                histograms[key].add_metric([name, version], cumulative, total)
        for name, version, reason, n in merged["failures"]:
            failure.add_metric([name, version, reason], n)
        restarts = CounterMetricFamily("inferlab_worker_restarts", "Worker processes the supervisor replaced.",
                                       value=merged["restarts"])
        yield from (success, failure, *histograms.values(), flushes, depth, restarts)
        for name, (kind, documentation, values) in merged["summed"].items():
            family = Metric(name, documentation, kind)
            for (sample, labels), value in values.items():
                family.add_sample(sample, dict(labels), value)
            yield family


def _le(bound: float) -> str:
    return repr(float(bound))
