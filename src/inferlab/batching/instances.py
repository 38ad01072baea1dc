"""InstancePool: N loaded copies of one model; a batch runs on a free copy, inline or on its thread.

ONNX Runtime releases the GIL while it computes, so N instances on N threads really run at once.
A tiny model (the digits MLP runs in ~15 us) costs less to run in place on the event loop than the
hop to a thread, so the pool measures its runtime and runs calls whose moving-average time stays
under `inline_below_s` inline; anything larger must not block the event loop.

Each instance has its own thread, fed through a SimpleQueue and answering with one
`call_soon_threadsafe`. `loop.run_in_executor` did the same through a concurrent.futures.Future (a
Condition, its callbacks) chained to an asyncio Future: measured with mobilenet_v2 on this box, that
cost the event loop ~260 us of CPU per batch against ~100 us for the plain hand-off.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from queue import SimpleQueue
from time import perf_counter

from inferlab.errors import InferlabError, RuntimeFailure
from inferlab.runtimes.base import Runtime
from inferlab.tensors import Array

_WARMUP_CALLS = 8
_MANY_LANES_SWITCH_S = 0.0005

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
        self._lanes: dict[int, _Lane] = {}  # id(runtime) -> its thread, started on its first threaded batch
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
        lane = self._lanes.get(id(runtime))
        if lane is None:
            lane = self._lanes[id(runtime)] = _Lane(f"infer_{len(self._lanes)}", self._infer, runtime,
                                                    self._idle.append)
            if len(self._lanes) > 1:
                _share_the_gil_sooner()
        lane.submit(asyncio.get_running_loop(), inputs, outputs, done)

    def close(self) -> None:
        for lane in self._lanes.values():
            lane.stop()
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


def _share_the_gil_sooner() -> None:
    """Shorten the GIL switch interval (for the whole process, once a second instance thread starts).

    The event loop and two instance threads take turns on the GIL, and a thread that wants it waits up to
    the switch interval (5 ms by default) for one running Python. Two mobilenet_v2 instances (batch 8 /
    2 ms, 316 Poisson requests/s, two rounds) measured p99 61.8 and 59.9 ms at 0.5 ms against 86.6 and
    104.5 ms at 5 ms, and 353-372 against 352 requests/s saturated. With one instance thread it changed
    neither tail (31 against 31-40 ms at 215/s) but cost ~3 % of the saturated rate, so one thread keeps 5 ms.
    """
    sys.setswitchinterval(min(sys.getswitchinterval(), _MANY_LANES_SWITCH_S))


class _Lane:
    """One instance's thread: runs the batches it is given, one at a time, and reports each on the loop,
    where it first hands its instance back (`release`)."""

    def __init__(self, name: str, infer: Callable[[Runtime, dict[str, Array], list[str] | None],
                 tuple[Outputs, float, float]], runtime: Runtime, release: Callable[[Runtime], None]) -> None:
        self._infer = infer
        self._runtime = runtime
        self._release = release
        self._jobs: SimpleQueue[tuple[asyncio.AbstractEventLoop, dict[str, Array], list[str] | None, Done] | None]
        self._jobs = SimpleQueue()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def submit(self, loop: asyncio.AbstractEventLoop, inputs: dict[str, Array], outputs: list[str] | None,
               done: Done) -> None:
        self._jobs.put((loop, inputs, outputs, done))

    def stop(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            reported = self._serve(*job)
            job = None  # the batch's tensors are not kept alive while the thread waits for the next batch
            if not reported:
                return

    def _serve(self, loop: asyncio.AbstractEventLoop, inputs: dict[str, Array], outputs: list[str] | None,
               done: Done) -> bool:
        """Run one batch and report it on the loop; False once the loop has closed."""
        try:
            result, start, end = self._infer(self._runtime, inputs, outputs)
        except InferlabError as exc:
            reply: tuple[Outputs | InferlabError, float, float] = (exc, 0.0, 0.0)
        except Exception as exc:  # _infer wraps everything it can; this is a bug: say so, keep serving
            reply = (RuntimeFailure(f"{type(exc).__name__}: {exc}"), 0.0, 0.0)
        else:
            reply = (result, start, end)
        try:
            loop.call_soon_threadsafe(self._report, done, *reply)
        except RuntimeError:  # the loop has closed (server shutting down): nobody waits for this batch
            return False
        return True

    def _report(self, done: Done, result: Outputs | InferlabError, start: float, end: float) -> None:
        self._release(self._runtime)
        done(result, start, end)
