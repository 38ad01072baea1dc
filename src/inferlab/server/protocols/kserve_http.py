"""KServe V2 over HTTP: health, server and model metadata, readiness, and inference (JSON or binary tensors)."""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inferlab.messages import InferResponse
from inferlab.server.protocols import kserve_binary
from inferlab.server.protocols.kserve_json import OutputOptions, decode_request, encode_binary_response, encode_response
from inferlab.server.timing import TIMEOUT_HEADER, arrived
from inferlab.server.web import JSON, HttpContext, json_response


def routes(ctx: HttpContext) -> list[Route]:
    service = ctx.service

    async def infer(request: Request) -> Response:
        received = perf_counter()
        ctx.authorize(request, inference=True)
        params = request.path_params
        body = await ctx.buffer(request)
        read = perf_counter()
        header_length = kserve_binary.header_length(request.headers)
        if header_length == 0:  # raw binary request: the body is the single input; all outputs binary
            specs = service.model(params["model"], params.get("version")).inputs
            infer_request = kserve_binary.decode_raw_request(body, params["model"], params.get("version"), specs)
            options = OutputOptions(binary_default=True)
        else:
            infer_request, options = decode_request(body, params["model"], params.get("version"), header_length)
        arrived(infer_request, received, read, request.headers.get(TIMEOUT_HEADER))
        response = await service.infer(infer_request, options.classification)
        return _encode(response, options, service.finish)

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


def _encode(
    response: InferResponse, options: OutputOptions, finish: Callable[[InferResponse], dict[str, str]]
) -> Response:
    """Plain JSON unless some output was asked for in binary (then the binary extension's layout).

    `finish` is called once the body is encoded; it stamps the time and returns the timing headers.
    """
    if not any(options.is_binary(name) for name in response.outputs):
        return Response(encode_response(response), media_type=JSON, headers=finish(response))
    body, header_length = encode_binary_response(response, options)
    headers = {"Inference-Header-Content-Length": str(header_length), **finish(response)}
    return Response(body, media_type="application/octet-stream", headers=headers)
