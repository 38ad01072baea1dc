"""Repository operations over HTTP: Triton's index/load/unload, plus multipart upload and delete."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inferlab.errors import InvalidInput
from inferlab.server.web import HttpContext, json_object, json_response

_UPLOAD_PARTS = ("model", "labels", "config", "version")


def routes(ctx: HttpContext) -> list[Route]:
    service = ctx.service

    async def index(request: Request) -> Response:
        body = await ctx.body(request)
        options = json_object(body) if body.strip() else {}
        return json_response(service.repository_index(bool(options.get("ready", False))))

    async def load(request: Request) -> Response:
        """Triton's load; `{"parameters": {"config": "<JSON of a config.yaml mapping>"}}` replaces the config."""
        ctx.authorize(request)
        body = await ctx.body(request)
        config = _load_config(json_object(body)) if body.strip() else None
        await run_in_threadpool(service.load, request.path_params["model"], config)
        return json_response({})

    async def unload(request: Request) -> Response:
        ctx.authorize(request)
        await ctx.body(request)
        await run_in_threadpool(service.unload, request.path_params["model"])
        return json_response({})

    async def upload(request: Request) -> Response:
        """multipart/form-data: `model` file (required), `labels` and `config` files, `version` field."""
        ctx.authorize(request)
        parts = await _multipart(ctx, request)
        name = request.path_params["model"]
        if "model" not in parts:
            raise InvalidInput("upload needs a multipart part named 'model' holding the model file")
        if not parts["model"]:
            raise InvalidInput("the uploaded model file is empty")
        version = parts.get("version")
        stored = await run_in_threadpool(
            service.upload, name, parts["model"], parts.get("labels"), parts.get("config"),
            None if version is None else version.decode(errors="replace").strip(),
        )
        return json_response({"name": name, "version": str(stored)}, 201)

    async def delete(request: Request) -> Response:
        ctx.authorize(request)
        await run_in_threadpool(service.delete, request.path_params["model"], request.path_params.get("version"))
        return json_response({})

    # {model:path} lets a name with '/' reach check_model_name and get a 400 that says why.
    return [
        Route("/v2/repository/index", index, methods=["POST"]),
        Route("/v2/repository/models/{model:path}/load", load, methods=["POST"]),
        Route("/v2/repository/models/{model:path}/unload", unload, methods=["POST"]),
        Route("/v2/repository/models/{model:path}/upload", upload, methods=["POST"]),
        Route("/v2/repository/models/{model}/versions/{version}", delete, methods=["DELETE"]),
        Route("/v2/repository/models/{model:path}", delete, methods=["DELETE"]),
    ]


async def _multipart(ctx: HttpContext, request: Request) -> dict[str, bytes]:
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise InvalidInput("an upload needs a Content-Length header")
    await ctx.form_body(request)  # enforces the size limit before anything is parsed
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("an upload must be multipart/form-data with a 'model' file part")
    parts: dict[str, bytes] = {}
    async with request.form(max_files=4, max_fields=8, max_part_size=ctx.max_body_bytes) as form:
        for key, value in form.multi_items():
            if key not in _UPLOAD_PARTS:
                raise InvalidInput(f"unknown upload part '{key}'; expected some of {list(_UPLOAD_PARTS)}")
            parts[key] = await value.read() if isinstance(value, UploadFile) else value.encode()
    return parts


def _load_config(doc: dict[str, Any]) -> str | None:
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput("load: 'parameters' must be a JSON object")
    config = parameters.get("config")
    if config is not None and not isinstance(config, str):
        raise InvalidInput("load: parameter 'config' must be a string holding the JSON of the model's config")
    return config
