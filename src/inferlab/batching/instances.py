"""InstancePool: N loaded copies of one model; a batch runs on a free copy, inline or on a thread.

ONNX Runtime releases the GIL while it computes, so N instances on N threads really run at once.
A tiny model (the digits MLP runs in ~15 us) costs less to run in place on the event loop than the
~50 us hop to a worker thread, so the pool measures its runtime and runs calls whose moving-average
time stays under `inline_below_s` inline; anything larger must not block the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter

from inferlab.errors import InferlabError, RuntimeFailure
from inferlab.runtimes.base import Runtime
from inferlab.tensors import Array

_WARMUP_CALLS = 8

Outputs = dict[str, Array]
Done = Callable[[Outputs | InferlabError, float, float], None]
"""Called on the event loop when a batch finishes: (outputs or the error, infer_start, infer_end)."""


class InstancePool:
    """Runs batches on `len(runtimes)` instances, at most one batch per instance at a time.

    Example::

        pool = InstancePool("digits", [rt1, rt2])
        if pool.free:
            pool.submit({"input": x}, None, done)   # done(outputs, t_start, t_end) on the loop
    """

    def __init__(self, what: str, runtimes: list[Runtime], inline_below_s: float = 0.0005) -> None:
        self._what = what
        self._idle = list(runtimes)
        self._all = tuple(runtimes)
        self._executor = ThreadPoolExecutor(max_workers=len(runtimes), thread_name_prefix="infer")
        self._inline_below_s = inline_below_s
        self._calls = 0
        self._avg_s = 0.0

    @property
    def free(self) -> int:
        return len(self._idle)

    @property
    def inline(self) -> bool:
        """True once the model is known to be tiny enough to run on the event loop."""
        return self._calls >= _WARMUP_CALLS and self._avg_s < self._inline_below_s

    def run_inline(self, inputs: dict[str, Array], outputs: list[str] | None) -> tuple[Outputs, float, float]:
        """Run now on a free instance, on this thread; the caller checked `free` and `inline`."""
        runtime = self._idle.pop()
        try:
            return self._infer(runtime, inputs, outputs)
        finally:
            self._idle.append(runtime)

    def submit(self, inputs: dict[str, Array], outputs: list[str] | None, done: Done) -> None:
        """Start a batch on a free instance; `done` is called on the event loop when it ends."""
        runtime = self._idle.pop()
        if self.inline:
            try:
                result, start, end = self._infer(runtime, inputs, outputs)
            except InferlabError as exc:
                self._idle.append(runtime)
                done(exc, 0.0, 0.0)
                return
            self._idle.append(runtime)
            done(result, start, end)
            return
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._infer, runtime, inputs, outputs)

        def finished(f: asyncio.Future[tuple[Outputs, float, float]]) -> None:
            self._idle.append(runtime)
            if f.cancelled():
                done(RuntimeFailure(f"{self._what}: the inference was cancelled"), 0.0, 0.0)
                return
            exc = f.exception()
            if exc is None:
                done(*f.result())
            elif isinstance(exc, InferlabError):
                done(exc, 0.0, 0.0)
            else:  # _infer wraps everything it can; this is a bug, so keep its traceback
                done(RuntimeFailure(f"{self._what}: {type(exc).__name__}: {exc}"), 0.0, 0.0)

        future.add_done_callback(finished)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        for runtime in self._all:
            runtime.close()

    def _infer(
        self, runtime: Runtime, inputs: dict[str, Array], outputs: list[str] | None
    ) -> tuple[Outputs, float, float]:
        start = perf_counter()
        try:
            result = runtime.infer(inputs, outputs)
        except InferlabError:
            raise
        except Exception as exc:
            raise RuntimeFailure(f"{self._what} failed: {exc}") from exc
        end = perf_counter()
        self._calls += 1
        self._avg_s += (end - start - self._avg_s) * (0.1 if self._calls > _WARMUP_CALLS else 1 / self._calls)
        return result, start, end
