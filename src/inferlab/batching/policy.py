"""The batch-forming rule: given the queue, which requests run next and why (pure, no clocks, no I/O).

This is the whole policy, kept apart so that `perfmodel` can simulate exactly what the server does.
It is consulted only when a model instance is free:

1. The candidate is the longest prefix of the queue (FIFO order) whose requests can be stacked with
   the head (same input names, dtypes and non-batch dimensions, same requested outputs) and whose
   rows add up to at most `max_batch_size`. A request that cannot be stacked at all runs alone.
2. FULL: the candidate has `max_batch_size` rows, or it cannot grow (the next queued request does not
   fit or cannot be stacked, or the head runs alone): run the candidate now.
3. PREFERRED: some prefix of the candidate has a row count in `preferred_batch_sizes`: run the longest
   such prefix now.
4. DELAY: the head has waited at least `max_queue_delay`: run the candidate now.
5. Otherwise wait: for the next arrival, or until the head has waited `max_queue_delay`.

With batching disabled every request is its own batch and rule 2 applies to it at once.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Protocol

from inferlab.config import ModelConfig
from inferlab.errors import RepositoryError

FULL = "full"
PREFERRED = "preferred"
DELAY = "delay"
CAUSES = (FULL, PREFERRED, DELAY)


class Pending(Protocol):
    """What the policy needs to know about one queued request."""

    @property
    def rows(self) -> int: ...

    @property
    def key(self) -> Hashable | None:
        """Requests with equal keys can be stacked; None means this request must run alone."""
        ...


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """`max_batch_size` 0 turns batching off (one request per batch)."""

    max_batch_size: int = 0
    max_queue_delay_s: float = 0.0
    preferred_batch_sizes: frozenset[int] = frozenset()

    @classmethod
    def from_config(cls, config: ModelConfig) -> BatchPolicy:
        """The policy a model's config.yaml asks for; batching needs a batch dimension (max_batch_size >= 1)."""
        batching = config.batching
        if batching.enabled and not config.max_batch_size:
            raise RepositoryError("config.yaml: batching needs max_batch_size >= 1 (it is 0)")
        too_big = [s for s in batching.preferred_batch_sizes if s > config.max_batch_size]
        if batching.enabled and too_big:
            raise RepositoryError(
                f"config.yaml: preferred_batch_sizes {too_big} are over max_batch_size {config.max_batch_size}"
            )
        return cls(
            config.max_batch_size if batching.enabled else 0,
            batching.max_queue_delay_us / 1e6,
            frozenset(batching.preferred_batch_sizes),
        )

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 0

    def decide(self, queue: Iterable[Pending], head_waited_s: float) -> tuple[int, str] | None:
        """How many requests from the front of `queue` (non-empty) to run now, and the cause; None = wait."""
        it = iter(queue)
        head = next(it)
        if not self.batching or head.key is None:
            return 1, FULL
        rows = head.rows
        count = 1
        best_preferred = count if rows in self.preferred_batch_sizes else 0
        if rows >= self.max_batch_size:
            return count, FULL
        for pending in it:
            if pending.key != head.key or rows + pending.rows > self.max_batch_size:
                return count, FULL
            rows += pending.rows
            count += 1
            if rows == self.max_batch_size:
                return count, FULL
            if rows in self.preferred_batch_sizes:
                best_preferred = count
        if best_preferred:
            return best_preferred, PREFERRED
        if head_waited_s >= self.max_queue_delay_s:
            return count, DELAY
        return None
