"""uvicorn's httptools protocol, tuned for inference traffic: replies leave as one write, and large
request bodies are read straight into one buffer.

**One write per reply.** uvicorn writes a response's status line and headers, then its body, with two
`transport.write` calls; each is a `send` syscall and, with TCP_NODELAY, its own TCP segment that wakes
the client again. For small inference replies that was the largest cost in the server (py-spy: ~44% of
the event loop's samples in those two sends, digits over V2 JSON). Writes made in one event-loop
callback are collected and flushed together at the end of it (`call_soon`), so a whole response leaves
in one `writelines` — one syscall, one segment — and nothing waits longer than that callback.

**One buffer per large body.** Through uvicorn, a 600 KB tensor arrived as ~10 socket reads, each
copied into a `bytes`, copied again by the parser, appended to the request's `bytearray`, copied into
an ASGI message and woken up to in the handler's task, and finally joined. Once the headers of a
request with a Content-Length of at least `DIRECT_BODY_BYTES` (and within the server's body limit) are
parsed, this protocol lets the event loop `recv_into` the rest of the body straight into a buffer of
that length (asyncio's BufferedProtocol), and hands it to the handler once, whole: one wake-up instead
of a dozen, and the buffer itself is the ASGI body (a memoryview: `HttpContext.buffer` hands it on, and
`HttpContext.body` copies it into `bytes` for routes that need them). Large JSON bodies (V2, TF
Serving, TFaaS, functions) used to be copied into `bytes` once more on the way: ~0.05 ms per 3 MB once
the allocator reuses freed memory, 1 ms when the copy's pages are new.

**No copy for V2 binary tensors.** A request with `Inference-Header-Content-Length` (the KServe binary
extension) gets its body placed so that the tensor bytes after the JSON header start 64-byte aligned:
numpy and onnxruntime read the tensor where the kernel wrote it. Through uvicorn the tensor also had
to be copied once more, because a header of odd length left it misaligned for float32.

**Buffered under uvloop too.** uvloop reads into a protocol's own buffers only if the protocol is not an
`asyncio.Protocol`, and uvicorn's is one: given this protocol directly, uvloop read 256 KB at a time into
its own buffer and called `data_received`, so a 600 KB body took three reads, three `bytes` copies, three
parser copies and the copy into the body buffer. `http_protocol(max_body_bytes)` therefore gives uvicorn
a factory of `_Buffered` fronts, plain `asyncio.BufferedProtocol`s that hand the reads to this one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httptools
import numpy as np
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from inferlab.server.protocols.kserve_binary import HEADER as BINARY_HEADER

DIRECT_BODY_BYTES = 64 * 1024  # smaller bodies come in one or two reads: the parser's path costs no more
_READ_BYTES = 64 * 1024  # the buffer the parser reads request heads (and small bodies) from
_ALIGN = 64  # a cache line; more than any dtype needs
_BINARY_HEADER = BINARY_HEADER.encode()


class _CoalescingTransport:
    """Delegates to the real transport, except that writes are batched until the current callback ends."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.writelines(pending)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def http_protocol(max_body_bytes: int) -> Callable[..., asyncio.BaseProtocol]:
    """uvicorn's `http` protocol factory: `InferenceHttpProtocol`s behind buffered fronts (see the module docstring)."""

    def build(*args: Any, **kwargs: Any) -> asyncio.BaseProtocol:
        return _Buffered(InferenceHttpProtocol(*args, max_body_bytes=max_body_bytes, **kwargs))

    return build


