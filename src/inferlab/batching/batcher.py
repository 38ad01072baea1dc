"""DynamicBatcher: queue requests, form batches by the policy, run them on the pool, split the results.

Everything here runs on the event loop; only the runtime call itself may leave it (instances.py).
Requests are stacked along axis 0 and each gets back exactly its own rows of every output, as
views into the batch's output (no copies). Example::

    batcher = DynamicBatcher("digits:1", pool, BatchPolicy(64, 0.0005), max_queue_size=256)
    outputs = await batcher.run(request)            # raises Overloaded / DeadlineExceeded
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass
from time import perf_counter
from typing import Protocol

import numpy as np

from inferlab.batching.instances import InstancePool, Outputs
from inferlab.batching.policy import BatchPolicy
from inferlab.batching.queue import Entry, RequestQueue
from inferlab.errors import DeadlineExceeded, InferlabError, ModelNotReady, RuntimeFailure
from inferlab.messages import InferRequest

TIMER_TICK_S = 0.001  # uvloop timers tick in whole ms: the last tick is waited out by yielding (perfmodel models it)


class BatchObserver(Protocol):
    """Told about every batch formed and every change of queue depth (metrics implement this)."""

    def flushed(self, cause: str, rows: int) -> None: ...

    def queue_depth(self, depth: int) -> None: ...


class NullObserver:
    def flushed(self, cause: str, rows: int) -> None:
        pass

    def queue_depth(self, depth: int) -> None:
        pass


class DynamicBatcher:
    """One model version's queue, policy and instance pool, driven from the event loop."""

    def __init__(
        self, what: str, pool: InstancePool, policy: BatchPolicy, max_queue_size: int = 0,
        observer: BatchObserver | None = None,
    ) -> None:
        self._what = what
        self._pool = pool
        self._policy = policy
        self._observer = observer or NullObserver()
        self._queue = RequestQueue(what, max_queue_size, self._observer.queue_depth)
        self._timer: asyncio.Handle | None = None
        self._closed = False
        self._scheduling = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def run(self, request: InferRequest, deadline: float = 0.0) -> Outputs:
        """Run `request` (alone or in a batch) and return its outputs; `deadline` is a perf_counter time."""
        if self._closed:
            raise ModelNotReady(f"{self._what} is being unloaded")
        if deadline and perf_counter() >= deadline:
            raise DeadlineExceeded(f"request to {self._what} timed out before it could be queued; it was not run")
        timings = request.timings
        timings.enqueued = perf_counter()
        rows, key = _stack_key(request) if self._policy.batching else (_rows(request), None)
        if self._pool.free and self._pool.inline and not self._queue:
            decision = self._policy.decide((_Lone(rows, key),), 0.0)
            if decision is not None:  # an idle instance would take this request alone right now
                timings.batch_start, timings.batch_size = timings.enqueued, rows
                self._observer.flushed(decision[1], rows)
                outputs, timings.infer_start, timings.infer_end = self._pool.run_inline(request.inputs, request.outputs)
                return outputs
        self._loop = loop = asyncio.get_running_loop()
        future: asyncio.Future[Outputs] = loop.create_future()
        self._queue.put(Entry(request, rows, key, future, deadline))
        self._schedule()
        return await future

    def close(self) -> None:
        """Stop taking requests, answer the waiting ones, release the instances; callable from any thread."""
        self._closed = True
        loop = self._loop
        if loop is None or loop.is_closed():
            pass
        elif _running_loop() is loop:
            self._drain()
        else:
            loop.call_soon_threadsafe(self._drain)
        self._pool.close()

    def _drain(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._queue.fail_all(ModelNotReady(f"{self._what} was unloaded while the request waited"))

    def _schedule(self) -> None:
        """Form and start batches while an instance is free and the policy says go."""
        if self._scheduling:  # an inline batch finished inside the loop below, which goes on by itself
            return
        self._scheduling = True
        try:
            self._form_batches()
        finally:
            self._scheduling = False

    def _form_batches(self) -> None:
        while self._pool.free and not self._closed:
            head = self._queue.head()
            if head is None:
                return
            waited = perf_counter() - head.request.timings.enqueued
            decision = self._policy.decide(self._queue.waiting(), waited)
            if decision is None:
                self._wake_in(self._policy.max_queue_delay_s - waited)
                return
            count, cause = decision
            self._start(self._queue.take(count), cause)

    def _wake_in(self, delay_s: float) -> None:
        """Run `_schedule` again in `delay_s`, to within tens of microseconds.

        Event-loop timers tick in whole milliseconds (uvloop rounds to the nearest one), so the last
        millisecond is waited by yielding to the loop, which keeps serving sockets meanwhile.
        """
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        if delay_s > TIMER_TICK_S:
            self._timer = loop.call_later(delay_s - TIMER_TICK_S, self._on_timer)
        else:
            self._timer = loop.call_soon(self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._schedule()

    def _start(self, entries: list[Entry], cause: str) -> None:
        now = perf_counter()
        rows = 0
        for entry in entries:
            entry.request.timings.batch_start = now
            rows += entry.rows
        self._observer.flushed(cause, rows)
        first = entries[0].request
        if len(entries) == 1:
            inputs = first.inputs
        else:
            inputs = {name: np.concatenate([e.request.inputs[name] for e in entries]) for name in first.inputs}

        def done(result: Outputs | InferlabError, start: float, end: float) -> None:
            self._finish(entries, rows, result, start, end)
            self._schedule()

        self._pool.submit(inputs, first.outputs, done)

    def _finish(
        self, entries: list[Entry], rows: int, result: Outputs | InferlabError, start: float, end: float
    ) -> None:
        if len(entries) > 1 and not isinstance(result, InferlabError):
            bad = [name for name, array in result.items() if array.ndim == 0 or array.shape[0] != rows]
            if bad:
                result = RuntimeFailure(
                    f"{self._what}: output(s) {bad} do not keep the batch dimension of {rows} rows, so a batch "
                    "cannot be split; turn batching off for this model"
                )
        if isinstance(result, InferlabError):
            for entry in entries:
                if not entry.future.done():
                    entry.future.set_exception(result)
            return
        offset = 0
        for entry in entries:
            timings = entry.request.timings
            timings.infer_start, timings.infer_end, timings.batch_size = start, end, rows
            if len(entries) == 1:
                mine = result
            else:
                mine = {name: array[offset:offset + entry.rows] for name, array in result.items()}
            offset += entry.rows
            if not entry.future.done():
                entry.future.set_result(mine)


@dataclass(frozen=True, slots=True)
class _Lone:
    rows: int
    key: Hashable | None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _rows(request: InferRequest) -> int:
    first = next(iter(request.inputs.values()))
    return int(first.shape[0]) if first.ndim else 1


def _stack_key(request: InferRequest) -> tuple[int, Hashable | None]:
    """(rows, key): requests with equal keys stack along axis 0; key None = this one runs alone."""
    rows = -1
    parts: list[tuple[str, str, tuple[int, ...]]] = []
    for name, array in request.inputs.items():
        if array.ndim == 0 or (rows >= 0 and array.shape[0] != rows):
            return _rows(request), None
        rows = int(array.shape[0])
        parts.append((name, array.dtype.str, array.shape[1:]))
    parts.sort()
    return rows, (tuple(parts), tuple(request.outputs or ()))
