"""Discrete-event simulation: arrivals -> front end -> bounded queue -> dynamic batcher -> N instances.

The model mirrors the server's policy, so its predictions can be checked against a real run:

* the front end (HTTP parsing, JSON decode/encode on the event loop) is one server, shared evenly
  by the requests it holds (processor sharing: the loop takes turns between their tasks), whose
  per-request cost is `Overhead.serial_s`, plus `Overhead.wake_s` for a request that finds the loop
  idle (it wakes the loop alone) or `Overhead.rewake_s` for one that arrives while a round of the
  loop's work runs (it is served in the next round; requests ready together share a round) and
  `Overhead.idle_loop_s` for how long the loop slept (it runs from cold caches), plus a pure
  delay `Overhead.delay_s` nobody queues for, plus a wake-up penalty for requests that find the
  whole system idle;
* the queue admits a request unless `max_queue_size` requests already wait (then it is dropped);
* when an instance is free the batcher sends a batch as soon as `max_batch_size` requests wait, or a
  preferred size is reached (the largest preferred size that fits), or the oldest request has waited
  `max_queue_delay_s`; without batching every request is its own batch;
* a batch of b requests occupies one of `instances` instances for a service time drawn from the
  measured distribution for size b (`ServiceTimes`), plus `Overhead.handoff_s` after it in which the
  instance cannot start another batch (results go back through the event loop, the next batch comes
  from it);
* while a batch waits for its deadline with an instance free, the server's batcher yields to the
  event loop instead of sleeping for the last `spin_s` of the wait (its timers tick in whole
  milliseconds): the loop's thread stays runnable then, so it takes a core from the instances
  (`SimResult.loop_spin`, fed back through `loop_spin`).

The front end is a Lindley recursion, vectorised with numpy; the batcher is an event loop over plain
Python lists (no numpy scalars in the loop), so 100k requests take well under a second.

Example::

    policy = BatchPolicy(max_batch_size=8, max_queue_delay_s=0.002, instances=2)
    result = simulate(poisson_arrivals(200.0, 100_000, seed=1), ServiceTimes.constant(0.01), policy)
    result.p99_s, result.throughput_rps
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inferlab.errors import InvalidInput
from inferlab.perfmodel.service import FloatArray, ServiceTimes

_LEVELS = 1024


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """The serving configuration the simulation follows (config.yaml's batching and instance fields)."""

    max_batch_size: int = 1
    max_queue_delay_s: float = 0.0
    preferred_batch_sizes: tuple[int, ...] = ()
    instances: int = 1
    max_queue_size: int = 0  # 0: unbounded
    spin_s: float = 0.0  # the last this-long of a batch's wait keeps the event loop busy (batching/batcher.py)

    def __post_init__(self) -> None:
        if (self.max_batch_size < 1 or self.instances < 1 or self.max_queue_size < 0 or self.max_queue_delay_s < 0
                or self.spin_s < 0):
            raise InvalidInput(f"batch policy {self}: sizes and instances must be >= 1, delay and queue size >= 0")


@dataclass(frozen=True, slots=True)
class Overhead:
    """Per-request server cost outside the model: `serial_s` queues on the event loop, `delay_s` does not.

    `idle_penalty_s[k]` is extra latency for a request that finds the system idle for `idle_gap_s[k]`
    (interpolated between measured gaps): an idle server and client sleep, and waking them costs up
    to a millisecond on a VM, which dominates sub-millisecond requests at low rates. Each request
    also draws one of `jitter_s` (the unloaded latency minus its median): the tail that scheduling,
    allocation and other tenants add to every request, queue or no queue. `handoff_s` holds an instance
    after each batch (its requests' latency does not include it: the unloaded delay already does).
    `idle_loop_s[k]` is more event-loop time for a request that finds the loop asleep for `idle_gap_s[k]`:
    it queues, unlike the penalty.
    """

    serial_s: float = 0.0
    delay_s: float = 0.0
    wake_s: float = 0.0  # extra event-loop time for a request that finds the loop idle
    idle_gap_s: tuple[float, ...] = ()
    idle_penalty_s: tuple[float, ...] = ()
    jitter_s: tuple[float, ...] = ()  # measured spread of the unloaded latency around its median
    handoff_s: float = 0.0
    idle_loop_s: tuple[float, ...] = ()  # on the idle_gap_s grid
    reply_share: float = 0.0  # the share of `serial_s` the loop spends on a request's reply, after its batch
    rewake_s: float = 0.0  # event-loop time of a round straight after another, without sleeping

    def penalty(self, idle_s: FloatArray) -> FloatArray | float:
        if not self.idle_penalty_s:
            return 0.0
        out: FloatArray = np.interp(idle_s, self.idle_gap_s, self.idle_penalty_s)
        return out


@dataclass(frozen=True, slots=True)
class SimResult:
    """What one simulated run predicts; latencies are per completed request, in seconds."""

    offered_rps: float
    throughput_rps: float
    utilisation: float  # of the instances
    front_utilisation: float  # of the event loop
    mean_queue_length: float
    mean_wait_s: float
    mean_latency_s: float
    p50_s: float
    p95_s: float
    p99_s: float
    completed: int
    dropped: int
    mean_batch_size: float
    loop_spin: float = 0.0  # share of the time the event loop spins, waiting for a batch's deadline


def constant_arrivals(rate_rps: float, n: int) -> FloatArray:
    """Evenly spaced arrivals: the deterministic 'D' of D/G/1."""
    _check_rate(rate_rps, n)
    return np.arange(n, dtype=np.float64) / rate_rps


def poisson_arrivals(rate_rps: float, n: int, seed: int = 0) -> FloatArray:
    """A seeded Poisson process: exponential gaps, the 'M' of M/G/c and what open-loop load generators send."""
    _check_rate(rate_rps, n)
    return np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate_rps, n))


