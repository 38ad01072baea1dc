"""Drive a plan in one process: open loop timed from the intended send time (no coordinated omission), closed loop.

Open loop: a precise timer releases each arrival at its intended time onto an idle connection, opening a
new one (up to `concurrency`) when none is idle, otherwise queueing it; its latency counts from the
schedule either way, so a stalled server shows up in full. Closed loop: `concurrency` users, each sending
its next request when its previous one finished (plus think time or hey's per-user pacing).
Completion callbacks drive everything; there is no coroutine per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator
from time import perf_counter

import numpy as np

from inferlab.loadgen.arrivals import intended_offsets
from inferlab.loadgen.grpcv2 import GrpcSlot
from inferlab.loadgen.http1 import Connection, Exchange, Link
from inferlab.loadgen.plan import LoadPlan
from inferlab.loadgen.preciseclock import PreciseTimer
from inferlab.loadgen.recorder import CHUNK, Recorder, Window, WorkerResult

_WAKE_EARLY_S = 250e-6
_SPIN_MIN_GAP_S = 2.5e-3  # spinning <= 0.25 ms per >= 2.5 ms gap costs at most a tenth of a core

#: Called once per interval with the process number and the interval it just recorded.
Progress = Callable[[int, Window], None]


def share(total: int, process: int, processes: int) -> int:
    """This process's part of `total` when split as evenly as possible (the parts add up exactly)."""
    return total // processes + (1 if process < total % processes else 0)


