"""The Starlette application: every protocol's routes, and one place that turns errors into replies."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from inferlab.errors import InferlabError
from inferlab.functions.manager import FunctionManager
from inferlab.server import openapi
from inferlab.server.protocols import functions_http, kserve_http, repository_http, tfaas, tfserving
from inferlab.server.status import http_headers, http_status
from inferlab.server.web import HttpContext, json_response

log = logging.getLogger("inferlab.server")


def build_app(ctx: HttpContext, functions: FunctionManager) -> Starlette:
    """The HTTP app: inference routes first, since the router tries routes in order."""
    routes = [*kserve_http.routes(ctx), *repository_http.routes(ctx), *tfserving.routes(ctx), *tfaas.routes(ctx),
              *openapi.routes(), ctx.service.metrics.route(), *functions_http.routes(ctx, functions)]
    return Starlette(
        routes=routes,
        lifespan=_functions_lifespan(functions),
        exception_handlers={
            InferlabError: _inferlab_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
    )


def _functions_lifespan(functions: FunctionManager) -> Any:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await functions.start()  # the functions stored in the repository, deployed again
        yield
        await functions.aclose()

    return lifespan


async def _inferlab_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InferlabError)  # registered for this class only
    return json_response({"error": str(exc)}, http_status(exc), http_headers(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # registered for this class only
    message = exc.detail
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return json_response({"error": message}, exc.status_code, dict(exc.headers or {}))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return json_response({"error": f"internal error: {type(exc).__name__}: {exc}"}, 500)
