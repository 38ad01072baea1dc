"""DirectScheduler: run each request on the model's runtime, on the event loop or in a thread.

A tiny model (the digits MLP runs in ~15 us) costs less to run in place than the ~50 us hop to a
worker thread, while a large one must not block the event loop. The scheduler measures the runtime
and picks: calls whose moving-average time stays under `inline_below_s` run inline.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter

from inferlab.errors import InferlabError, RuntimeFailure
from inferlab.messages import InferRequest
from inferlab.runtimes.base import Runtime
from inferlab.tensors import Array

_WARMUP_CALLS = 8


class DirectScheduler:
    """Runs requests one by one on one runtime; `threads` bounds how many run at once off the loop."""

    def __init__(self, runtime: Runtime, threads: int = 1, inline_below_s: float = 0.0005) -> None:
        self._runtime = runtime
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="infer")
        self._inline_below_s = inline_below_s
        self._calls = 0
        self._avg_s = 0.0

    async def run(self, request: InferRequest) -> dict[str, Array]:
        timings = request.timings
        timings.enqueued = timings.batch_start = perf_counter()
        if self._calls >= _WARMUP_CALLS and self._avg_s < self._inline_below_s:
            return self._infer(request)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._infer, request)

    def _infer(self, request: InferRequest) -> dict[str, Array]:
        timings = request.timings
        timings.infer_start = start = perf_counter()
        try:
            outputs = self._runtime.infer(request.inputs, request.outputs)
        except InferlabError:
            raise
        except Exception as exc:
            raise RuntimeFailure(f"model '{request.model}' failed: {exc}") from exc
        timings.infer_end = end = perf_counter()
        self._calls += 1
        self._avg_s += (end - start - self._avg_s) * (0.1 if self._calls > _WARMUP_CALLS else 1 / self._calls)
        return outputs

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._runtime.close()
