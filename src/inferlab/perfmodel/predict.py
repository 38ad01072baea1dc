"""Prediction: a model config at a request rate -> simulated latency, with closed-form checks beside it.

Example::

    p = predict(Profile.load(path), ModelConfig.from_file(Path("config.yaml")), rate_rps=100)
    p.sim.p99_s, p.capacity_rps, p.closed_form_mean_s
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from inferlab.batching.batcher import TIMER_TICK_S as BATCHER_SPIN_S  # its batcher spins the last tick of a wait
from inferlab.config import ModelConfig
from inferlab.errors import InvalidInput
from inferlab.perfmodel.cores import CpuDemand, Stretch, stretch
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

_SHARING_ROUNDS = 2  # instance utilisation -> slowdowns -> utilisation: two rounds settle it
_PROBE_REQUESTS = 4000


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
        spin_s=BATCHER_SPIN_S if batching else 0.0,
    )


def capacity_rps(service: ServiceTimes, policy: BatchPolicy, overhead: Overhead,
                 demand: CpuDemand | None = None) -> float:
    """Most requests per second one worker sustains: the rate at which the instances or the event loop is
    always busy, whichever comes first, with the cores shared as they would be at that rate.

    At saturation the queue always holds a full batch, so the instances run batches of `max_batch_size`,
    all of them at once, each followed by its hand-off; the loop wakes for as many requests as it did when
    the profile saturated it (no fewer).
    """
    b = policy.max_batch_size
    batch_s = service.mean(b)
    loop_s = overhead.serial_s + overhead.wake_s * (1.0 - (demand.saturated_busy if demand else 1.0))

    def load(rate: float) -> float:
        """The busier of the instances and the loop at `rate` (> 1: more than they can do)."""
        model_factor, loop_factor, busy = 1.0, 1.0, 1.0
        for _ in range(_SHARING_ROUNDS if demand is not None else 1):
            if demand is not None:
                share = stretch(demand, rate, busy, policy.instances)
                model_factor, loop_factor = share.model[-1], share.loop
            busy = rate * (batch_s * model_factor + overhead.handoff_s) / (policy.instances * b)
        return max(busy, rate * loop_s * loop_factor)

    hi = 1.0 / max(load(1.0), 1e-12)  # without sharing the load grows linearly; sharing only slows things
    if demand is None:
        return hi
    lo = 0.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if load(mid) <= 1.0 else (lo, mid)
    return lo


def capacity_for(profile: Profile, config: ModelConfig, protocol: str = "v2-json", workers: int = 1,
                 client_on_host: bool = True) -> float:
    """`capacity_rps` for a configuration, over all `workers`."""
    service, policy, overhead, demand = _setup(profile, config, protocol, workers, client_on_host)
    return capacity_rps(service, policy, overhead, demand) * workers


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
    client_on_host: bool = True,
    capacity: float | None = None,
) -> Prediction:
    """Simulate `requests` arrivals at `rate_rps` (a trace is rescaled to that mean rate) and cross-check.

    The cores are shared (`cores.py`): the model's times and the loop's cost per request are stretched
    by the slowdowns expected at this rate, which depend on how busy the instances are, so a short
    simulation finds that first (two rounds), then the full one runs. The client's CPU counts unless
    `client_on_host` is False. With `workers` server processes (`inferlab serve --workers`), each runs
    its own front end and batcher with ceil(instances / workers) instances and gets an equal random
    share of the requests, so one worker is simulated at rate / workers and the totals are scaled back up.
    `capacity` (from `capacity_for`; it does not depend on the rate) saves recomputing it per rate.
    """
    service, policy, overhead, demand = _setup(profile, config, protocol, workers, client_on_host)
    if capacity is None:
        capacity = capacity_rps(service, policy, overhead, demand) * workers
    if demand is not None:
        busy, spin = 0.0, 0.0
        for _ in range(_SHARING_ROUNDS):
            share = stretch(demand, rate_rps / workers, busy, policy.instances, spin)
            probe = predict_with(service, _loop_shared(overhead, share), policy, rate_rps, arrivals,
                                 min(requests, _PROBE_REQUESTS), seed, trace_s, workers, share, capacity, spin)
            busy, spin = probe.sim.utilisation, probe.sim.loop_spin
        share = stretch(demand, rate_rps / workers, busy, policy.instances, spin)
        return predict_with(service, _loop_shared(overhead, share), policy, rate_rps, arrivals, requests, seed,
                            trace_s, workers, share, capacity, spin)
    return predict_with(service, overhead, policy, rate_rps, arrivals, requests, seed, trace_s, workers, None, capacity)


def _setup(profile: Profile, config: ModelConfig, protocol: str, workers: int, client_on_host: bool
           ) -> tuple[ServiceTimes, BatchPolicy, Overhead, CpuDemand | None]:
    per_worker = -(-config.instances // workers)
    threads = config.runtime.intra_op_threads
    service = profile.service_times(per_worker * workers, threads)  # every batch: all the instances computing
    entry = profile.overhead.get(protocol)
    if entry is not None and per_worker * workers == 1:
        # A lone instance was timed alone in the profile; in the server the loop and the client stream bodies
        # through the same caches (the k-instance settings hold such a neighbour already).
        service = service.scaled(entry.infer_scale)
    policy = replace(policy_from_config(config), instances=per_worker)
    demand = profile.cpu_demand(protocol, threads, workers, client_on_host)
    return service, policy, profile.overhead_for(protocol), demand


def _loop_shared(overhead: Overhead, share: Stretch) -> Overhead:
    """The loop's cost stretched by its expected core sharing."""
    return replace(overhead, serial_s=overhead.serial_s * share.loop, wake_s=overhead.wake_s * share.loop,
                   rewake_s=overhead.rewake_s * share.loop,
                   idle_loop_s=tuple(x * share.loop for x in overhead.idle_loop_s))


