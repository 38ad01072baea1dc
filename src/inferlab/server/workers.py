"""The multi-process front end: N worker processes, each a whole server, accepting on one socket.

Why (measured numbers in docs/architecture.md): one uvicorn process parses HTTP and JSON on one
core; on a 2-core box the second core then only helps while a model computes. The supervisor binds
and listens once and every worker accepts from that socket, so an idle worker takes the next
connection and no process hands bytes to another (this measured a little better than one
SO_REUSEPORT socket per worker, whose hash can leave one worker with more connections). Each worker
loads its share of every model's instances (server/app.py); repository changes reach all workers
through server/sync.py.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import wait
from pathlib import Path
from types import FrameType

from inferlab.config import ServerConfig
from inferlab.server.sync import RepositorySync

_STOP_GRACE_S = 10.0

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


WorkerMain = Callable[[ServerConfig, int, socket.socket, Path], None]


def supervise(config: ServerConfig, workers: int, worker_main: WorkerMain) -> int:
    """Run `worker_main(config, workers, sock, metrics_dir)` in `workers` processes; stop all when one exits.

    The supervisor listens first (so port 0 resolves to one free port for all workers), resets the
    shared repository state, and gives the workers a fresh directory for their metrics. Returns the
    exit code for the command.
    """
    sock = listening_socket(config.host, config.http_port)
    config = replace(config, http_port=sock.getsockname()[1])
    RepositorySync.reset(config.model_repository)
    metrics_dir = Path(tempfile.mkdtemp(prefix="inferlab-metrics-"))
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=worker_main, args=(config, workers, sock, metrics_dir), name=f"inferlab-worker-{i}")
        for i in range(workers)
    ]
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for proc in procs:
            proc.start()
        log.info("%d workers serving on %s:%d", workers, config.host, config.http_port)
        while not stopping and all(p.is_alive() for p in procs):
            wait([p.sentinel for p in procs], timeout=0.5)
        if stopping:
            return 0
        for proc in procs:
            if not proc.is_alive():
                log.error("worker %s exited with code %s; stopping the server", proc.name, proc.exitcode)
        return 1
    finally:
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.join(_STOP_GRACE_S)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
