"""The user-facing base class of a function: setup() once per instance, then handle() or decode/predict/encode.

A function is a folder with `handler.py` (one subclass of `Handler`) and `function.yaml`. The class
is built once per instance (a worker process); `setup()` runs there once, so slow set-up (reading a
tokenizer, a face cascade) is paid at cold start, not per request. Models are never loaded here:
`self.infer(...)` sends the call to the server, which runs it through the same scheduler (and
batcher) as a direct `/v2/models/.../infer` call.

Example::

    from inferlab.functions import Handler, Request, Response

    class Echo(Handler):
        def handle(self, request: Request) -> Response:
            return Response(request.body, request.content_type)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from inferlab.errors import InvalidInput
from inferlab.tensors import Array

HOOKS = ("setup", "handle", "decode", "predict", "encode")


@dataclass(slots=True)
class Request:
    """One invocation as the handler sees it: the raw body and content type, as OpenFaaS passes them.

    A handler always gets `bytes`; on its way through the server a large body is still the buffer the
    HTTP protocol read it into, sent on to the function's process uncopied.
    """

    body: bytes | memoryview
    content_type: str = "application/octet-stream"
    method: str = "POST"
    path: str = ""
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON; a body that is not JSON is the client's error (400)."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"the request body is not valid JSON: {exc}") from None


@dataclass(slots=True)
class Response:
    """What a handler returns: body bytes, content type, status and extra headers."""

    body: bytes
    content_type: str = "application/octet-stream"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, content: Any, status: int = 200) -> Response:
        return cls(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), "application/json", status)


class Context(Protocol):
    """What the worker gives a handler: its folder, settings, server models and named timings."""

    @property
    def path(self) -> Path:
        """The function's folder (files shipped beside handler.py live here)."""
        ...

    @property
    def environment(self) -> dict[str, str]:
        """The `environment` mapping of function.yaml / stack.yml."""
        ...

    def infer(self, model: str, inputs: dict[str, Array], outputs: list[str] | None = None,
              version: str | None = None) -> dict[str, Array]:
        """Run a server model (one listed under `models` in function.yaml) and wait for its outputs.

        The output arrays are read-only views of the data received from the server; `.copy()` one
        to change it in place.
        """
        ...

    def timed(self, name: str) -> Any:
        """A context manager adding its duration to this request's Server-Timing under `name`."""
        ...


class Handler:
    """Subclass this in handler.py; override `setup()` and either `handle()` or decode/predict/encode.

    `handle(request)` gets the raw request and returns a Response (or bytes, str, or a JSON-able
    dict/list). Split into `decode(request) -> inputs`, `predict(inputs) -> outputs` and
    `encode(outputs) -> response` when the middle step is the model call.
    """

    def __init__(self, context: Context) -> None:
        self.context = context

    def setup(self) -> None:
        """Runs once per instance, before the first request: load files, build lookup tables."""

    def handle(self, request: Request) -> Response | bytes | str | dict[str, Any] | list[Any]:
        return self.encode(self.predict(self.decode(request)))

    def decode(self, request: Request) -> Any:
        return request

    def predict(self, inputs: Any) -> Any:
        raise NotImplementedError("override handle() or predict() in your Handler subclass")

    def encode(self, outputs: Any) -> Response | bytes | str | dict[str, Any] | list[Any]:
        return outputs  # type: ignore[no-any-return]  # any of the accepted reply types; as_response checks

    def infer(self, model: str, inputs: dict[str, Array], outputs: list[str] | None = None,
              version: str | None = None) -> dict[str, Array]:
        """Shorthand for `self.context.infer(...)`."""
        return self.context.infer(model, inputs, outputs, version)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Shorthand for `self.context.timed(name)`: e.g. `with self.timed("ml"): boxes = detect(img)`."""
        with self.context.timed(name):
            yield


def as_response(value: object) -> Response:
    """Turn what a handler returned into a Response; anything else is the handler's bug (500)."""
    if isinstance(value, Response):
        return _checked(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return Response(bytes(value))
    if isinstance(value, str):
        return Response(value.encode(), "text/plain; charset=utf-8")
    if isinstance(value, dict | list):
        return Response.json(value)
    raise TypeError(
        f"the handler returned {type(value).__name__}; return a Response, bytes, str, or a JSON-able dict/list"
    )


def _checked(response: Response) -> Response:
    """A Response the server can send: caught here, in the worker, the handler's mistake is a 500 that names it."""
    if not isinstance(response.body, bytes | bytearray | memoryview):
        raise TypeError(f"Response.body must be bytes, not {type(response.body).__name__}")
    if isinstance(response.status, bool) or not isinstance(response.status, int) or not 100 <= response.status <= 599:
        raise TypeError(f"Response.status must be an HTTP status code (100-599), not {response.status!r:.40}")
    if not isinstance(response.content_type, str):
        raise TypeError(f"Response.content_type must be a str, not {type(response.content_type).__name__}")
    bad = [k for k, v in response.headers.items()
           if not (isinstance(k, str) and isinstance(v, str)) or "\n" in f"{k}{v}" or "\r" in f"{k}{v}"]
    if bad:
        raise TypeError(f"Response.headers must map str to str on one line each; {bad[0]!r:.40} does not")
    return response
