"""KServe V2 over HTTP: health, server and model metadata, readiness, and inference."""

from __future__ import annotations

from time import perf_counter

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inferlab.server.protocols.kserve_json import decode_request, encode_response
from inferlab.server.timing import TIMEOUT_HEADER, arrived
from inferlab.server.web import JSON, HttpContext, json_response


def routes(ctx: HttpContext) -> list[Route]:
    service = ctx.service

    async def infer(request: Request) -> Response:
        received = perf_counter()
        ctx.authorize(request, inference=True)
        params = request.path_params
        infer_request, classification = decode_request(await ctx.body(request), params["model"], params.get("version"))
        arrived(infer_request, received, request.headers.get(TIMEOUT_HEADER))
        response = await service.infer(infer_request, classification)
        body = encode_response(response)
        return Response(body, media_type=JSON, headers=service.finish(response))

    async def live(request: Request) -> Response:
        return json_response({"live": True})

    async def ready(request: Request) -> Response:
        ok = service.ready()
        return json_response({"ready": ok}, 200 if ok else 503)

    async def server_metadata(request: Request) -> Response:
        return json_response(service.server_metadata())

    async def model_metadata(request: Request) -> Response:
        return json_response(service.model_metadata(request.path_params["model"], request.path_params.get("version")))

    async def model_ready(request: Request) -> Response:
        name = request.path_params["model"]
        ok = service.model_ready(name, request.path_params.get("version"))
        return json_response({"name": name, "ready": ok}, 200 if ok else 503)

    return [
        Route("/v2/models/{model}/infer", infer, methods=["POST"]),
        Route("/v2/models/{model}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/models/{model}", model_metadata, methods=["GET"]),
        Route("/v2/models/{model}/versions/{version}", model_metadata, methods=["GET"]),
        Route("/v2/models/{model}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{model}/versions/{version}/ready", model_ready, methods=["GET"]),
    ]
