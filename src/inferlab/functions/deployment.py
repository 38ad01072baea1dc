"""One deployed function: its instances, the queue of requests waiting for a free one, scaling and stats.

A request takes a slot on the least-loaded ready instance with fewer than `concurrency` in flight,
or queues. Queued requests are handed slots FIFO as instances finish or come up. An arrival that
queues reconciles at once, so a request at zero instances starts a cold start immediately instead of
waiting for the next autoscaler tick. With W server worker processes each runs its own Deployment
of every function with ceil(min_instances / W) to ceil(max_instances / W) instances (like models'
`instances`), and scales on the requests that worker receives.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing.context
import os
import shutil
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from inferlab.errors import ModelNotFound, Overloaded
from inferlab.functions.autoscaler import Decision, IdleHistogram, ScaleInputs, ScalePolicy
from inferlab.functions.handler import Request, Response
from inferlab.functions.instance import Instance, InstanceFailed, ModelService
from inferlab.functions.spec import FunctionSpec
from inferlab.functions.stats import FunctionCollectors, FunctionStats

log = logging.getLogger("inferlab.functions")
_RETRY_START_AFTER_S = 1.0
_LOG_LINES = 2000


class FunctionNotFound(ModelNotFound):
    """No function of that name is deployed."""


@dataclass(slots=True)
class Invocation:
    """A finished call and where its time went (seconds); `cold_start_s` is None for a warm call."""

    response: Response
    instance: str
    queue_s: float
    cold_start_s: float | None
    handler_s: float
    model_s: float
    marks: dict[str, float]


class Deployment:
    """Owns one function's instances; `invoke` is the data path, `reconcile` the scaling step."""

    def __init__(self, spec: FunctionSpec, folder: Path, models: ModelService,
                 processes: multiprocessing.context.BaseContext, tick_s: float,
                 collectors: FunctionCollectors | None = None, share: int = 1) -> None:
        self.spec = spec
        self.folder = folder
        self.instances: list[Instance] = []
        self.logs: deque[dict[str, Any]] = deque(maxlen=_LOG_LINES)
        self.stats = FunctionStats(spec.name, collectors)
        self._models = models
        self._processes = processes
        self._tick_s = tick_s
        self.share = share
        self.min_instances = per_worker(spec.min_instances, share)
        self.max_instances = per_worker(spec.max_instances, share)
        self._policy = ScalePolicy(self.min_instances, self.max_instances, spec.concurrency, spec.idle_timeout_s)
        self._histogram = IdleHistogram()
        self._waiters: deque[asyncio.Future[Instance]] = deque()
        self._inflight = 0
        self._idle_since = perf_counter()  # deploy time until the first call ends
        self._called = False  # the deploy -> first call gap is not an idle gap between calls
        self._peaks: deque[tuple[float, int]] = deque()
        self._peak = 0
        self._floor = (0, 0.0)
        self._last_failure: tuple[float, str] | None = None
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._removed = False
        self.error: str | None = None  # the last failed start (or failed check at restore), until one succeeds

    # --- data path -------------------------------------------------------------------------------
    async def invoke(self, request: Request) -> Invocation:
        arrived = perf_counter()
        if self._demand() == 0 and self._called:
            self._histogram.record(arrived - self._idle_since)
        self._called = True
        instance = self._free_instance()
        if instance is not None:
            self._take(instance)
        else:
            instance = await self._wait_for_instance()
        dispatched = perf_counter()
        cold_s = instance.ready_at - arrived if instance.ready_at > arrived else None
        try:
            result = await instance.invoke(request)
        except BaseException:
            self.stats.invoked(ok=False, cold=cold_s is not None)
            raise
        finally:
            instance.inflight -= 1
            self._inflight -= 1
            self._released()
        self.stats.invoked(ok=True, cold=cold_s is not None)
        return Invocation(
            response=result.response, instance=instance.id, queue_s=dispatched - arrived - (cold_s or 0.0),
            cold_start_s=cold_s, handler_s=result.handler_s, model_s=result.model_s, marks=result.marks,
        )

    def _free_instance(self) -> Instance | None:
        best: Instance | None = None
        for instance in self.instances:
            if instance.state == "ready" and instance.inflight < self.spec.concurrency and (
                best is None or instance.inflight < best.inflight
            ):
                best = instance
        return best

    def _take(self, instance: Instance) -> None:
        instance.inflight += 1
        self._inflight += 1
        self._peak = max(self._peak, self._demand())

    async def _wait_for_instance(self) -> Instance:
        if self._last_failure is not None and self._backing_off() and not self._alive():
            raise InstanceFailed(self._last_failure[1])
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Instance] = loop.create_future()
        self._waiters.append(waiter)
        self._peak = max(self._peak, self._demand())
        timer = loop.call_later(self.spec.start_timeout_s, _expire_waiter, waiter, self.spec)
        self.reconcile(perf_counter())
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                instance = waiter.result()  # a slot was handed over just as we gave up: give it back
                instance.inflight -= 1
                self._inflight -= 1
                self._released()
            raise
        finally:
            timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _released(self) -> None:
        self._dispatch()
        if self._demand() == 0:
            self._idle_since = perf_counter()

    def _dispatch(self) -> None:
        while self._waiters:
            instance = self._free_instance()
            if instance is None:
                return
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take(instance)
                waiter.set_result(instance)

    def _backing_off(self) -> bool:
        """Just after a failed start: no new starts (a broken setup() must not fork in a loop)."""
        return self._last_failure is not None and perf_counter() - self._last_failure[0] < _RETRY_START_AFTER_S

    def _demand(self) -> int:
        return self._inflight + len(self._waiters)

    def _alive(self) -> list[Instance]:
        return [i for i in self.instances if i.state in ("starting", "ready")]

    # --- scaling ---------------------------------------------------------------------------------
    def reconcile(self, now: float) -> None:
        """Bring the instance count to what the policy wants now."""
        if self._removed:
            return
        demand = self._demand()
        self._peaks.append((now, self._peak))
        self._peak = demand
        while self._peaks and self._peaks[0][0] < now - self.spec.scale_down_delay_s:
            self._peaks.popleft()
        peak = max([demand, *(p for _, p in self._peaks)])
        floor, until = self._floor
        alive = self._alive()
        inputs = ScaleInputs(
            current=len(alive), demand=peak, idle_s=0.0 if demand else now - self._idle_since,
            floor=floor if now < until else 0,
        )
        window = None
        if self.spec.keep_warm == "histogram":
            # wake early enough for a tick to notice and an instance to start before the next arrival
            window = self._histogram.window(self._tick_s + self.stats.mean_cold_start_s())
        self._apply(self._policy.decide(inputs, window), alive)

    def scale(self, replicas: int) -> None:
        """Manual scale (OpenFaaS scale-function): held until the idle timeout, then the policy resumes."""
        hold_s = max(self.spec.idle_timeout_s, self.spec.scale_down_delay_s)
        self._floor = (replicas, perf_counter() + hold_s)
        if replicas == 0:
            self._apply(Decision(self.min_instances, "manual scale"), self._alive())
        else:
            self.reconcile(perf_counter())

    def _apply(self, decision: Decision, alive: list[Instance]) -> None:
        current = len(alive)
        if decision.target > current and not self._backing_off():
            for _ in range(decision.target - current):
                self._start_instance()
        elif decision.target < current:
            idle = [i for i in alive if i.state == "ready" and i.inflight == 0]
            for instance in idle[: current - decision.target]:
                instance.stop()
        after = len(self._alive())
        if after != current:
            self.stats.scaled(current, after, decision.reason)
            self._record_instances()

    def _start_instance(self) -> None:
        instance = Instance(
            id=f"{self.spec.name}-{next(self._ids)}", spec=self.spec, folder=self.folder, models=self._models,
            processes=self._processes, on_log=self._log, on_exit=self._exited,
        )
        self.instances.append(instance)
        task = asyncio.get_running_loop().create_task(self._run_start(instance))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_start(self, instance: Instance) -> None:
        try:
            await instance.start()
        except Exception as exc:
            self._start_failed(instance, str(exc))
            return
        if self._removed:
            instance.kill()
            return
        self.stats.started(instance.ready_at - instance.started_at)
        self.error = None
        self._record_instances()
        self._dispatch()

    def _start_failed(self, instance: Instance, message: str) -> None:
        self._log(instance.id, message)
        if instance in self.instances:
            self.instances.remove(instance)
        self.stats.start_failures += 1
        self.failed(message)
        if not self._alive():
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(InstanceFailed(message))
        self._record_instances()

    def failed(self, message: str) -> None:
        """A start failed: report it in status and back off before the next start."""
        self.error = message
        self._last_failure = (perf_counter(), message)

    def _exited(self, instance: Instance) -> None:
        if instance in self.instances:
            self.instances.remove(instance)
        self._record_instances()
        if self._waiters:
            self.reconcile(perf_counter())

    def _record_instances(self) -> None:
        self.stats.ready_instances(sum(1 for i in self.instances if i.state == "ready"))

    def _log(self, instance_id: str, text: str) -> None:
        self.logs.append({"timestamp": round(time.time(), 3), "instance": instance_id, "text": text})

    # --- management ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """One row of GET /system/functions, in the OpenFaaS gateway's field names plus ours.

        Instance counts, in-flight requests and metrics are this worker process's (`worker`).
        """
        ready = sum(1 for i in self.instances if i.state == "ready")
        return {
            "name": self.spec.name,
            "replicas": len(self._alive()),
            "availableReplicas": ready,
            "invocationCount": self.stats.invocations,
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.stats.created_at)),
            "envVars": dict(self.spec.environment),
            "inFlight": self._inflight,
            "queued": len(self._waiters),
            "config": self.spec.to_dict(),
            "metrics": self.stats.as_dict(),
            "error": self.error,
            "worker": {"pid": os.getpid(), "workers": self.share, "min_instances": self.min_instances,
                       "max_instances": self.max_instances},
        }

    def remove(self) -> None:
        """Kill every instance (in-flight calls fail) and delete the folder; the deployment is then inert."""
        self._removed = True
        self.stats.collectors = None  # instances exiting later must not bring its forgotten series back
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(FunctionNotFound(f"function '{self.spec.name}' was removed"))
        self._waiters.clear()
        for instance in list(self.instances):
            instance.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def close(self) -> None:
        """Synchronous teardown for server shutdown."""
        self._removed = True
        self.stats.collectors = None
        for instance in self.instances:
            instance.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def per_worker(instances: int, workers: int) -> int:
    """One worker's part of a function-wide instance count: rounded up, as for models' `instances`."""
    return -(-instances // workers)


def _expire_waiter(waiter: asyncio.Future[Instance], spec: FunctionSpec) -> None:
    if not waiter.done():
        waiter.set_exception(Overloaded(
            f"no instance of function '{spec.name}' was free within start_timeout_s={spec.start_timeout_s:g}; "
            "raise max_instances or concurrency, or retry later"
        ))