def trace_arrivals(times_s: FloatArray) -> FloatArray:
    """Replay recorded send times (any order, any origin): sorted and shifted to start at zero."""
    times: FloatArray = np.sort(np.asarray(times_s, dtype=np.float64))
    if times.size == 0 or not np.all(np.isfinite(times)):
        raise InvalidInput("trace: need at least one finite arrival time")
    shifted: FloatArray = times - times[0]
    return shifted


def fifo_departures(arrivals: FloatArray, service: FloatArray) -> FloatArray:
    """Departure times of a single FIFO server (Lindley): d_i = max(a_i, d_{i-1}) + s_i, vectorised.

    Unrolled, d_i = S_i + max_{j<=i}(a_j - S_{j-1}) with S the running sum of service times.
    """
    s = np.cumsum(service)
    departures: FloatArray = s + np.maximum.accumulate(arrivals - (s - service))
    return departures


def waking_fifo_departures(arrivals: FloatArray, serial_s: float, wake_s: float,
                           idle_gap_s: Sequence[float] = (), idle_extra_s: Sequence[float] = (),
                           rewake_s: float = 0.0) -> FloatArray:
    """The event loop's work, which it does in rounds: a round after the loop slept costs `wake_s` (the
    epoll wake-up and its syscalls) plus `idle_extra_s` interpolated at how long it slept (on the
    `idle_gap_s` grid; cold caches); a round straight after another, without sleeping, `rewake_s`; and
    each costs `serial_s` per request that was ready when it began. A request arriving while a round
    runs is served in the next round. Returns when each request's work would be done, one after another
    (a loop in Python; `shared_departures` then shares the loop between them).

    Measured on this VM with digits over JSON: pairs of requests 0.05-0.2 ms apart cost the loop
    0.13-0.16 ms of CPU each, as much as one alone, while 16 saturating connections cost 0.07 ms each.
    """
    out = np.empty(arrivals.size)
    gaps, extra = list(idle_gap_s), list(idle_extra_s)
    start = end = -np.inf  # the latest round: when it begins (its requests were ready then) and ends
    for i, a in enumerate(arrivals.tolist()):
        if a >= end:  # the loop is asleep: a new round wakes it
            start = a
            end = a + wake_s + serial_s + (_interp(a - end, gaps, extra) if gaps else 0.0)
        elif a <= start:  # ready before the latest round began: it is served in that round
            end += serial_s
        else:  # the latest round is running: the next one begins when it ends
            start = end
            end += rewake_s + serial_s
        out[i] = end
    return out


