"""Closed-form queueing results for quick what-ifs and as cross-checks of the simulator.

Rates are per second, times in seconds. Each function returns `QueueMetrics`; an unstable queue
(utilisation >= 1) gives infinite waits rather than an error, so a sweep over rates can print it.

Example::

    mm1(lam=80, mu=100).wait_s            # 0.04 s mean queueing delay at 80% load
    mgc(lam=150, mean_s=0.01, scv=0.2, c=2).response_s
"""

from __future__ import annotations

from dataclasses import dataclass

from inferlab.errors import InvalidInput

_INF = float("inf")


@dataclass(frozen=True, slots=True)
class QueueMetrics:
    """Utilisation per server, mean wait in queue, mean response (wait + service), mean queue length."""

    utilisation: float
    wait_s: float
    response_s: float
    queue_length: float

    @property
    def stable(self) -> bool:
        return self.utilisation < 1.0


def mm1(lam: float, mu: float) -> QueueMetrics:
    """Poisson arrivals, exponential service, one server: Wq = rho / (mu - lam)."""
    return mmc(lam, mu, 1)


def mmc(lam: float, mu: float, c: int) -> QueueMetrics:
    """Poisson arrivals, exponential service, c servers: Erlang C probability of waiting / (c mu - lam)."""
    _check(lam, 1.0 / mu if mu > 0 else -1.0, c)
    rho = lam / (c * mu)
    if rho >= 1:
        return _unstable(rho)
    wq = erlang_c(c, lam / mu) / (c * mu - lam)
    return QueueMetrics(rho, wq, wq + 1.0 / mu, lam * wq)


def md1(lam: float, service_s: float) -> QueueMetrics:
    """Poisson arrivals, constant service: half the M/M/1 wait, Wq = rho D / (2 (1 - rho))."""
    return mg1(lam, service_s, service_s * service_s)


def mg1(lam: float, mean_s: float, second_moment_s2: float) -> QueueMetrics:
    """Pollaczek-Khinchine: Wq = lam E[S^2] / (2 (1 - rho)), for any service distribution."""
    _check(lam, mean_s, 1)
    rho = lam * mean_s
    if rho >= 1:
        return _unstable(rho)
    wq = lam * second_moment_s2 / (2.0 * (1.0 - rho))
    return QueueMetrics(rho, wq, wq + mean_s, lam * wq)


def mgc(lam: float, mean_s: float, scv: float, c: int) -> QueueMetrics:
    """M/G/c by the Allen-Cunneen approximation: the M/M/c wait scaled by (1 + SCV) / 2.

    `scv` is the squared coefficient of variation of service, Var[S] / E[S]^2 (1 exponential, 0 constant).
    Exact for c = 1 (it is Pollaczek-Khinchine then); within a few percent for moderate c and SCV.
    """
    base = mmc(lam, 1.0 / mean_s, c)
    if not base.stable:
        return base
    wq = base.wait_s * (1.0 + scv) / 2.0
    return QueueMetrics(base.utilisation, wq, wq + mean_s, lam * wq)


def erlang_c(c: int, load: float) -> float:
    """Probability an arrival waits in M/M/c with offered load `load` = lam / mu (< c), computed stably."""
    if load >= c:
        return 1.0
    inv_b = 1.0  # Erlang B by its recursion, then C from B
    for k in range(1, c + 1):
        inv_b = 1.0 + inv_b * k / load
    b = 1.0 / inv_b
    rho = load / c
    return b / (1.0 - rho + rho * b)


@dataclass(frozen=True, slots=True)
class BatchBound:
    """What batching can do at a rate: the smallest stable batch size, its utilisation, a latency floor."""

    capacity_rps: float
    batch_size: int
    utilisation: float
    latency_floor_s: float


def batch_bound(lam: float, batch_means_s: list[float], c: int, max_queue_delay_s: float) -> BatchBound:
    """A batch-service bound for c instances, `batch_means_s[b-1]` the mean service of a batch of b.

    Capacity is max_b c b / S(b). At rate `lam` batches must hold at least b* requests, the smallest
    b with c b / S(b) > lam; a request then waits on average for half the others of its batch to
    arrive (capped by the batcher's delay) and for the batch's service: a floor on the mean latency
    that ignores queueing, so the simulator's mean must lie at or above it.
    """
    _check(lam, batch_means_s[0] if batch_means_s else -1.0, c)
    capacities = [c * b / s if s > 0 else _INF for b, s in enumerate(batch_means_s, start=1)]
    capacity = max(capacities)
    stable = [b for b, cap in enumerate(capacities, start=1) if cap > lam]
    if not stable:
        return BatchBound(capacity, len(batch_means_s), lam / capacity, _INF)
    b = stable[0]
    fill = min((b - 1) / (2.0 * lam), max_queue_delay_s) if b > 1 else 0.0
    return BatchBound(capacity, b, lam / capacities[b - 1], fill + batch_means_s[b - 1])


def _unstable(rho: float) -> QueueMetrics:
    return QueueMetrics(rho, _INF, _INF, _INF)


def _check(lam: float, mean_s: float, c: int) -> None:
    if lam < 0 or not mean_s > 0 or c < 1:
        raise InvalidInput(f"queue model: need rate >= 0, mean service > 0 and servers >= 1; got {lam}, {mean_s}, {c}")
