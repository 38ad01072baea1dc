"""Core sharing: how much slower the event loop and the model run when more threads want CPU than there are cores.

The server's event loop, its model instances' threads and (on a test machine) the load generator all
run on the same cores. The profile times the model with only its own instances running, and measures
the CPU seconds per request the loop and the client spend. Under load each of them is busy for a
fraction of the time; when the runnable threads outnumber the cores, the kernel shares the cores out
evenly, so each runs `runnable / cores` times slower (processor sharing). This module takes the
expectation of that factor over who else is busy, treating each party as independently busy with its
utilisation (a mean-field approximation):

    model batch with k instances busy:  E[max(1, (k t + L + G) / C)] / max(1, k t / C)
    event loop:                         E[max(1, (1 + L' + G + t K) / C)]

with C cores, t threads per instance, L busy loops (L' the other workers' loops), G = 1 while the
client computes, K busy instances. The denominator of the first removes the contention between the
instances themselves, which the profile's samples already hold (they are timed with all the configuration's
instances at once; for every setting that fits the cores, k t <= C, the denominator is 1).

Example::

    demand = CpuDemand(cores=2, loop_s=0.0013, client_s=0.0003)
    s = stretch(demand, rate_rps=200, instance_busy=0.8, instances=2)
    s.loop, s.model[1]        # the loop's and a two-busy batch's slowdown at 200 requests/s
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inferlab.perfmodel.service import FloatArray

_ROUNDS = 8  # fixed-point rounds: the loop's utilisation depends on its own stretch
_COLD_LEVELS = 256


@dataclass(frozen=True, slots=True)
class CpuDemand:
    """Who else wants the cores: CPU seconds per request of each worker's event loop and of the client.

    `client_s` is 0 when the client runs on another machine. `workers` server processes each have a
    loop and their share of the instances, each instance `threads` threads. A request finding its loop
    idle (probability 1 - the loop's utilisation) costs `wake_s` more; even saturated, requests found
    it idle 1 - `saturated_busy` of the time in the profile, and capacity assumes no better. A loop
    that slept costs more still, `idle_loop_s` interpolated at how long it slept (cold caches).
    """

    cores: int
    loop_s: float
    client_s: float = 0.0
    threads: int = 1
    workers: int = 1
    wake_s: float = 0.0  # more loop CPU for a request that finds the loop idle
    saturated_busy: float = 1.0  # the loop's utilisation when the server was saturated in the profile
    idle_gap_s: tuple[float, ...] = ()  # with idle_loop_s: more loop CPU after the loop slept this long
    idle_loop_s: tuple[float, ...] = ()

    def cold_s(self, rate_rps: float) -> float:
        """Mean extra loop CPU of a request that finds the loop asleep, for Poisson arrivals at `rate_rps`:
        the loop has slept an exponential time with that rate (memoryless: since it emptied)."""
        if not self.idle_loop_s or rate_rps <= 0:
            return 0.0
        u = (np.arange(_COLD_LEVELS) + 0.5) / _COLD_LEVELS
        gaps = -np.log1p(-u) / rate_rps  # exponential quantiles
        return float(np.mean(np.interp(gaps, self.idle_gap_s, self.idle_loop_s)))


@dataclass(frozen=True, slots=True)
class Stretch:
    """Slowdowns (>= 1): of the event loop, and of a batch started with k of a worker's instances busy (index k-1)."""

    loop: float
    model: tuple[float, ...]
    loop_busy: float  # the loop's utilisation with its stretch
    client_busy: float
    model_by_loop: tuple[tuple[float, float], ...] = ()  # k-1 -> (slowdown with this worker's loop idle, busy)


def stretch(demand: CpuDemand, rate_rps: float, instance_busy: float, instances: int, loop_spin: float = 0.0
            ) -> Stretch:
    """The slowdowns at `rate_rps` per worker with each instance busy `instance_busy` of the time.

    `loop_spin` is the share of the time each loop also spins waiting for a batch's deadline: it holds
    a core then (the others see the loop runnable) without doing any request's work.
    """
    c, t, w = demand.cores, demand.threads, demand.workers
    client = _bernoulli(min(1.0, rate_rps * w * demand.client_s))
    busy_instances = _binomial(w * instances, min(1.0, max(0.0, instance_busy)))
    spin = min(1.0, max(0.0, loop_spin))
    loop_factor, loop_busy, runnable = 1.0, 0.0, spin
    woken = demand.wake_s + demand.cold_s(rate_rps)
    for _ in range(_ROUNDS):
        loop_busy = min(1.0, rate_rps * (demand.loop_s + woken * (1.0 - loop_busy)) * loop_factor)
        runnable = 1.0 - (1.0 - loop_busy) * (1.0 - spin)  # working or spinning: it wants a core
        others = np.convolve(np.convolve(_binomial(w - 1, runnable), client), _spread(busy_instances, t))
        loop_factor = _expected_share(1.0, others, c)
    others = np.convolve(_binomial(w - 1, runnable), client)
    by_loop = tuple((_expected_share(k * w * t, others, c) / max(1.0, k * w * t / c),
                     _expected_share(k * w * t + 1, others, c) / max(1.0, k * w * t / c))
                    for k in range(1, instances + 1))
    model = tuple(idle + runnable * (busy - idle) for idle, busy in by_loop)
    return Stretch(loop_factor, model, loop_busy, float(client[1]) if client.size > 1 else 0.0, by_loop)


def _expected_share(base: float, pmf: FloatArray, cores: int) -> float:
    """E[max(1, (base + X) / cores)] for X with probabilities `pmf` over 0, 1, 2, ..."""
    runnable = base + np.arange(pmf.size)
    return float(np.dot(pmf, np.maximum(1.0, runnable / cores)))


def _bernoulli(p: float) -> FloatArray:
    return np.array([1.0 - p, p]) if p > 0 else np.ones(1)


def _binomial(n: int, p: float) -> FloatArray:
    pmf = np.ones(1)
    for _ in range(max(0, n)):
        pmf = np.convolve(pmf, _bernoulli(p))
    return pmf


def _spread(pmf: FloatArray, step: int) -> FloatArray:
    """The distribution of `step` * X: each busy instance runs `step` threads."""
    out = np.zeros((pmf.size - 1) * step + 1)
    out[::step] = pmf
    return out
