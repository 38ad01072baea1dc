"""Functions over HTTP, shaped like the OpenFaaS gateway: invoke, async invoke, and /system management.

    POST /function/{name}[/{path}]          raw body in, the handler's body/content type out
    POST /async-function/{name}[/{path}]    202 + X-Call-Id; result POSTed to X-Callback-Url if given
    GET  /async-result/{call_id}            202 while pending, then the stored result
    GET|POST|PUT|DELETE /system/functions   list / deploy / replace / remove   (token-protected writes)
    GET  /system/function/{name}            one function's status and metrics
    POST /system/scale-function/{name}      {"replicas": n}
    GET  /system/logs?name=F&tail=N         newline-delimited JSON log lines

Any worker process answers any of these: each first catches up with changes made through the
others (FunctionManager.refresh), and async results are shared on disk.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inferlab.errors import InvalidInput
from inferlab.functions.async_calls import AsyncResult
from inferlab.functions.deployment import Invocation
from inferlab.functions.handler import Request as FunctionRequest
from inferlab.functions.manager import FunctionManager
from inferlab.server.web import HttpContext, json_object, json_response

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_HIDDEN_HEADERS = {"authorization", "host", "content-length", "x-callback-url"}
_TOKEN = re.compile(r"[^A-Za-z0-9!#$%&'*+.^_`|~-]")


def routes(ctx: HttpContext, functions: FunctionManager) -> list[Route]:
    async def invoke(request: Request) -> Response:
        ctx.authorize(request, inference=True)
        invocation = await functions.invoke(request.path_params["name"], await _function_request(ctx, request))
        return _reply(invocation)

    async def invoke_async(request: Request) -> Response:
        ctx.authorize(request, inference=True)
        call = await functions.async_calls.submit(
            request.path_params["name"], await _function_request(ctx, request), request.headers.get("x-callback-url")
        )
        return json_response({"call_id": call.call_id, "status_url": f"/async-result/{call.call_id}"}, 202,
                             {"X-Call-Id": call.call_id})

    async def async_result(request: Request) -> Response:
        ctx.authorize(request, inference=True)
        call_id = request.path_params["call_id"]
        call = await functions.async_calls.get(call_id)
        if call is None:
            return json_response({"error": f"no asynchronous call {call_id!r} (unknown, or no longer kept)"}, 404)
        return _async_reply(call)

    async def list_functions(request: Request) -> Response:
        ctx.authorize(request)
        return json_response(await functions.status())

    async def function_status(request: Request) -> Response:
        ctx.authorize(request)
        return json_response((await functions.status(request.path_params["name"]))[0])

    async def deploy(request: Request) -> Response:
        ctx.authorize(request)
        body = _json_object_or_empty(await ctx.body(request))
        config = body.get("config") or {}
        if not isinstance(config, dict):
            raise InvalidInput("'config' must be a mapping of function.yaml keys to values")
        if body.get("envVars"):
            config = {**config, "environment": body["envVars"]}
        name = body.get("service")
        if not isinstance(name, str):
            raise InvalidInput("the deploy body needs 'service': the function name")
        await functions.deploy(name, body.get("files"), config)
        return json_response((await functions.status(name))[0], 202)

    async def remove(request: Request) -> Response:
        ctx.authorize(request)
        body = _json_object_or_empty(await ctx.body(request))
        name = body.get("functionName")
        if not isinstance(name, str):
            raise InvalidInput("the delete body needs 'functionName': the function to remove")
        await functions.remove(name)
        return json_response({}, 202)

    async def scale(request: Request) -> Response:
        ctx.authorize(request)
        body = _json_object_or_empty(await ctx.body(request))
        await functions.scale(request.path_params["name"], body.get("replicas"))
        return json_response({}, 202)

    async def logs(request: Request) -> Response:
        ctx.authorize(request)
        name = request.query_params.get("name")
        if not name:
            raise InvalidInput("logs need ?name=FUNCTION")
        tail = request.query_params.get("tail", "")
        if tail and not tail.isdigit():
            raise InvalidInput(f"tail={tail!r} is not a non-negative integer")
        lines = await functions.logs(name, int(tail) if tail else None)
        return Response(b"".join(orjson.dumps(line) + b"\n" for line in lines), media_type="application/x-ndjson")

    return [
        Route("/function/{name}", invoke, methods=_METHODS),
        Route("/function/{name}/{path:path}", invoke, methods=_METHODS),
        Route("/async-function/{name}", invoke_async, methods=["POST"]),
        Route("/async-function/{name}/{path:path}", invoke_async, methods=["POST"]),
        Route("/async-result/{call_id}", async_result, methods=["GET"]),
        Route("/system/functions", list_functions, methods=["GET"]),
        Route("/system/functions", deploy, methods=["POST", "PUT"]),
        Route("/system/functions", remove, methods=["DELETE"]),
        Route("/system/function/{name}", function_status, methods=["GET"]),
        Route("/system/scale-function/{name}", scale, methods=["POST"]),
        Route("/system/logs", logs, methods=["GET"]),
    ]


async def _function_request(ctx: HttpContext, request: Request) -> FunctionRequest:
    headers = {k: v for k, v in request.headers.items() if k not in _HIDDEN_HEADERS}
    return FunctionRequest(
        body=await ctx.buffer(request),  # sent on to the function's process as it is
        content_type=request.headers.get("content-type", "application/octet-stream"),
        method=request.method,
        path=request.path_params.get("path", ""),
        query=request.url.query,
        headers=headers,
    )


def _reply(invocation: Invocation) -> Response:
    response = invocation.response
    return Response(response.body, response.status, {**response.headers, **timing_headers(invocation)},
                    media_type=response.content_type)


def timing_headers(invocation: Invocation) -> dict[str, str]:
    """Server-Timing (ms) for queue, cold start, handler, model and the handler's own marks; X-Cold-Start."""
    phases = [("queue", invocation.queue_s)]
    if invocation.cold_start_s is not None:
        phases.append(("cold-start", invocation.cold_start_s))
    phases += [("handler", invocation.handler_s), ("model", invocation.model_s)]
    phases += [(_TOKEN.sub("-", name), seconds) for name, seconds in invocation.marks.items()]
    headers = {
        "Server-Timing": ", ".join(f"{name};dur={seconds * 1000:.3f}" for name, seconds in phases),
        "X-Function-Instance": invocation.instance,
        "X-Cold-Start": "true" if invocation.cold_start_s is not None else "false",
    }
    if invocation.cold_start_s is not None:
        headers["X-Cold-Start-Ms"] = f"{invocation.cold_start_s * 1000:.3f}"
    return headers


def _async_reply(call: AsyncResult) -> Response:
    headers = {"X-Call-Id": call.call_id, "X-Function-Status": str(call.status)}
    if call.invocation is not None:
        return Response(call.invocation.response.body, call.status,
                        {**headers, **timing_headers(call.invocation)},
                        media_type=call.invocation.response.content_type)
    if call.error is not None:
        return json_response({"error": call.error}, call.status, headers)
    return json_response({"call_id": call.call_id, "status": "pending"}, 202, headers)


def _json_object_or_empty(body: bytes) -> dict[str, Any]:
    return json_object(body) if body.strip() else {}