def service_spans(arrivals: FloatArray, departures: FloatArray) -> FloatArray:
    """Each request's time at a FIFO server: from when it arrived or the one before left, whichever is later."""
    return departures - np.maximum(arrivals, np.concatenate(([-np.inf], departures[:-1])))


def shared_departures(arrivals: FloatArray, work: FloatArray) -> FloatArray:
    """Departure times from one processor shared evenly by every request present (egalitarian processor
    sharing), each needing `work[i]` seconds of it; arrivals sorted. Departures are not in arrival order.

    The server's event loop interleaves the requests it holds: uvicorn runs each in its own task, which
    awaits its body, the batcher and its reply, and the loop takes turns between tasks at every await.
    Measured on this VM with digits over JSON, a pair sent together finished 0.31 and 0.36 ms later
    (alone: 0.23 ms): the first is held up by the second, as under sharing, not as under FIFO.
    Virtual time V grows at 1/k while k requests share the loop; a request leaves when V reaches
    V at its arrival plus its work.
    """
    out = np.empty(arrivals.size)
    tags: list[tuple[float, int]] = []  # (V at which it leaves, index)
    v = t = 0.0
    works = work.tolist()
    for i, a in enumerate([*arrivals.tolist(), np.inf]):
        while tags:
            tag, j = tags[0]
            finish = t + (tag - v) * len(tags)
            if finish > a:
                v += (a - t) / len(tags)
                break
            heapq.heappop(tags)
            t, v = finish, tag
            out[j] = finish
        if i < arrivals.size:
            t = a
            heapq.heappush(tags, (v + works[i], i))
    return out


def _interp(x: float, xs: list[float], ys: list[float]) -> float:
    """np.interp for one float, without numpy's per-call cost (this runs once per request)."""
    j = bisect_right(xs, x)
    if j >= len(xs):
        return ys[-1]
    if j == 0:
        return ys[0]
    x0, x1 = xs[j - 1], xs[j]
    return ys[j - 1] + (ys[j] - ys[j - 1]) * (x - x0) / (x1 - x0)


def simulate(
    arrivals: FloatArray,
    service: ServiceTimes,
    policy: BatchPolicy,
    overhead: Overhead = Overhead(),
    seed: int = 0,
    warmup_fraction: float = 0.0,
    model_stretch: Sequence[tuple[float, float]] = (),
    loop_spin: float = 0.0,
) -> SimResult:
    """Run the arrivals through the front end and the batcher; statistics skip the first `warmup_fraction`.

    Every batch draws its time from `service`, measured with all the instances computing at once: in the server
    a lone call on one of two instances ran as long as that (their weights share the caches).
    `model_stretch[k-1]` (core sharing, `cores.py`) is the slowdown of a batch with k instances busy while the
    event loop is idle and while it is busy; the batch gets the mix for the share of its time the simulated loop
    is busy, and, when another instance is free (whose batch may be waiting), for `loop_spin` of the rest (the
    share of the time the loop spins waiting for a deadline, from an earlier run: `SimResult.loop_spin`).
    """
    n = int(arrivals.size)
    if n == 0:
        raise InvalidInput("simulate: need at least one arrival")
    rng = np.random.default_rng(seed)
    front = arrivals
    if overhead.wake_s > 0 or overhead.idle_loop_s:
        front = waking_fifo_departures(arrivals, overhead.serial_s, overhead.wake_s, overhead.idle_gap_s,
                                       overhead.idle_loop_s, overhead.rewake_s)
    elif overhead.serial_s > 0:
        front = fifo_departures(arrivals, np.full(n, overhead.serial_s))
    table = service.table(policy.max_batch_size, _LEVELS)
    levels = rng.integers(0, _LEVELS, n).tolist()
    front_s = service_spans(arrivals, front)  # each one's loop time
    loop = _LoopBusy(front - front_s, front_s) if model_stretch else None  # busy periods: as under FIFO
    reply_s = overhead.serial_s * overhead.reply_share
    shared = overhead.serial_s > 0 or overhead.wake_s > 0 or bool(overhead.idle_loop_s)
    if shared:
        front = shared_departures(arrivals, front_s - reply_s)  # the loop takes turns between the requests it holds
    order = np.argsort(front, kind="stable")  # the batcher takes requests as the loop hands them over
    started_o, done_o, batches, busy_s, spin_s = _run_batcher(front[order].tolist(), table, levels, policy,
                                                              overhead.handoff_s, list(model_stretch), loop, loop_spin)
    started, done = np.empty(n), np.empty(n)
    started[order], done[order] = started_o, done_o
    if shared and reply_s > 0:
        done = _replied(arrivals, front_s - reply_s, done, reply_s)
    jitter = rng.choice(np.asarray(overhead.jitter_s), n) if overhead.jitter_s else np.zeros(n)
    return _summarise(arrivals, front_s, started, done, batches, busy_s, spin_s, policy,
                      overhead, jitter, int(n * warmup_fraction))