class Driver:
    """Runs one process's share of a plan on the running event loop (build it inside the loop, ahead of the
    start time); `run()` returns its WorkerResult."""

    def __init__(self, plan: LoadPlan, process: int, start: float, progress: Progress | None = None) -> None:
        self.plan = plan
        self.process = process
        self.start = start
        self.progress = progress
        self.requests = plan.target.encode_requests()
        order = np.random.default_rng([plan.seed, process, 1]).permutation(len(self.requests))
        self._order = [int(i) for i in order]
        self.recorder = Recorder(start, start + plan.warmup_s, process, plan.record_requests)
        self.conns: set[Link] = set()
        self.idle: list[Link] = []
        self.backlog: deque[Exchange] = deque()
        self.opening = 0
        self.in_flight = 0
        self.index = 0
        self.stopping = False
        self.deadline = start + plan.duration_s if plan.duration_s is not None else math.inf
        self.tickets = share(plan.requests, process, plan.processes) if plan.requests is not None else None
        self.users = share(plan.concurrency, process, plan.processes)
        self.users_left = self.users if plan.mode == "closed" else 0
        self._done = asyncio.Event()
        self._ssl = _insecure_context() if plan.target.tls else None
        self._rng = np.random.default_rng([plan.seed, process, 2])
        self._think = plan.think.sampler(self._rng) if plan.think else None
        self._arrivals: Iterator[float] = self._iter_arrivals()
        self._next_arrival = next(self._arrivals, math.inf)  # generated ahead: the first chunk takes a while
        self._last_due = -math.inf
        self._timer = PreciseTimer(asyncio.get_running_loop(), self._on_timer) if plan.mode == "open" else None
        self._scheduling_done = False
        self._head = plan.target.method == "HEAD"

    # ---- lifecycle -------------------------------------------------------------------------------------

    async def run(self) -> WorkerResult:
        loop = asyncio.get_running_loop()
        cpu0, wall0 = time.thread_time(), perf_counter()  # this thread only: a test server may share the process
        ticks = loop.create_task(self._ticks())
        if self.plan.mode == "open":
            self._arm()
        else:
            for user in range(self.users):
                at = self.start + (self.plan.ramp_up_s * user / self.users if self.users else 0.0)
                loop.call_at(loop.time() + max(0.0, at - perf_counter()), self._start_user)
        await self._done.wait()
        ticks.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticks
        if self._timer is not None:
            self._timer.close()
        links = list(self.conns)
        for link in links:
            link.close()
        for link in links:
            await link.wait_closed()
        not_sent = len(self.backlog)
        self.recorder.flush(perf_counter(), len(self.conns))
        return self.recorder.finish(not_sent, time.thread_time() - cpu0, perf_counter() - wall0)

    async def _ticks(self) -> None:
        """Once per interval: flush the recorder, report progress, enforce timeouts and the deadline."""
        interval = self.plan.interval_s
        timeout = self.plan.timeout_s
        k = 1
        sweep = min(0.05, timeout / 4) if timeout else interval
        next_flush = self.start + interval
        while True:
            now = perf_counter()
            if now >= self.deadline and not self.stopping:
                self._stop_scheduling()
            if timeout:
                for conn in list(self.conns):
                    ex = conn.exchange
                    if ex is not None and ex.sent and not ex.done and now - ex.sent > timeout:
                        conn.abort("timeout", f"no complete response within {timeout:g} s")
            if now >= next_flush:
                self.recorder.flush(now, len(self.conns))
                if self.progress is not None:
                    self.progress(self.process, self.recorder.result.windows[-1])
                k += 1
                next_flush = self.start + k * interval
            wake = min(next_flush, now + sweep, self.deadline if not self.stopping else math.inf)
            await asyncio.sleep(max(0.0, wake - perf_counter()))

    def _stop_scheduling(self) -> None:
        self.stopping = True
        self._scheduling_done = True
        if self._timer is not None:
            self._timer.cancel()
        self._check_done()

    def _check_done(self) -> None:
        if self.plan.mode == "closed":
            if self.users_left == 0:
                self._done.set()
        elif self._scheduling_done and self.in_flight == 0 and self.opening == 0 and (
                not self.backlog or self.stopping):
            self._done.set()

    # ---- open loop -------------------------------------------------------------------------------------

    def _iter_arrivals(self) -> Iterator[float]:
        plan = self.plan
        if plan.arrivals is None:
            return
        for chunk in intended_offsets(plan.arrivals, seed=plan.seed, count=plan.requests, duration_s=plan.duration_s,
                                      process=self.process, processes=plan.processes):
            yield from (chunk + self.start).tolist()

    def _arm(self) -> None:
        if self._next_arrival == math.inf:
            self._scheduling_done = True
            self._check_done()
        elif self._timer is not None:
            # A timer wake-up runs 0.1-0.2 ms late on a VM; at low rates wake a little early and spin to the exact time.
            gap = self._next_arrival - self._last_due
            self._timer.set(self._next_arrival - (_WAKE_EARLY_S if gap >= _SPIN_MIN_GAP_S else 0.0))

    def _on_timer(self) -> None:
        """Release every arrival that is due; the timer is re-armed for the next one."""
        if self.stopping:
            return
        due = self._next_arrival
        now = perf_counter()
        if 0.0 < due - now <= _WAKE_EARLY_S:
            while now < due:
                now = perf_counter()
        arrivals = self._arrivals
        while due <= now:
            self._last_due = due
            self._dispatch(Exchange(self.index, due))
            self.index += 1
            due = next(arrivals, math.inf)
        self._next_arrival = due
        self._arm()

    def _dispatch(self, ex: Exchange) -> None:
        self.in_flight += 1
        if self.idle:
            self._send(self.idle.pop(), ex)
        elif len(self.conns) + self.opening < self.users:
            self._open(ex)
        else:
            self.in_flight -= 1
            self.backlog.append(ex)

    # ---- closed loop -----------------------------------------------------------------------------------

    def _take_ticket(self, at: float) -> bool:
        """May a user send a request due at `at`? Nothing is scheduled at or after the deadline."""
        if self.stopping or at >= self.deadline:
            return False
        if self.tickets is None:
            return True
        if self.tickets <= 0:
            return False
        self.tickets -= 1
        return True

    def _start_user(self) -> None:
        self._user_next(None, 0.0)

    def _user_next(self, conn: Link | None, last_intended: float) -> None:
        """A closed-loop user is free: pause (think time / pacing), then send on its connection."""
        now = perf_counter()
        at = now
        if self._think is not None:
            at = now + self._think()
        if self.plan.per_user_rate:
            at = max(at, last_intended + 1.0 / self.plan.per_user_rate) if last_intended else at
        if not self._take_ticket(at):
            if conn is not None:
                conn.close()
            self.users_left -= 1
            self._check_done()
            return
        ex = Exchange(self.index, at)
        self.index += 1
        self.in_flight += 1
        if at > now:
            loop = asyncio.get_running_loop()
            loop.call_at(loop.time() + (at - now), self._user_send, conn, ex)
        else:
            self._user_send(conn, ex)

    def _user_send(self, conn: Link | None, ex: Exchange) -> None:
        if conn is not None and conn.open:
            self._send(conn, ex)
        else:
            self._open(ex)

    # ---- connections -----------------------------------------------------------------------------------

    def _send(self, conn: Link, ex: Exchange) -> None:
        conn.send(ex, self.requests[self._order[ex.index % len(self._order)]])

    def _open(self, ex: Exchange) -> None:
        self.opening += 1
        ex.connect_start = perf_counter()
        asyncio.get_running_loop().create_task(self._connect(ex))

    async def _connect(self, ex: Exchange) -> None:
        loop = asyncio.get_running_loop()
        target = self.plan.target
        timeout = self.plan.timeout_s or None
        conn: Link
        try:
            if target.grpc:
                conn = await GrpcSlot.connect(f"{target.host}:{target.port}", target.grpc_method, self._finished,
                                              self._on_lost, self.plan.timeout_s)
            else:
                coro = loop.create_connection(lambda: Connection(self._finished, self._on_lost, self._head),
                                              target.host, target.port, ssl=self._ssl)
                _, conn = await asyncio.wait_for(coro, timeout)
        except (OSError, TimeoutError) as exc:
            self.opening -= 1
            kind = "timeout" if isinstance(exc, TimeoutError) else "connect"
            ex.fail(kind, _describe(exc, target.host, target.port))
            ex.connect_start = 0.0
            self._finished(None, ex)
            return
        self.opening -= 1
        ex.connect_end = perf_counter()
        self.conns.add(conn)
        self._send(conn, ex)

    def _on_lost(self, conn: Link, ex: Exchange | None) -> None:
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if ex is not None:
            self._finished(None, ex)

    def _finished(self, conn: Link | None, ex: Exchange) -> None:
        """Hand the next piece of work out first, then record a full chunk (which holds the loop a while)."""
        recorder = self.recorder
        recorder.pending.append(ex)
        self.in_flight -= 1
        self._after(conn, ex)
        if len(recorder.pending) >= CHUNK:
            recorder.record()

    def _after(self, conn: Link | None, ex: Exchange) -> None:
        """A request finished (or failed): give its user or its connection the next piece of work."""
        if self.plan.mode == "closed":
            self._user_next(conn if conn is not None and conn.open else None, ex.intended)
            return
        if self.backlog and not self.stopping:
            nxt = self.backlog.popleft()
            nxt.ready = perf_counter()
            self.in_flight += 1
            if conn is not None and conn.open:
                self._send(conn, nxt)
            else:
                self._open(nxt)
        elif conn is not None and conn.open:
            self.idle.append(conn)
        self._check_done()


def _describe(exc: BaseException, host: str, port: int) -> str:
    if isinstance(exc, TimeoutError):
        return f"connect to {host}:{port} timed out"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {host}:{port}"
    return f"cannot connect to {host}:{port}: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)


def _insecure_context() -> ssl.SSLContext:
    """Like hey: load tests care about the server's speed, not its certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
