"""A worker for `supervise` that accepts nothing: it reports ready, then exits (a crash after start-up)."""

from __future__ import annotations

import socket
from multiprocessing.synchronize import Event
from pathlib import Path

from inferlab.config import ServerConfig
from inferlab.server.accept import Seat


def ready_then_exit(
    config: ServerConfig, workers: int, sock: socket.socket, metrics_dir: Path, ready: Event, seat: Seat
) -> None:
    ready.set()
    raise SystemExit(3)
