"""MLPerf-style early stopping: is a percentile claim backed by enough queries?

MLPerf LoadGen asks: if the system only just failed (each query under the bound with probability exactly
`p`), how unlikely is it to see `h` or more queries under the bound out of `h + t`? When that chance is at
most `1 - confidence`, the claim "p-th percentile <= bound" stands. The tail of a binomial distribution is
the regularized incomplete beta function `I_p(h, t + 1)` that LoadGen evaluates; we sum it in log space,
which is exact enough for the few thousand queries a run has and needs no special-function library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.99


@dataclass(frozen=True, slots=True)
class EarlyStopping:
    """The verdict on one run: `ok` when the claim holds, else how many more queries it would need.

    Example:
        >>> verdict = early_stopping(queries=1000, overlatency=3, percentile=0.99)
        >>> verdict.ok, verdict.needed_queries
    """

    ok: bool
    queries: int
    overlatency: int
    needed_queries: int  # h(t) + t: the fewest queries that back the claim with this many over the bound


def binomial_tail(n: int, k: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), equal to I_p(k, n - k + 1)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p >= 1.0:
        return 1.0
    if p <= 0.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    log_n = math.lgamma(n + 1)
    terms = [log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def min_passing(overlatency: int, percentile: float, confidence: float = CONFIDENCE) -> int:
    """Smallest h with I_p(h, t + 1) <= 1 - confidence: under-bound queries needed beside t over it."""
    def passes(h: int) -> bool:
        return binomial_tail(h + overlatency, h, percentile) <= 1.0 - confidence

    high = 1
    while not passes(high):
        high *= 2
    low = high // 2
    while low + 1 < high:  # invariant: passes(high), not passes(low) (or low == 0)
        middle = (low + high) // 2
        if passes(middle):
            high = middle
        else:
            low = middle
    return high


def early_stopping(queries: int, overlatency: int, percentile: float, confidence: float = CONFIDENCE) -> EarlyStopping:
    """Server scenario rule: the run passes when queries >= h(t) + t, t being the queries over the bound."""
    needed = min_passing(overlatency, percentile, confidence) + overlatency
    return EarlyStopping(ok=queries >= needed, queries=queries, overlatency=overlatency, needed_queries=needed)


def min_queries(percentile: float, confidence: float = CONFIDENCE) -> int:
    """Queries a run needs when none is over the bound (459 for p99, 44 for p90): the least worth running."""
    return min_passing(0, percentile, confidence)


def percentile_estimate(
    latencies_ms: Sequence[float], percentile: float, confidence: float = CONFIDENCE,
) -> float | None:
    """SingleStream rule: the largest t with q >= h(t) + t; drop the t - 1 slowest and report the next.

    None when even t = 1 is not backed by enough queries (the run is too short to claim anything).
    """
    ordered = sorted(latencies_ms, reverse=True)
    count = len(ordered)
    best = 0
    t = 1
    while t <= count and count >= min_passing(t, percentile, confidence) + t:
        best = t
        t += 1
    if best == 0:
        return None
    return ordered[best - 1]
