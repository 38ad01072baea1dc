"""Scale-per-request functions: cold starts, response time and instance count under an idle timeout.

The platform model of Mahmoudi & Khazaei (SimFaaS): every request that finds no idle instance starts
a new one (a cold start, served in the cold service time); otherwise the newest idle instance serves it
warm. An instance idle for `idle_timeout_s` is removed. No request ever queues; a request is rejected
when `max_concurrency` instances are already busy. The simulation is event driven (heaps of busy and
idle instances) and counts instance lifetimes exactly, so the averages are time averages.

Example::

    r = simulate_functions(FunctionModel(arrival_rps=0.9, warm_s=1.991, cold_s=2.244, idle_timeout_s=600))
    r.cold_start_probability, r.mean_instances
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from inferlab.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class FunctionModel:
    """One function's load and timings; service times are exponential with the given means when
    `exponential` (as in SimFaaS's published example), constant otherwise."""

    arrival_rps: float
    warm_s: float
    cold_s: float
    idle_timeout_s: float
    max_concurrency: int = 1000
    exponential: bool = True

    def __post_init__(self) -> None:
        if not (self.arrival_rps > 0 and self.warm_s > 0 and self.cold_s > 0 and self.idle_timeout_s >= 0):
            raise InvalidInput(f"function model {self}: rates and times must be > 0, idle timeout >= 0")


@dataclass(frozen=True, slots=True)
class FunctionResult:
    """Per-request and time-averaged results of one simulated run."""

    requests: int
    cold_start_probability: float
    rejection_probability: float
    mean_response_s: float
    mean_instances: float
    mean_running: float
    mean_idle: float
    mean_lifespan_s: float


def simulate_functions(model: FunctionModel, duration_s: float = 1e6, seed: int = 0) -> FunctionResult:
    """Simulate `duration_s` seconds of Poisson arrivals; statistics cover the whole run from an empty platform."""
    if not duration_s > 0:
        raise InvalidInput(f"duration_s {duration_s} is not > 0")
    rng = np.random.default_rng(seed)
    expected = int(model.arrival_rps * duration_s * 1.1) + 100
    arrivals = np.cumsum(rng.exponential(1.0 / model.arrival_rps, expected))
    arrivals = arrivals[arrivals < duration_s].tolist()
    unit = (rng.exponential(1.0, len(arrivals)) if model.exponential else np.ones(len(arrivals))).tolist()

    busy: list[tuple[float, float]] = []  # (finish time, creation time) of instances serving a request
    idle: list[tuple[float, float]] = []  # (-creation time, idle since): newest instance on top
    timeout = model.idle_timeout_s
    colds = rejected = 0
    response_sum = running_time = lifetime_sum = 0.0
    for t, u in zip(arrivals, unit, strict=True):
        while busy and busy[0][0] <= t:
            finish, created = heapq.heappop(busy)
            heapq.heappush(idle, (-created, finish))
        while idle and idle[0][1] + timeout <= t:  # the newest idle one expired, so it cannot serve
            neg_created, since = heapq.heappop(idle)
            lifetime_sum += since + timeout + neg_created
        if len(busy) >= model.max_concurrency:
            rejected += 1
            continue
        if idle:
            neg_created, _ = heapq.heappop(idle)
            created, service = -neg_created, u * model.warm_s
        else:
            created, service = t, u * model.cold_s
            colds += 1
        heapq.heappush(busy, (t + service, created))
        response_sum += service
        running_time += min(service, duration_s - t)
    for finish, created in busy:
        heapq.heappush(idle, (-created, finish))
    for neg_created, since in idle:  # still alive at the end, or expired unseen below a newer idle one
        lifetime_sum += min(since + timeout, duration_s) + neg_created

    n = len(arrivals)
    served = n - rejected
    return FunctionResult(
        requests=n,
        cold_start_probability=colds / n if n else 0.0,
        rejection_probability=rejected / n if n else 0.0,
        mean_response_s=response_sum / served if served else float("nan"),
        mean_instances=lifetime_sum / duration_s,
        mean_running=running_time / duration_s,
        mean_idle=(lifetime_sum - running_time) / duration_s,
        mean_lifespan_s=lifetime_sum / colds if colds else 0.0,
    )


def mean_running_instances(model: FunctionModel, cold_start_probability: float = 0.0) -> float:
    """Little's law for an infinite-server system: busy instances = rate x mean service time.

    A closed-form check on the simulation's running count (SimFaaS's example: 0.9 x 1.991 = 1.79).
    """
    mean_s = model.warm_s + cold_start_probability * (model.cold_s - model.warm_s)
    return model.arrival_rps * mean_s
