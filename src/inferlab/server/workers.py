"""The multi-process front end: N worker processes, each a whole server, accepting on one socket.

Why (measured numbers in docs/architecture.md): one uvicorn process parses HTTP and JSON on one
core; on a 2-core box the second core then only helps while a model computes. The supervisor binds
and listens once and every worker accepts from that socket (sharing connections out: server/accept.py),
so an idle worker takes the next connection and no process hands bytes to another (this measured a
little better than one SO_REUSEPORT socket per worker, whose hash can leave one worker with more
connections). Each worker loads its share of every model's instances (server/app.py); repository
changes reach all workers through server/sync.py.

A worker that exits while the server is not stopping is replaced, so one crash (a runtime's
segfault, the OOM killer) costs only the requests that worker had in flight. The listening socket
belongs to the supervisor, so connections waiting to be accepted stay queued for the other workers.
Restarting stops, and the supervisor exits with 1, when the failure looks permanent (see
RestartBudget and `supervise`).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import signal
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import wait
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from types import FrameType

from inferlab.config import ServerConfig
from inferlab.server.accept import Seat
from inferlab.server.metrics import record_restarts, retire_worker
from inferlab.server.sync import RepositorySync

_STOP_GRACE_S = 10.0
MAX_RESTARTS = 5
"""Replacements allowed within RESTART_WINDOW_S. A replacement serving the digits model answers ~1 s
after the crash here (more with larger models), so a crash that recurs on every start or every few
requests exhausts this within a minute, while a rare crash never does."""
RESTART_WINDOW_S = 60.0

log = logging.getLogger("inferlab.server")


def default_workers() -> int:
    """One worker per core this process may use, at most 4 (each worker holds a copy of the models)."""
    return max(1, min(len(os.sched_getaffinity(0)), 4))


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


WorkerMain = Callable[[ServerConfig, int, socket.socket, Path, Event, Seat], None]
"""`worker_main(config, workers, sock, metrics_dir, ready, seat)` serves until SIGTERM; it sets `ready` once it
accepts, and `seat` is its place in the table of open connections the workers share (server/accept.py)."""


@dataclass(slots=True)
class RestartBudget:
    """At most `limit` restarts within any `window_s` seconds; beyond that a crash is a crash loop."""

    limit: int = MAX_RESTARTS
    window_s: float = RESTART_WINDOW_S
    _times: deque[float] = field(default_factory=deque)

    def take(self, now: float) -> bool:
        """Spend one restart at time `now` (monotonic seconds); False when the budget is used up."""
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True


@dataclass(slots=True)
class _Worker:
    process: SpawnProcess
    ready: Event


def exit_description(exitcode: int | None) -> str:
    """'exit code 3' or 'signal SIGKILL' (multiprocessing reports a signal as a negative exit code)."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def supervise(config: ServerConfig, workers: int, worker_main: WorkerMain) -> int:
    """Run `worker_main` in `workers` processes until SIGINT/SIGTERM, replacing any that exits.

    The supervisor listens first (so port 0 resolves to one free port for all workers), resets the
    shared repository state, and gives the workers a fresh directory for their metrics; a replacement
    gets the same socket and folder and catches up with the repository through server/sync.py.
    Returns the exit code for the command: 0 after a signal; 1 when a worker died before it ever
    accepted (a start-up failure, which would recur) or when RestartBudget is used up.
    """
    sock = listening_socket(config.host, config.http_port)
    config = replace(config, http_port=sock.getsockname()[1])
    RepositorySync.reset(config.model_repository)
    metrics_dir = Path(tempfile.mkdtemp(prefix="inferlab-metrics-"))
    ctx = mp.get_context("spawn")
    connections = ctx.RawArray("q", workers)  # open connections per worker: server/accept.py

    def start(index: int) -> _Worker:
        ready = ctx.Event()
        process = ctx.Process(
            target=worker_main, args=(config, workers, sock, metrics_dir, ready, Seat(connections, index)),
            name=f"inferlab-worker-{index}"
        )
        process.start()
        return _Worker(process, ready)

    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    slots: list[_Worker] = []
    try:
        slots.extend(start(i) for i in range(workers))
        log.info("%d workers serving on %s:%d", workers, config.host, config.http_port)
        return _watch(slots, start, metrics_dir, lambda: stopping)
    finally:
        for worker in slots:
            if worker.process.is_alive() and worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGTERM)
        for worker in slots:
            worker.process.join(_STOP_GRACE_S)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _watch(
    slots: list[_Worker], start: Callable[[int], _Worker], metrics_dir: Path, stopping: Callable[[], bool],
) -> int:
    """Replace workers that exit until `stopping()`; the exit code when the server must stop instead."""
    budget = RestartBudget()
    restarts = 0
    while not stopping():
        wait([w.process.sentinel for w in slots], timeout=0.5)
        for index, worker in enumerate(slots):
            process = worker.process
            if stopping() or process.is_alive():
                continue
            how = exit_description(process.exitcode)
            if not worker.ready.is_set():
                log.error("worker %s (pid %s) exited with %s before it accepted a connection; "
                          "stopping the server", process.name, process.pid, how)
                return 1
            if not budget.take(time.monotonic()):
                log.error("worker %s (pid %s) exited with %s, and %d workers were already replaced in the "
                          "last %.0f s; stopping the server", process.name, process.pid, how, budget.limit,
                          budget.window_s)
                return 1
            log.error("worker %s (pid %s) exited unexpectedly with %s; starting a replacement",
                      process.name, process.pid, how)
            if process.pid is not None:
                retire_worker(metrics_dir, process.pid)
            process.close()
            slots[index] = start(index)
            restarts += 1
            record_restarts(metrics_dir, restarts)
    return 0