def _replied(arrivals: FloatArray, in_s: FloatArray, done: FloatArray, reply_s: float) -> FloatArray:
    """When each reply leaves: after its batch, the loop encodes and writes it (`reply_s`), shared with the
    other replies and the requests it is parsing meanwhile (nan stays nan: dropped).

    A batch's requests finish together, so their replies queue on the loop together: with batching, a
    request's reply waits for the rest of its batch's, which one loop cost per request charged on the
    way in (when arrivals are spread out) leaves out.
    """
    ok = ~np.isnan(done)
    times = np.concatenate((arrivals, done[ok]))
    order = np.argsort(times, kind="stable")
    leave = np.empty(times.size)
    leave[order] = shared_departures(times[order], np.concatenate((in_s, np.full(int(ok.sum()), reply_s)))[order])
    out = np.full(done.size, np.nan)
    out[ok] = leave[arrivals.size:]
    return out


def _summarise(
    arrivals: FloatArray, front_s: FloatArray, started: FloatArray, done: FloatArray, batches: int, busy_s: float,
    spin_s: float, policy: BatchPolicy, overhead: Overhead, jitter: FloatArray, skip: int,
) -> SimResult:
    """Statistics from per-request times; the queue length is the time average, by Little's law."""
    ok_all = ~np.isnan(done)
    span = float(done[ok_all].max() - arrivals[0]) if ok_all.any() else 0.0
    a, s, d = arrivals[skip:], started[skip:], done[skip:]
    ok = ~np.isnan(d)
    ended = np.fmax.accumulate(np.concatenate(([-np.inf], done[:-1])))  # last completion before each arrival
    idle = np.maximum(arrivals - ended, 0.0)[skip:]  # how long the whole system sat empty before it
    latency = np.maximum(d[ok] - a[ok] + overhead.delay_s + overhead.penalty(idle[ok]) + jitter[skip:][ok], 0.0)
    wait = s[ok] - a[ok] - front_s[skip:][ok]  # time spent queued, front end or batcher
    window = float(d[ok].max() - a[0]) if ok.any() else 0.0
    completed = int(ok.sum())
    pct = np.percentile(latency, [50, 95, 99]) if completed else np.full(3, np.nan)
    return SimResult(
        offered_rps=(a.size - 1) / float(a[-1] - a[0]) if a.size > 1 and a[-1] > a[0] else 0.0,
        throughput_rps=int(ok_all.sum()) / span if span > 0 else 0.0,
        utilisation=min(1.0, busy_s / (policy.instances * span)) if span > 0 else 0.0,
        front_utilisation=min(1.0, float(front_s.sum()) / span) if span > 0 else 0.0,
        mean_queue_length=float(wait.sum()) / window if window > 0 else 0.0,
        mean_wait_s=float(wait.mean()) if completed else float("nan"),
        mean_latency_s=float(latency.mean()) if completed else float("nan"),
        p50_s=float(pct[0]),
        p95_s=float(pct[1]),
        p99_s=float(pct[2]),
        completed=completed,
        dropped=int(a.size) - completed,
        mean_batch_size=int(ok_all.sum()) / max(batches, 1),
        loop_spin=min(1.0, spin_s / span) if span > 0 else 0.0,
    )


