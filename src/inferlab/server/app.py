"""Composition root: config -> store, registry, service, HTTP app, gRPC server; and the process that serves them."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path

import uvicorn
import uvloop
from starlette.applications import Starlette

from inferlab.config import ServerConfig
from inferlab.functions.manager import FunctionManager
from inferlab.memory import reserve_arenas
from inferlab.repository.registry import ModelRegistry
from inferlab.repository.store import ModelStore
from inferlab.runtimes import RuntimeLoader
from inferlab.server.accept import Seat, shared_socket_loop
from inferlab.server.grpc import start_grpc
from inferlab.server.http import build_app
from inferlab.server.http_protocol import http_protocol
from inferlab.server.metrics import Metrics
from inferlab.server.service import InferenceService
from inferlab.server.status import http_status
from inferlab.server.sync import STATE_DIR, RepositorySync
from inferlab.server.timing import AccessLog, access_logger
from inferlab.server.web import HttpContext
from inferlab.server.workers import supervise


@dataclass(slots=True)
class Server:
    """Everything one serving process owns; `close()` releases the models."""

    config: ServerConfig
    service: InferenceService
    http_app: Starlette
    grpc_port: int | None = None  # the bound gRPC port once serving (config.grpc_port may be 0)
    functions: FunctionManager | None = None

    def close(self) -> None:
        if self.functions is not None:
            self.functions.close()
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
    sync = RepositorySync(registry) if workers > 1 else None
    if sync:
        sync.start()  # loads the models as the other workers have them
    else:
        registry.load_all()
    service = InferenceService(registry, metrics, AccessLog(config.access_log), sync)
    ctx = HttpContext(service, config.max_body_bytes, config.auth_token, config.protect_inference)
    # Every worker runs the functions stored in the repository's state folder (functions/store.py).
    functions = FunctionManager(service, http_status, registry.store.root / STATE_DIR / "functions", workers,
                                metrics.summed)
    return Server(config, service, build_app(ctx, functions), functions=functions)


def uvicorn_config(server: Server) -> uvicorn.Config:
    c = server.config
    return uvicorn.Config(
        server.http_app,
        host=c.host,
        port=c.http_port,
        loop="uvloop",
        http=http_protocol(c.max_body_bytes),  # type: ignore[arg-type]
        access_log=False,  # server/timing.py writes the access log, as JSON lines
        log_level="warning",
        ssl_certfile=str(c.tls_cert) if c.tls_cert else None,
        ssl_keyfile=str(c.tls_key) if c.tls_key else None,
        timeout_keep_alive=30,
    )


async def serve(server: Server, uv: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
    """HTTP and (when configured) gRPC on one event loop, until uvicorn is told to exit."""
    grpc_server = None
    if server.config.grpc_port is not None:
        grpc_server, server.grpc_port = await start_grpc(server.service, server.config)
        logging.getLogger("inferlab.server").info("gRPC (KServe V2) on %s:%d", server.config.host, server.grpc_port)
    try:
        await uv.serve(sockets)
    finally:
        if grpc_server is not None:
            await grpc_server.stop(grace=1.0)


def _run_loop(
    server: Server, uv: uvicorn.Server, sockets: list[socket.socket] | None = None, seat: Seat | None = None
) -> None:
    """`seat`: this worker's place among the workers sharing `sockets` (server/accept.py)."""
    reserve_arenas()
    loop_factory = uvloop.new_event_loop if seat is None else shared_socket_loop(seat)  # uvicorn_config says uvloop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(server, uv, sockets))


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
        _run_loop(server, uvicorn.Server(uvicorn_config(server)))
    finally:
        server.close()


def serve_worker(
    config: ServerConfig, workers: int, sock: socket.socket, metrics_dir: Path, ready: Event, seat: Seat
) -> None:
    """One of `workers` processes (server/workers.py): a whole server accepting on the shared socket."""
    configure_logging()
    server = build(config, workers, metrics_dir=metrics_dir)
    try:
        _run_loop(server, _ReportingServer(uvicorn_config(server), ready), [sock], seat)
    finally:
        server.close()


class _ReportingServer(uvicorn.Server):
    """Sets `ready` once it accepts: the supervisor treats a worker that dies before that as a start-up failure."""

    def __init__(self, config: uvicorn.Config, ready: Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._ready.set()


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

    Tests and benchmarks use this to talk to a real server over loopback from the same process; the
    bound gRPC port (when `config.grpc_port` is set) is `server.grpc_port`.
    """
    server = build(config, runtimes=runtimes)
    uv = uvicorn.Server(uvicorn_config(server))
    thread = threading.Thread(target=_run_loop, args=(server, uv), name="inferlab-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started or (config.grpc_port is not None and server.grpc_port is None):
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