class _Buffered(asyncio.BufferedProtocol):
    """Passes every transport event to `inner`; reads go straight to its buffers."""

    def __init__(self, inner: InferenceHttpProtocol) -> None:
        self.inner = inner
        # The loop looks these up once per connection: bound to `inner`, a read costs no extra call.
        self.get_buffer = inner.get_buffer  # type: ignore[method-assign]
        self.buffer_updated = inner.buffer_updated  # type: ignore[method-assign]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def eof_received(self) -> None:
        self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class InferenceHttpProtocol(HttpToolsProtocol):
    """See the module docstring. `max_body_bytes`: larger bodies take uvicorn's path, where the route refuses them."""

    def __init__(self, *args: Any, max_body_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_body_bytes = max_body_bytes
        self._read = bytearray(_READ_BYTES)
        self._read_view = memoryview(self._read)
        self._body: memoryview | None = None  # the body being collected, Content-Length long
        self._direct = False  # the loop reads into `_body` itself (the parser has had all it will see)
        self._filled = 0
        self._receive: _BufferReceive | None = None  # the receive that hands `_body` to the route

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    # -- the event loop's reads ------------------------------------------------------------------
    def get_buffer(self, sizehint: int) -> memoryview:
        if self._direct:
            return self._body[self._filled:]  # type: ignore[index]  # set whenever _direct is
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        if self._direct:
            self._filled += nbytes
            if self._filled == len(self._body):  # type: ignore[arg-type]
                # The parser still expects the body it never saw: the next request gets a fresh one.
                self.parser = httptools.HttpRequestParser(self)
                self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
                self._deliver()
            return
        self.data_received(self._read_view[:nbytes])  # type: ignore[arg-type]  # the parser takes any buffer
        if self._body is not None and self.parser is not None:
            # The read ended inside the body (its end would have delivered it): read the rest directly.
            self._direct = True

    # -- parser callbacks --------------------------------------------------------------------------
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        plan = self._body_plan()
        if plan is None:
            return
        length, tensor_offset = plan
        # Not zeroed: every byte is written before it is read. Large allocations are mapped lazily, so a
        # client that declares a large body and sends little of it commits little memory.
        raw = np.empty(length + _ALIGN, np.uint8)
        start = -(raw.ctypes.data + (tensor_offset or 0)) % _ALIGN
        self._body = memoryview(raw[start:start + length])  # type: ignore[arg-type]
        self._filled = 0
        # The route's task starts after this callback, so it will be handed this receive.
        self._receive = _BufferReceive(self.cycle)
        self.cycle.receive = self._receive  # type: ignore[method-assign]

    def on_body(self, body: bytes) -> None:
        if self._body is None:
            super().on_body(body)
            return
        end = self._filled + len(body)
        self._body[self._filled:end] = body
        self._filled = end

    def on_message_complete(self) -> None:
        if self._body is None:
            super().on_message_complete()
        else:
            self._deliver()

    def _body_plan(self) -> tuple[int, int | None] | None:
        """(Content-Length, where a V2 binary request's tensors start) for a body to collect directly, or
        None for uvicorn's own path. A bad binary header length is the route's to refuse: no alignment then."""
        if self.pipeline or self.parser.should_upgrade() or self.cycle is None:
            return None
        length = tensors = None
        for name, value in self.headers:
            if name == b"content-length":
                length = value
            elif name == _BINARY_HEADER:
                tensors = value
            elif name == b"transfer-encoding":
                return None
        if length is None or not length.isdigit():
            return None
        size = int(length)
        if not DIRECT_BODY_BYTES <= size <= self._max_body_bytes:
            return None
        offset = int(tensors) if tensors is not None and tensors.isdigit() else None
        return size, offset if offset is not None and offset <= size else None

    def _deliver(self) -> None:
        """The whole body to the request, as one ASGI message; back to parsing what follows."""
        body, self._body, self._direct = self._body, None, False
        receive, self._receive = self._receive, None
        cycle = self.cycle
        if receive is None or cycle.response_complete:  # set with `_body`, in on_headers_complete
            return
        receive.body = body
        cycle.more_body = False
        cycle.message_event.set()


class _BufferReceive:
    """A request's ASGI receive whose body message carries the protocol's buffer instead of a copy.

    ASGI says a body is `bytes`; the routes of this server read it through `HttpContext`, which copies it
    into `bytes` (`body`) only for those that need them.
    """

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._receive = cycle.receive
        self.body: memoryview | None = None

    async def __call__(self) -> Any:
        message = await self._receive()
        if message["type"] == "http.request" and self.body is not None:
            message["body"], self.body = self.body, None  # type: ignore[typeddict-item]  # see the class docstring
        return message
