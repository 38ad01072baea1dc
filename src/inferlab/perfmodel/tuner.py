"""Search max_batch_size / max_queue_delay / instances / threads to meet a latency target at a load.

Every candidate is judged by prediction (the simulator driven by the profile), so a search over
~100 configurations takes seconds and needs no server. The winner is then worth one real run.

Example::

    best = tune(profile, Slo.parse("p99=50ms"), rate_rps=200)[0]
    best.config.max_batch_size, best.prediction.sim.p99_s
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

from inferlab.config import BatchingConfig, ModelConfig
from inferlab.errors import InvalidInput
from inferlab.perfmodel.predict import Prediction, capacity_for, predict
from inferlab.perfmodel.profile import Profile
from inferlab.perfmodel.simulator import SimResult

BATCH_SIZES = (1, 2, 4, 8, 16, 32)
DELAYS_US = (0, 250, 1000, 2000, 5000, 10000)
_SEARCH_REQUESTS = 10_000
_BISECTION_STEPS = 7
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


@dataclass(frozen=True, slots=True)
class Slo:
    """A latency target: `metric` (p50, p95, p99 or mean) must stay at or below `limit_s`."""

    metric: str
    limit_s: float

    @classmethod
    def parse(cls, text: str) -> Slo:
        m = re.fullmatch(r"\s*(p50|p95|p99|mean)\s*=\s*([0-9]*\.?[0-9]+)\s*(us|ms|s)\s*", text)
        if not m:
            raise InvalidInput(f"SLO {text!r} is not like 'p99=50ms' (metric p50|p95|p99|mean, unit us|ms|s)")
        return cls(m.group(1), float(m.group(2)) * _UNITS[m.group(3)])

    def value(self, sim: SimResult) -> float:
        return {"p50": sim.p50_s, "p95": sim.p95_s, "p99": sim.p99_s, "mean": sim.mean_latency_s}[self.metric]

    def met(self, p: Prediction) -> bool:
        return p.sim.dropped == 0 and p.rate_rps < p.capacity_rps and self.value(p.sim) <= self.limit_s


@dataclass(frozen=True, slots=True)
class Candidate:
    """A configuration with its prediction at the target rate (or at its own highest rate meeting the SLO)."""

    config: ModelConfig
    prediction: Prediction
    meets_slo: bool
    max_rate_rps: float | None = None


def candidate_configs(
    profile: Profile, base: ModelConfig, cores: int | None = None,
    batch_sizes: tuple[int, ...] = BATCH_SIZES, delays_us: tuple[int, ...] = DELAYS_US, workers: int = 1,
) -> list[ModelConfig]:
    """Every measured (instances, threads) setting that fits the cores (`_fits`), times batch size times delay;
    batch sizes stop at the largest measured one (beyond it the profile would only extrapolate)."""
    limit = cores or os.cpu_count() or 1
    largest = max(b for per in profile.service_s.values() for b in per)
    settings = [(i, t) for i, t in profile.settings() if i % workers == 0 and _fits(i, t, limit)]
    if not settings:
        raise InvalidInput(f"the profile measured no INSTANCESxTHREADS setting that fits {limit} core(s) with "
                           f"instances a multiple of {workers} worker(s); measured: {profile.settings()}")
    out = []
    for instances, threads in settings:
        runtime = replace(base.runtime, intra_op_threads=threads)
        out.append(replace(base, max_batch_size=0, instances=instances, runtime=runtime,
                           batching=replace(base.batching, enabled=False)))
        for size in batch_sizes:
            if 1 < size <= largest:
                out.extend(
                    replace(base, max_batch_size=size, instances=instances, runtime=runtime,
                            batching=BatchingConfig(enabled=True, max_queue_delay_us=delay,
                                                    max_queue_size=base.batching.max_queue_size))
                    for delay in delays_us
                )
    return out


def tune(
    profile: Profile, slo: Slo, rate_rps: float | None, base: ModelConfig | None = None,
    protocol: str = "v2-json", cores: int | None = None, seed: int = 0, workers: int = 1,
) -> list[Candidate]:
    """Rank the candidates: at `rate_rps`, those meeting the SLO first, lowest latency first; with no rate,
    by the highest Poisson rate each sustains within the SLO."""
    configs = candidate_configs(profile, base or ModelConfig(), cores, workers=workers)
    if rate_rps is not None:
        ranked = [_at_rate(profile, c, slo, rate_rps, protocol, seed, workers) for c in configs]
        return sorted(ranked, key=lambda c: (not c.meets_slo, slo.value(c.prediction.sim), *_simplicity(c.config)))
    ranked = [_max_rate(profile, c, slo, protocol, seed, workers) for c in configs]
    return sorted(ranked, key=lambda c: (-(c.max_rate_rps or 0.0), slo.value(c.prediction.sim), *_simplicity(c.config)))


def _at_rate(profile: Profile, config: ModelConfig, slo: Slo, rate: float, protocol: str, seed: int,
             workers: int) -> Candidate:
    p = predict(profile, config, rate, protocol, requests=_SEARCH_REQUESTS, seed=seed, workers=workers)
    return Candidate(config, p, slo.met(p))


def _max_rate(profile: Profile, config: ModelConfig, slo: Slo, protocol: str, seed: int, workers: int) -> Candidate:
    """Bisection on the rate between 0 and the capacity; the SLO metric grows with the rate."""
    hi = capacity = capacity_for(profile, config, protocol, workers)
    lo, best = 0.0, None
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        p = predict(profile, config, mid, protocol, requests=_SEARCH_REQUESTS, seed=seed, workers=workers,
                    capacity=capacity)
        if slo.met(p):
            lo, best = mid, p
        else:
            hi = mid
    if best is None:
        low = predict(profile, config, hi / 2 ** _BISECTION_STEPS, protocol, requests=_SEARCH_REQUESTS, seed=seed,
                      workers=workers, capacity=capacity)
        return Candidate(config, low, False, 0.0)
    return Candidate(config, best, True, lo)


def _fits(instances: int, threads: int, cores: int) -> bool:
    """Single-threaded instances may use every core; multi-threaded ones must leave one to the event loop.

    onnxruntime's intra-op threads spin while they wait, so a session with as many threads as cores
    fights the loop for every core; measured here (2 cores, mobilenet_v2, 120/s): 1 instance x 2 threads,
    predicted p99 13 ms from the isolated profile, ran at p99 1 s. The profile cannot see that fight.
    """
    return instances * threads <= cores and (threads == 1 or instances * threads <= cores - 1)


def _simplicity(config: ModelConfig) -> tuple[int, int, int]:
    """Among equals prefer fewer cores, smaller batches and shorter waits."""
    batching = config.batching.enabled and config.max_batch_size > 1
    return (config.instances * max(1, config.runtime.intra_op_threads), config.max_batch_size if batching else 0,
            config.batching.max_queue_delay_us if batching else 0)

