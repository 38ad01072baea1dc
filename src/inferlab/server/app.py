"""Composition root: config -> store, registry, service, HTTP app; and the process that serves them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from inferlab.config import ServerConfig
from inferlab.repository.registry import ModelRegistry
from inferlab.repository.store import ModelStore
from inferlab.server.http import build_app
from inferlab.server.service import InferenceService
from inferlab.server.web import HttpContext


@dataclass(slots=True)
class Server:
    """Everything one serving process owns; `close()` releases the models."""

    config: ServerConfig
    service: InferenceService
    http_app: Starlette

    def close(self) -> None:
        self.service.registry.close()


def build(config: ServerConfig) -> Server:
    """Open the repository, load its models, and build the HTTP app around the service."""
    registry = ModelRegistry(ModelStore(config.model_repository))
    registry.load_all()
    service = InferenceService(registry)
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
