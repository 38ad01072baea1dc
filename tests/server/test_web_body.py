"""HttpContext's body readers: the body reaches the route as the protocol delivered it (no copy), and
form routes can still parse the body after the size check."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from inferlab.errors import PayloadTooLarge
from inferlab.server.web import HttpContext


def request_with(body: bytes, content_type: str = "application/json") -> Request:
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", content_type.encode())]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}, receive)


def context(limit: int = 1 << 24) -> HttpContext:
    return HttpContext(service=None, max_body_bytes=limit)  # type: ignore[arg-type]  # the body readers use no service


def test_body_is_the_delivered_bytes_not_a_copy() -> None:
    body = b'{"instances": [1, 2, 3]}' * 40_000  # ~1 MB, like a function's JSON request
    got = asyncio.run(context().body(request_with(body)))
    # Starlette's request.body() joins the body with its stream's closing empty chunk: a copy.
    assert got is body


def test_form_body_leaves_the_form_parseable() -> None:
    boundary = "b0undary"
    part = 'Content-Disposition: form-data; name="model"\r\n\r\ndigits'
    body = f"--{boundary}\r\n{part}\r\n--{boundary}--\r\n".encode()
    request = request_with(body, f"multipart/form-data; boundary={boundary}")

    async def read() -> object:
        assert await context().form_body(request) == body
        async with request.form() as form:
            return form.get("model")

    assert asyncio.run(read()) == "digits"


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(PayloadTooLarge, match="over the server's limit of 10 bytes"):
        asyncio.run(context(limit=10).body(request_with(b"x" * 11)))
