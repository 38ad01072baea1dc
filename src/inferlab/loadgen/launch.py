"""Run a LoadPlan on one or more processes sharing one start time, and merge what they measured.

One process runs in the caller's thread (no fork, no pickling); more are spawned fresh (never forked,
so a caller with threads, e.g. a test server, is safe) and start together at a common
CLOCK_MONOTONIC instant, so their schedules and intervals line up exactly.

Example:
    >>> result = run(LoadPlan(Target("http://127.0.0.1:8000/"), requests=1000, concurrency=64))
    >>> print(result.latency.percentiles_ms["99"])
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import multiprocessing
import queue
import time
from collections.abc import Callable
from time import perf_counter

from inferlab.loadgen.aggregate import merge
from inferlab.loadgen.plan import LoadPlan
from inferlab.loadgen.recorder import Window, WorkerResult
from inferlab.loadgen.result import RunResult
from inferlab.loadgen.runner import Driver

#: Receives each process's intervals as they close: (process, window).
ProgressSink = Callable[[int, Window], None]

_START_DELAY_S = 0.05
_SPAWN_DELAY_S = 1.5  # a fresh interpreter needs this long to import numpy and the generator


def run(plan: LoadPlan, progress: ProgressSink | None = None) -> RunResult:
    """Execute the plan and return its merged, self-checked result."""
    loop_name = _loop_name()
    if plan.processes == 1:
        start = perf_counter() + _START_DELAY_S
        started_at_unix = time.time() + _START_DELAY_S
        worker = run_worker(plan, 0, start, progress)
        return merge(plan, [worker], started_at_unix, loop_name)
    ctx = multiprocessing.get_context("spawn")
    updates: multiprocessing.Queue[tuple[int, Window]] = ctx.Queue()
    results: multiprocessing.Queue[WorkerResult | BaseException] = ctx.Queue()
    delay = _SPAWN_DELAY_S + 0.1 * plan.processes
    start = perf_counter() + delay
    started_at_unix = time.time() + delay
    procs = [ctx.Process(target=_child, args=(plan, i, start, updates, results), daemon=True)
             for i in range(plan.processes)]
    for proc in procs:
        proc.start()
    workers: list[WorkerResult] = []
    try:
        while len(workers) < plan.processes:
            _drain(updates, progress)
            try:
                got = results.get(timeout=0.1)
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and results.empty():
                    raise RuntimeError("a load generator process died without a result") from None
                continue
            if isinstance(got, BaseException):
                raise got
            workers.append(got)
        _drain(updates, progress)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    return merge(plan, sorted(workers, key=lambda w: w.process), started_at_unix, loop_name)


def run_worker(plan: LoadPlan, process: int, start: float, progress: ProgressSink | None = None) -> WorkerResult:
    """One process's share of the plan, on a fresh event loop (uvloop when installed)."""
    return _new_runner().run(_drive(plan, process, start, progress))


async def _drive(plan: LoadPlan, process: int, start: float, progress: ProgressSink | None) -> WorkerResult:
    driver = Driver(plan, process, start, progress)  # built first: its set-up must not delay the first sends
    delay = start - perf_counter() - 0.002
    if delay > 0:
        await asyncio.sleep(delay)
    while perf_counter() < start:  # the loop's timers are millisecond-coarse: spin the last stretch, once
        await asyncio.sleep(0)
    return await driver.run()


def _child(plan: LoadPlan, process: int, start: float, updates: multiprocessing.Queue[tuple[int, Window]],
           results: multiprocessing.Queue[WorkerResult | BaseException]) -> None:
    try:
        results.put(run_worker(plan, process, start, lambda p, w: updates.put((p, w))))
    except Exception as exc:  # sent to the parent, which raises it: a child must not fail silently
        results.put(RuntimeError(f"load generator process {process} failed: {exc!r}"))


def _drain(updates: multiprocessing.Queue[tuple[int, Window]], progress: ProgressSink | None) -> None:
    while True:
        try:
            process, window = updates.get_nowait()
        except queue.Empty:
            return
        if progress is not None:
            progress(process, window)


def _new_runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def _loop_name() -> str:
    try:
        return f"uvloop {importlib.metadata.version('uvloop')}"
    except importlib.metadata.PackageNotFoundError:
        return "asyncio"
