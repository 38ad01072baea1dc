"""The measured side of predicted vs measured: real open-loop runs of a server with inferlab.loadgen.

Latency counts from each request's intended send time (the load generator's open loop is free of
coordinated omission), which is what the simulator's latency means too.

Example::

    m = measure_open_loop("http://127.0.0.1:8000", call, rate_rps=100, requests=2000)
    m.p99_s, m.valid
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from inferlab.loadgen.launch import run
from inferlab.loadgen.plan import LoadPlan, RateShape
from inferlab.loadgen.result import RunResult
from inferlab.perfmodel.overhead import InferCall, target_for

#: Like wrk2's fixed connection count: a burst beyond it waits in the client, still timed from its intended
#: send time. An open pool instead grows to hundreds of connections after any stall, and the server,
#: slower per request with that many, may never catch up (it did, at 60 % of capacity for digits).
_MAX_CONNECTIONS = 32
WARMUP_S = 2.0


@dataclass(frozen=True, slots=True)
class Measured:
    """One measured point; `valid` is the load generator's own verdict (it kept up with the schedule)."""

    rate_rps: float
    throughput_rps: float
    p50_s: float
    p95_s: float
    p99_s: float
    mean_s: float
    ok: int
    failed: int
    valid: bool


def measure_open_loop(url: str, call: InferCall, rate_rps: float, requests: int, seed: int = 0,
                      timeout_s: float = 30.0, warmup_s: float = WARMUP_S) -> Measured:
    """Send `requests` Poisson arrivals at `rate_rps` to `url` (the server's base URL), then as many more
    as arrive in the first `warmup_s`, which are not counted: the simulation predicts the steady state,
    and a run's first second carries its start (connections opened one burst at a time, cold code paths)."""
    plan = LoadPlan(
        target_for(url, call), mode="open", concurrency=_MAX_CONNECTIONS, requests=requests + int(rate_rps * warmup_s),
        arrivals=RateShape(((math.inf, rate_rps, rate_rps),), poisson=True), timeout_s=timeout_s, seed=seed,
        warmup_s=warmup_s,
    )
    return _measured(rate_rps, run(plan))


def measure_capacity(url: str, call: InferCall, connections: int, seconds: float) -> float:
    """Saturated throughput (ok responses per second) with `connections` closed-loop users."""
    plan = LoadPlan(target_for(url, call), mode="closed", concurrency=connections, requests=None, duration_s=seconds,
                    warmup_s=min(1.0, seconds / 4))
    return run(plan).ok_per_s


def _measured(rate: float, result: RunResult) -> Measured:
    pct = result.latency.percentiles_ms
    counts = result.counts
    return Measured(
        rate_rps=rate, throughput_rps=result.ok_per_s,
        p50_s=pct["50"] / 1e3, p95_s=pct["95"] / 1e3, p99_s=pct["99"] / 1e3, mean_s=result.latency.mean_ms / 1e3,
        ok=counts.ok, failed=counts.requests - counts.ok + counts.not_sent, valid=result.self_check.valid,
    )
