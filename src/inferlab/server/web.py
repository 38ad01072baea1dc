"""What every HTTP adapter shares: the body reader with its size limit, the token check, JSON replies."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from inferlab.errors import InvalidInput, PayloadTooLarge, Unauthorized
from inferlab.messages import InferResponse
from inferlab.server.service import InferenceService

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class HttpContext:
    """The service plus the per-server HTTP policy (body limit, bearer token) the routes apply."""

    service: InferenceService
    max_body_bytes: int
    auth_token: str | None = None
    protect_inference: bool = False

    async def body(self, request: Request) -> bytes:
        """The whole body, refused with 413 as soon as it is known to be over the limit.

        Not `request.body()`: Starlette joins the body with the empty chunk that ends its stream, which
        copies it (~0.17 ms for a 1.6 MB body, py-spy). Nothing may read the body after this.
        """
        self._declared_length(request)
        body = await self._read(request)
        return body if isinstance(body, bytes) else bytes(body)  # a large body comes as a buffer

    async def form_body(self, request: Request) -> bytes:
        """The whole body like `body`, kept by Starlette for the `request.form()` that parses it next."""
        if self._declared_length(request):
            return await request.body()
        return bytes(await self._read(request))  # without a Content-Length, the form cannot be parsed again

    async def buffer(self, request: Request) -> bytes | memoryview:
        """The whole body like `body`, but a body the HTTP protocol collected in one buffer (64 KB and more)
        comes as it is, uncopied: for routes that hand the body to orjson, numpy or a function's process,
        which take any buffer (a V2 binary tensor is then read where the kernel wrote it:
        server/http_protocol.py). Nothing else may read the body after this.
        """
        self._declared_length(request)
        return await self._read(request)

    def _declared_length(self, request: Request) -> bool:
        """True when the request declares a Content-Length; 413 when that is over the limit."""
        declared = request.headers.get("content-length")
        if declared is None:
            return False
        if not declared.isdigit():
            raise InvalidInput(f"Content-Length {declared!r} is not a number")
        if int(declared) > self.max_body_bytes:
            raise PayloadTooLarge(
                f"request body of {declared} bytes is over the server's limit of {self.max_body_bytes} bytes"
            )
        return True

    async def _read(self, request: Request) -> bytes | memoryview:
        chunks: list[bytes | memoryview] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(f"request body is over the server's limit of {self.max_body_bytes} bytes")
            if chunk:
                chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def authorize(self, request: Request, inference: bool = False) -> None:
        """Check the bearer token for protected operations (inference only when asked to protect it)."""
        if self.auth_token is None or (inference and not self.protect_inference):
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.auth_token.encode()):
            raise Unauthorized("this operation needs 'Authorization: Bearer <token>' with the server's token")


def json_object(body: bytes | memoryview, what: str = "request body") -> dict[str, Any]:
    """`body` must be one JSON object; InvalidInput (400) naming `what` otherwise."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return doc


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status_code, headers, JSON)


def finished_json_response(service: InferenceService, response: InferResponse, content: Any) -> Response:
    """A JSON reply to an inference call, with the request's metrics recorded and its Server-Timing header."""
    reply = json_response(content)
    reply.headers.update(service.finish(response))
    return reply
