"""uvicorn's httptools protocol with each response's writes sent to the socket as one.

uvicorn writes a response's status line and headers, then its body, with two `transport.write`
calls; each is a `send` syscall and, with TCP_NODELAY, its own TCP segment that wakes the client
again. For small inference replies that was the largest cost in the server (py-spy: ~44% of the
event loop's samples in those two sends, digits over V2 JSON). Writes made in one event-loop
callback are collected and flushed together at the end of it (`call_soon`), so a whole response
leaves in one `writelines` — one syscall, one segment — and nothing waits longer than that callback.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
