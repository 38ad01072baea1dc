"""Prediction: a model config at a request rate -> simulated latency, with closed-form checks beside it.

Example::

    p = predict(Profile.load(path), ModelConfig.from_file(Path("config.yaml")), rate_rps=100)
    p.sim.p99_s, p.capacity_rps, p.closed_form_mean_s
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from inferlab.config import ModelConfig
from inferlab.errors import InvalidInput
from inferlab.perfmodel.profile import Profile
from inferlab.perfmodel.queueing import batch_bound, md1, mgc
from inferlab.perfmodel.service import FloatArray, ServiceTimes
from inferlab.perfmodel.simulator import (
    BatchPolicy,
    Overhead,
    SimResult,
    constant_arrivals,
    poisson_arrivals,
    simulate,
    trace_arrivals,
)

ArrivalKind = Literal["poisson", "constant", "trace"]


@dataclass(frozen=True, slots=True)
class Prediction:
    """One configuration at one rate: the simulation, the capacity, and the closed-form cross-checks.

    `closed_form_mean_s` is M/D/1 (front end) + M/G/c (model) without batching, and the batch-service
    latency floor with batching; `bound_batch_size` is the smallest batch that keeps up with the rate.
    """

    rate_rps: float
    capacity_rps: float
    policy: BatchPolicy
    sim: SimResult
    closed_form_mean_s: float
    bound_batch_size: int
    workers: int = 1


def policy_from_config(config: ModelConfig) -> BatchPolicy:
    """The batcher's behaviour as config.yaml sets it: no batching means batches of one."""
    batching = config.batching.enabled and config.max_batch_size > 1
    return BatchPolicy(
        max_batch_size=config.max_batch_size if batching else 1,
        max_queue_delay_s=config.batching.max_queue_delay_us / 1e6 if batching else 0.0,
        preferred_batch_sizes=config.batching.preferred_batch_sizes if batching else (),
        instances=config.instances,
        max_queue_size=config.batching.max_queue_size,
    )


def capacity_rps(service: ServiceTimes, policy: BatchPolicy, overhead: Overhead) -> float:
    """Most requests per second the configuration sustains: the slower of the front end and the instances."""
    model = max(policy.instances * b / service.mean(b) for b in range(1, policy.max_batch_size + 1))
    return min(model, 1.0 / overhead.serial_s) if overhead.serial_s > 0 else model


def predict(
    profile: Profile,
    config: ModelConfig,
    rate_rps: float,
    protocol: str = "v2-json",
    arrivals: ArrivalKind = "poisson",
    requests: int = 50_000,
    seed: int = 0,
    trace_s: FloatArray | None = None,
    workers: int = 1,
) -> Prediction:
    """Simulate `requests` arrivals at `rate_rps` (a trace is rescaled to that mean rate) and cross-check.

    The model's times are stretched by the slowdown measured in the server, in proportion to how busy
    the event loop will be at this rate (`Profile.model_slowdown`); the capacity uses the slowdown at
    saturation. With `workers` server processes (`inferlab serve --workers`), each runs its own front
    end and batcher with ceil(instances / workers) instances and gets an equal random share of the
    requests, so one worker is simulated at rate / workers and the totals are scaled back up.
    """
    per_worker = -(-config.instances // workers)
    service = profile.service_times_by_busy(per_worker, workers, config.runtime.intra_op_threads)
    policy = replace(policy_from_config(config), instances=per_worker)
    overhead = profile.overhead_for(protocol)
    slowdown = profile.model_slowdown(protocol, rate_rps / workers * overhead.serial_s)
    p = predict_with([st.scaled(slowdown) for st in service], overhead, policy, rate_rps, arrivals, requests,
                     seed, trace_s, workers)
    at_capacity = profile.model_slowdown(protocol, capacity_rps(service[-1], policy, overhead) * overhead.serial_s)
    return replace(p, capacity_rps=capacity_rps(service[-1].scaled(at_capacity), policy, overhead) * workers)


def predict_with(
    service: list[ServiceTimes], overhead: Overhead, policy: BatchPolicy, rate_rps: float,
    arrivals: ArrivalKind = "poisson", requests: int = 50_000, seed: int = 0, trace_s: FloatArray | None = None,
    workers: int = 1,
) -> Prediction:
    """`predict` for already chosen service distributions (by instances busy), overhead and per-worker policy."""
    if workers < 1:
        raise InvalidInput(f"workers {workers} is not >= 1")
    times = _arrivals(arrivals, rate_rps, requests * workers, seed, trace_s)
    if workers > 1:  # one worker's share: a random thinning of a Poisson stream is Poisson at rate / workers
        share = np.random.default_rng(seed + 2).integers(0, workers, times.size) == 0 if arrivals == "poisson" \
            else np.arange(times.size) % workers == 0
        times = times[share]
    sim = simulate(times, service, policy, overhead, seed=seed + 1, warmup_fraction=0.05)
    if workers > 1:
        sim = replace(sim, offered_rps=sim.offered_rps * workers, throughput_rps=sim.throughput_rps * workers,
                      mean_queue_length=sim.mean_queue_length * workers, completed=sim.completed * workers,
                      dropped=sim.dropped * workers)
    closed, b = _closed_form(service[-1], policy, overhead, rate_rps / workers)
    return Prediction(rate_rps, capacity_rps(service[-1], policy, overhead) * workers, policy, sim, closed, b, workers)


def _closed_form(service: ServiceTimes, policy: BatchPolicy, overhead: Overhead, rate: float) -> tuple[float, int]:
    front = md1(rate, overhead.serial_s).response_s if overhead.serial_s > 0 else 0.0
    if policy.max_batch_size == 1:
        mean, second = service.moments(1)
        scv = max(0.0, second / (mean * mean) - 1.0) if mean > 0 else 0.0
        model = mgc(rate, mean, scv, policy.instances).response_s if mean > 0 else 0.0
        return front + model + overhead.delay_s, 1
    means = [service.mean(b) for b in range(1, policy.max_batch_size + 1)]
    bound = batch_bound(rate, means, policy.instances, policy.max_queue_delay_s)
    return front + bound.latency_floor_s + overhead.delay_s, bound.batch_size


def _arrivals(kind: ArrivalKind, rate: float, n: int, seed: int, trace_s: FloatArray | None) -> FloatArray:
    if kind == "poisson":
        return poisson_arrivals(rate, n, seed)
    if kind == "constant":
        return constant_arrivals(rate, n)
    if trace_s is None:
        raise InvalidInput("arrivals 'trace' needs the trace's send times")
    trace = trace_arrivals(trace_s)
    span = float(trace[-1])
    scaled: FloatArray = trace * ((trace.size - 1) / (rate * span)) if span > 0 else trace
    reps = int(np.ceil(n / trace.size))  # repeat the trace's pattern to reach n requests
    period = float(scaled[-1]) + 1.0 / rate
    out: FloatArray = (scaled[None, :] + period * np.arange(reps)[:, None]).ravel()[:n]
    return out
