"""Composition root: config -> store, registry, service, HTTP app; and the process that serves them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from inferlab.config import ServerConfig
from inferlab.functions.manager import FunctionManager
from inferlab.repository.registry import ModelRegistry
from inferlab.repository.store import ModelStore
from inferlab.server.http import build_app
from inferlab.server.service import InferenceService
from inferlab.server.status import http_status
from inferlab.server.web import HttpContext


@dataclass(slots=True)
class Server:
    """Everything one serving process owns; `close()` releases the models."""

    config: ServerConfig
    service: InferenceService
    http_app: Starlette
    functions: FunctionManager | None = None

    def close(self) -> None:
        if self.functions is not None:
            self.functions.close()
        self.service.registry.close()


def build(config: ServerConfig) -> Server:
    """Open the repository, load its models, and build the HTTP app around the service."""
    registry = ModelRegistry(ModelStore(config.model_repository))
    registry.load_all()
    service = InferenceService(registry)
    ctx = HttpContext(service, config.max_body_bytes, config.auth_token, config.protect_inference)
    functions = FunctionManager(service, http_status)
    return Server(config, service, build_app(ctx, functions), functions)


def uvicorn_config(server: Server) -> uvicorn.Config:
    c = server.config
    return uvicorn.Config(
        server.http_app,
        host=c.host,
        port=c.http_port,
        loop="uvloop",
        http="httptools",
        access_log=c.access_log,
        log_level="warning",
        ssl_certfile=str(c.tls_cert) if c.tls_cert else None,
        ssl_keyfile=str(c.tls_key) if c.tls_key else None,
        timeout_keep_alive=30,
    )


def run(config: ServerConfig) -> None:
    """Serve until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = build(config)
    log = logging.getLogger("inferlab.server")
    scheme = "https" if config.tls_cert else "http"
    ready = [row["name"] for row in server.service.repository_index(ready_only=True)]
    log.info("serving %s on %s://%s:%d", sorted(set(ready)) or "no models", scheme, config.host, config.http_port)
    try:
        uvicorn.Server(uvicorn_config(server)).run()
    finally:
        server.close()


@contextmanager
def serve_in_thread(config: ServerConfig) -> Iterator[tuple[Server, str]]:
    """Run a server on a background thread (port 0 picks a free port); yields it and its base URL.

    Tests and benchmarks use this to talk to a real server over loopback from the same process.
    """
    server = build(config)
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
