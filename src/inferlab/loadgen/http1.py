"""A lean HTTP/1.1 keep-alive client connection on asyncio protocols that stamps every phase of an exchange.

The generator must never be the bottleneck, so there is no coroutine or future per request: the driver
hands a pre-encoded request to an idle `Connection`, and the connection calls the driver back when the
response is complete or the connection is lost. Parsing does only what timing needs: the status, the
body framing (Content-Length, chunked, or until close), `Connection: close` and `Server-Timing`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter
from typing import Protocol, cast

MAX_HEAD_BYTES = 64 * 1024

_NO_BODY_STATUSES = frozenset((204, 304))


class Exchange:
    """One request's life on a perf_counter clock; mutable only while in flight, then handed to the recorder.

    `intended` is when the schedule wanted it sent, `ready` when the generator could first have sent it
    (a connection was free), `sent` when it was handed to the socket. Zero means "did not happen".
    """

    __slots__ = ("bytes_in", "bytes_out", "connect_end", "connect_start", "done", "error", "error_kind",
                 "first_byte", "head_bytes", "index", "intended", "ready", "sent", "server_timing", "status", "written")

    def __init__(self, index: int, intended: float) -> None:
        self.index = index
        self.intended = intended
        self.ready = intended
        self.sent = 0.0
        self.connect_start = 0.0
        self.connect_end = 0.0
        self.written = 0.0
        self.first_byte = 0.0
        self.done = 0.0
        self.status = 0
        self.bytes_in = 0
        self.head_bytes = 0  # status line and headers, so bodies can be counted as hey counts them
        self.bytes_out = 0
        self.server_timing = b""
        self.error_kind = ""
        self.error = ""

    def fail(self, kind: str, message: str) -> None:
        self.error_kind = kind
        self.error = message
        self.done = perf_counter()


class Link(Protocol):
    """What the driver needs from a connection: one exchange at a time, completion by callback."""

    exchange: Exchange | None
    open: bool

    def send(self, exchange: Exchange, request: bytes) -> None: ...

    def abort(self, kind: str, message: str) -> None: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


#: Called with (link, finished exchange) when a response completes on a still-usable link.
OnComplete = Callable[[Link, Exchange], None]
#: Called with (link, exchange that was in flight or None) when a link dies.
OnLost = Callable[[Link, "Exchange | None"], None]


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one exchange at a time.

    Example (inside a running loop):
        >>> _, conn = await loop.create_connection(lambda: Connection(on_complete, on_lost), host, port)
        >>> conn.send(Exchange(0, perf_counter()), b"GET / HTTP/1.1\\r\\nHost: h\\r\\n\\r\\n")
    """

    __slots__ = ("_buf", "_chunk_left", "_chunked", "_close_after", "_head_done", "_left", "_on_complete",
                 "_on_lost", "_until_close", "exchange", "head_only", "open", "transport")

    def __init__(self, on_complete: OnComplete, on_lost: OnLost, head_only: bool = False) -> None:
        self._on_complete = on_complete
        self._on_lost = on_lost
        self.head_only = head_only  # HEAD requests: responses carry no body whatever the headers say
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.open = False
        self._reset()

    def _reset(self) -> None:
        self._buf = bytearray()
        self._head_done = False
        self._left = 0
        self._chunked = False
        self._chunk_left = -1
        self._until_close = False
        self._close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.open = True

    def send(self, exchange: Exchange, request: bytes) -> None:
        """Write one whole request; the response is timed from here."""
        self.exchange = exchange
        exchange.sent = perf_counter()
        exchange.bytes_out = len(request)
        if self.transport is not None:
            self.transport.write(request)
        exchange.written = perf_counter()

    def abort(self, kind: str, message: str) -> None:
        """Give up on the exchange in flight (timeout) and drop the connection; the callback reports it."""
        ex = self.exchange
        if ex is not None:
            ex.fail(kind, message)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self) -> None:
        """Closing a socket needs no waiting; here to match gRPC slots."""

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if ex is None or ex.done:
            self._fail_connection("protocol", "unexpected bytes from the server with no request in flight")
            return
        if not ex.first_byte:
            ex.first_byte = perf_counter()
        ex.bytes_in += len(data)
        self._feed(ex, data)

    def _feed(self, ex: Exchange, data: bytes) -> None:
        if not self._head_done:
            if self._buf:  # a head split across reads (rare): join, then parse as one
                data = bytes(self._buf) + data
                self._buf = bytearray()
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > MAX_HEAD_BYTES:
                    self._fail_connection("protocol", f"response head longer than {MAX_HEAD_BYTES} bytes")
                else:
                    self._buf += data
                return
            if not self._parse_head(ex, data[:end]):
                return
            ex.head_bytes += end + 4
            data = data[end + 4:]
            if ex.status < 200:  # an interim 1xx response: the real one follows
                self._reset()
                ex.status = 0
                if data:
                    self._feed(ex, data)
                return
        self._body(ex, data)

    def _parse_head(self, ex: Exchange, head: bytes) -> bool:
        if head[:7] != b"HTTP/1." or len(head) < 12:
            self._fail_connection("protocol", f"not an HTTP/1.x response: {head[:40]!r}")
            return False
        try:
            ex.status = status = int(head[9:12])
        except ValueError:
            self._fail_connection("protocol", f"bad status line: {head[:60]!r}")
            return False
        self._head_done = True
        lower = head.lower()
        if head[7] == 48:  # HTTP/1.0: closes unless it says keep-alive
            self._close_after = b"\r\nconnection: keep-alive" not in lower
        if b"\r\nconnection:" in lower and b"close" in _header(lower, b"connection"):
            self._close_after = True
        if b"\r\nserver-timing:" in lower:
            ex.server_timing = _all_headers(head, lower, b"server-timing")
        if self.head_only or status in _NO_BODY_STATUSES or status < 200:
            self._left = 0
            return True
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0 and b"\r\ntransfer-encoding:" not in lower:
            end = lower.find(b"\r\n", at + 17)
            try:
                self._left = int(lower[at + 17:end if end >= 0 else len(lower)])
            except ValueError:
                self._fail_connection("protocol", "bad Content-Length header")
                return False
        elif b"chunked" in _header(lower, b"transfer-encoding"):
            self._chunked = True
        else:
            self._until_close = True
            self._close_after = True
        return True

    def _body(self, ex: Exchange, data: bytes) -> None:
        if self._until_close:
            return
        if self._chunked:
            self._chunks(ex, data)
            return
        self._left -= len(data)
        if self._left == 0:
            self._finish(ex)
        elif self._left < 0:
            self._fail_connection("protocol", "more bytes than Content-Length (pipelining is not used)")

    def _chunks(self, ex: Exchange, data: bytes) -> None:
        buf = self._buf
        buf += data
        while True:
            if self._chunk_left < 0:  # expecting a size line
                eol = buf.find(b"\r\n")
                if eol < 0:
                    return
                try:
                    size = int(bytes(buf[:eol]).split(b";", 1)[0], 16)
                except ValueError:
                    self._fail_connection("protocol", "bad chunk size line")
                    return
                del buf[:eol + 2]
                if size == 0:
                    end = buf.find(b"\r\n\r\n") if buf[:2] != b"\r\n" else 0
                    if end < 0:
                        buf[:0] = b"0\r\n"  # wait for the trailers to finish
                        return
                    self._finish(ex)
                    return
                self._chunk_left = size + 2  # the data and its CRLF
            if len(buf) < self._chunk_left:
                return
            del buf[:self._chunk_left]
            self._chunk_left = -1

    def _finish(self, ex: Exchange) -> None:
        ex.done = perf_counter()
        close = self._close_after
        self.exchange = None
        self._reset()
        if close:
            self.open = False
            self.close()
            self._on_lost(self, ex)
            return
        self._on_complete(self, ex)

    def _fail_connection(self, kind: str, message: str) -> None:
        self.abort(kind, message)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open:
            return
        self.open = False
        ex = self.exchange
        self.exchange = None
        if ex is not None and not ex.done:
            if self._until_close and self._head_done:
                ex.done = perf_counter()
            else:
                ex.fail("closed", f"connection closed by the server{': ' + str(exc) if exc else ''}")
        self._on_lost(self, ex)


def _header(lower: bytes, name: bytes) -> bytes:
    """The (lower-cased) value of the first header `name` in a lower-cased head."""
    at = lower.find(b"\r\n" + name + b":")
    if at < 0:
        return b""
    start = at + len(name) + 3
    end = lower.find(b"\r\n", start)
    return lower[start:end if end >= 0 else len(lower)].strip()


def _all_headers(head: bytes, lower: bytes, name: bytes) -> bytes:
    """Every value of a repeatable header, joined with commas as RFC 9110 allows (original case)."""
    values = []
    key = b"\r\n" + name + b":"
    at = lower.find(key)
    while at >= 0:
        start = at + len(key)
        end = lower.find(b"\r\n", start)
        values.append(head[start:end if end >= 0 else len(head)].strip())
        at = lower.find(key, start)
    return b", ".join(values)