class _LoopBusy:
    """How much of a time window the simulated event loop spends working (its busy periods are sorted)."""

    def __init__(self, begins: FloatArray, lengths: FloatArray) -> None:
        self.begins = begins.tolist()
        self.lengths = lengths.tolist()
        self.before = (np.cumsum(lengths) - lengths).tolist()  # busy time before each period

    def worked(self, t: float) -> float:
        """Busy time up to `t`."""
        j = bisect_right(self.begins, t) - 1
        return 0.0 if j < 0 else self.before[j] + min(t - self.begins[j], self.lengths[j])

    def share(self, t0: float, t1: float) -> float:
        return (self.worked(t1) - self.worked(t0)) / (t1 - t0) if t1 > t0 else 0.0


def _run_batcher(
    arrivals: list[float], table: list[list[float]], levels: list[int], policy: BatchPolicy,
    handoff: float = 0.0, model_stretch: list[tuple[float, float]] | None = None, loop: _LoopBusy | None = None,
    loop_spin: float = 0.0,
) -> tuple[list[float], list[float], int, float, float]:
    """The event loop: batch start and completion per request (nan when dropped), batches, busy time, spin time."""
    n = len(arrivals)
    maxb = policy.max_batch_size
    delay = policy.max_queue_delay_s
    qmax = policy.max_queue_size or n + 1
    preferred = sorted(p for p in policy.preferred_batch_sizes if p <= maxb)
    done = [float("nan")] * n
    started = [float("nan")] * n
    queue: list[int] = []  # admitted request indices; queue[head:] are waiting
    head = 0
    nxt = 0  # next raw arrival not yet admitted or dropped
    free = [0.0] * policy.instances
    last = 0.0
    batches = 0
    busy = 0.0
    spin = 0.0

    while True:
        t = max(heapq.heappop(free), last)
        while nxt < n and arrivals[nxt] < t:  # admit what arrived while every instance was busy
            if len(queue) - head < qmax:
                queue.append(nxt)
            nxt += 1
        if head == len(queue):
            if nxt == n:
                break
            t = arrivals[nxt]
            queue.append(nxt)
            nxt += 1
        waiting_from = t
        while True:
            k = len(queue) - head
            if k >= maxb:
                size = maxb
                break
            if t >= arrivals[queue[head]] + delay:
                size = k
                break
            fit = [p for p in preferred if p <= k]
            if fit:
                size = fit[-1]
                break
            deadline = arrivals[queue[head]] + delay
            if nxt < n and arrivals[nxt] < deadline:
                t = arrivals[nxt]
                if k < qmax:
                    queue.append(nxt)
                nxt += 1
            else:
                t = deadline
        if policy.spin_s > 0 and delay > 0:  # the server's batcher yields to the loop for the wait's last spin_s
            spin += max(0.0, t - max(waiting_from, arrivals[queue[head]] + delay - policy.spin_s))
        s = table[size][levels[batches]]
        if model_stretch and loop is not None:
            running = sum(1 for f in free if f > t)  # the other instances still computing
            idle, busy_loop = model_stretch[min(running, len(model_stretch) - 1)]
            share = loop.share(t, t + s)
            if running + 1 < policy.instances:  # a free instance's batch may be waiting: the loop may spin
                share += (1.0 - share) * loop_spin
            s *= idle + share * (busy_loop - idle)
        end = t + s
        for i in queue[head : head + size]:
            started[i] = t
            done[i] = end
        head += size
        batches += 1
        busy += s + handoff
        last = t
        heapq.heappush(free, end + handoff)
    return started, done, batches, busy, spin


def _check_rate(rate_rps: float, n: int) -> None:
    if not rate_rps > 0 or n < 1:
        raise InvalidInput(f"arrivals: rate {rate_rps} must be > 0 and count {n} >= 1")
