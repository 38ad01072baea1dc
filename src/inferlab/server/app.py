"""Composition root: config -> store, registry, service, HTTP app; and the process that serves them."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from inferlab.config import ServerConfig
from inferlab.repository.registry import ModelRegistry
from inferlab.repository.store import ModelStore
from inferlab.runtimes import RuntimeLoader
from inferlab.server.http import build_app
from inferlab.server.metrics import Metrics
from inferlab.server.service import InferenceService
from inferlab.server.sync import RepositorySync
from inferlab.server.timing import AccessLog, access_logger
from inferlab.server.web import HttpContext
from inferlab.server.workers import supervise


@dataclass(slots=True)
class Server:
    """Everything one serving process owns; `close()` releases the models."""

    config: ServerConfig
    service: InferenceService
    http_app: Starlette

    def close(self) -> None:
        self.service.registry.close()
        self.service.metrics.close()


def build(
    config: ServerConfig, workers: int = 1, runtimes: dict[str, RuntimeLoader] | None = None,
    metrics_dir: Path | None = None,
) -> Server:
    """Open the repository, load its models, and build the HTTP app around the service.

    `workers` > 1: this is one of that many worker processes (server/workers.py): each runs its share
    of every model's instances, and repository changes are shared through server/sync.py.
    `runtimes` replaces the platform table (tests add in-memory runtimes this way); `metrics_dir` is
    where the workers share their metrics.
    """
    metrics = Metrics(metrics_dir)
    registry = ModelRegistry(
        ModelStore(config.model_repository), runtimes, observer=metrics.model, instance_share=workers
    )
    registry.load_all()
    sync = RepositorySync(registry) if workers > 1 else None
    if sync:
        sync.start()
    service = InferenceService(registry, metrics, AccessLog(config.access_log), sync)
    ctx = HttpContext(service, config.max_body_bytes, config.auth_token, config.protect_inference)
    return Server(config, service, build_app(ctx))


def uvicorn_config(server: Server) -> uvicorn.Config:
    c = server.config
    return uvicorn.Config(
        server.http_app,
        host=c.host,
        port=c.http_port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # server/timing.py writes the access log, as JSON lines
        log_level="warning",
        ssl_certfile=str(c.tls_cert) if c.tls_cert else None,
        ssl_keyfile=str(c.tls_key) if c.tls_key else None,
        timeout_keep_alive=30,
    )


def run(config: ServerConfig, workers: int = 1) -> None:
    """Serve until interrupted: in this process, or in `workers` processes sharing the port."""
    configure_logging()
    if workers > 1:
        code = supervise(config, workers, serve_worker)
        if code:
            raise SystemExit(code)
        return
    server = build(config)
    log = logging.getLogger("inferlab.server")
    scheme = "https" if config.tls_cert else "http"
    ready = [row["name"] for row in server.service.repository_index(ready_only=True)]
    log.info("serving %s on %s://%s:%d", sorted(set(ready)) or "no models", scheme, config.host, config.http_port)
    try:
        uvicorn.Server(uvicorn_config(server)).run()
    finally:
        server.close()


def serve_worker(config: ServerConfig, workers: int, sock: socket.socket, metrics_dir: Path) -> None:
    """One of `workers` processes (server/workers.py): a whole server accepting on the shared socket."""
    configure_logging()
    server = build(config, workers, metrics_dir=metrics_dir)
    try:
        uvicorn.Server(uvicorn_config(server)).run(sockets=[sock])
    finally:
        server.close()


def configure_logging() -> None:
    """Plain log lines on stderr; the access log as bare JSON lines (one object per line)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_logger.addHandler(handler)
    access_logger.propagate = False


@contextmanager
def serve_in_thread(
    config: ServerConfig, runtimes: dict[str, RuntimeLoader] | None = None
) -> Iterator[tuple[Server, str]]:
    """Run a server on a background thread (port 0 picks a free port); yields it and its base URL.

    Tests and benchmarks use this to talk to a real server over loopback from the same process.
    """
    server = build(config, runtimes=runtimes)
    uv = uvicorn.Server(uvicorn_config(server))
    thread = threading.Thread(target=uv.run, name="inferlab-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    port = uv.servers[0].sockets[0].getsockname()[1]
    scheme = "https" if config.tls_cert else "http"
    try:
        yield server, f"{scheme}://{config.host}:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        server.close()