def predict_with(
    service: ServiceTimes, overhead: Overhead, policy: BatchPolicy, rate_rps: float,
    arrivals: ArrivalKind = "poisson", requests: int = 50_000, seed: int = 0, trace_s: FloatArray | None = None,
    workers: int = 1, share: Stretch | None = None, capacity: float | None = None, loop_spin: float = 0.0,
) -> Prediction:
    """`predict` for an already chosen service distribution, overhead and per-worker policy;
    with `share`, each batch runs slower by the core sharing for the instances busy and how busy the
    simulated loop is while it runs (`Stretch.model_by_loop`). Without `capacity`, the capacity leaves
    core sharing out. `loop_spin` is the share of the time the loop spun waiting for batch deadlines in an
    earlier run (`SimResult.loop_spin`)."""
    if workers < 1:
        raise InvalidInput(f"workers {workers} is not >= 1")
    times = _arrivals(arrivals, rate_rps, requests * workers, seed, trace_s)
    if workers > 1:  # one worker's share: a random thinning of a Poisson stream is Poisson at rate / workers
        mine = np.random.default_rng(seed + 2).integers(0, workers, times.size) == 0 if arrivals == "poisson" \
            else np.arange(times.size) % workers == 0
        times = times[mine]
    sim = simulate(times, service, policy, overhead, seed=seed + 1, warmup_fraction=0.05,
                   model_stretch=share.model_by_loop if share else (), loop_spin=loop_spin)
    if workers > 1:
        sim = replace(sim, offered_rps=sim.offered_rps * workers, throughput_rps=sim.throughput_rps * workers,
                      mean_queue_length=sim.mean_queue_length * workers, completed=sim.completed * workers,
                      dropped=sim.dropped * workers)
    if share is not None:
        service = service.scaled(share.model[-1])
    closed, b = _closed_form(service, policy, overhead, rate_rps / workers)
    if capacity is None:
        capacity = capacity_rps(service, policy, overhead) * workers
    return Prediction(rate_rps, capacity, policy, sim, closed, b, workers)


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
