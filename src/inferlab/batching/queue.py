"""The bounded per-model request queue: admission control, per-request deadlines, FIFO removal.

Admission is decided at once: a full queue raises Overloaded (503 + Retry-After) instead of growing.
A request whose deadline passes while it waits is failed with DeadlineExceeded right then (504) and
is never run; once a request has been taken into a batch its deadline no longer applies.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from time import perf_counter

from inferlab.errors import DeadlineExceeded, InferlabError, Overloaded
from inferlab.messages import InferRequest
from inferlab.tensors import Array

DEFAULT_QUEUE_SIZE = 512


@dataclass(slots=True, eq=False)
class Entry:
    """One queued request: its rows and stacking key (for the policy), its future, its deadline."""

    request: InferRequest
    rows: int
    key: Hashable | None
    future: asyncio.Future[dict[str, Array]]
    deadline: float = 0.0
    timer: asyncio.TimerHandle | None = None
    queued: bool = field(default=True)


class RequestQueue:
    """FIFO of Entry with a hard size limit; `len()` counts requests still waiting."""

    def __init__(self, what: str, max_queue_size: int = 0, on_depth: Callable[[int], None] | None = None) -> None:
        """`on_depth(n)` is told the number of waiting requests whenever it changes (for metrics)."""
        self._what = what
        self._on_depth = on_depth or _ignore
        self.capacity = max_queue_size or DEFAULT_QUEUE_SIZE
        self._entries: deque[Entry] = deque()
        self._waiting = 0

    def __len__(self) -> int:
        return self._waiting

    def put(self, entry: Entry) -> None:
        """Append `entry`, or raise Overloaded when `capacity` requests already wait."""
        if self._waiting >= self.capacity:
            raise Overloaded(
                f"{self._what} is overloaded: {self._waiting} requests are queued, which is its max_queue_size; "
                "retry later",
                retry_after_s=1.0,
            )
        self._entries.append(entry)
        self._waiting += 1
        self._on_depth(self._waiting)
        if entry.deadline:
            delay = entry.deadline - perf_counter()
            entry.timer = asyncio.get_running_loop().call_later(max(delay, 0.0), self._expire, entry)

    def waiting(self) -> Iterator[Entry]:
        """The entries still waiting, oldest first (what the policy looks at)."""
        return (e for e in self._entries if e.queued and not e.future.done())

    def head(self) -> Entry | None:
        self._drop_dead_head()
        return self._entries[0] if self._entries else None

    def take(self, count: int) -> list[Entry]:
        """Remove and return the first `count` waiting entries."""
        taken: list[Entry] = []
        while len(taken) < count:
            entry = self._entries.popleft()
            if not entry.queued:
                continue
            self._dequeue(entry)
            if not entry.future.done():  # a cancelled caller is dropped here
                taken.append(entry)
        return taken

    def fail_all(self, exc: InferlabError) -> None:
        """Answer every waiting request with `exc` (the model is going away)."""
        while self._entries:
            entry = self._entries.popleft()
            if entry.queued:
                self._dequeue(entry)
                if not entry.future.done():
                    entry.future.set_exception(exc)

    def _expire(self, entry: Entry) -> None:
        if not entry.queued:
            return
        self._dequeue(entry)
        if not entry.future.done():
            waited_ms = (perf_counter() - entry.request.timings.enqueued) * 1e3
            entry.future.set_exception(DeadlineExceeded(
                f"request to {self._what} timed out after waiting {waited_ms:.1f} ms in the queue; it was not run"
            ))
        self._drop_dead_head()

    def _dequeue(self, entry: Entry) -> None:
        entry.queued = False
        self._waiting -= 1
        self._on_depth(self._waiting)
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None

    def _drop_dead_head(self) -> None:
        while self._entries and (not self._entries[0].queued or self._entries[0].future.done()):
            entry = self._entries.popleft()
            if entry.queued:
                self._dequeue(entry)


def _ignore(depth: int) -> None:
    pass
