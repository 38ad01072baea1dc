"""Sharing out new connections between the worker processes that accept from one listening socket.

libuv (under uvloop) accepts every pending connection as soon as the listening socket is readable, so
the first worker to run took a whole burst: wrk opening 8 connections at once left a worker with none
in 2 of 10 tries (minilm_l6_int8 at 8 connections: ~310 req/s instead of ~600, one core idle for the
whole run), and `ss` counted 1 burst of 30 all on one worker. Here a worker accepts one connection per
event-loop round, and when it holds more open connections than another worker it first stops
watching the socket for `DEFER_S`, so that the other is woken for the next one; if the other does not
take it by then (busy, or not started yet), this one does. Open connections per worker live in
memory the workers share (`Seat`), updated at every accept and every close. Measured with 20 bursts
of 8 connections, three times (tests/batching/test_workers.py): before, 1-2 bursts all on one worker
and 4-11 split worse than 3:5; now none and 0-1.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ssl import SSLContext
from typing import Any

import uvloop

DEFER_S = 0.001
log = logging.getLogger("inferlab.server")


@dataclass(frozen=True)
class Seat:
    """This worker's place in the shared table of open connections (a multiprocessing RawArray of ints)."""

    counts: Any
    index: int

    def publish(self, open_connections: int) -> None:
        self.counts[self.index] = open_connections

    def fewest_elsewhere(self) -> int:
        """The open connections of the least loaded other worker (stale counts only overstate them)."""
        return min((n for i, n in enumerate(self.counts) if i != self.index), default=1 << 30)


class SharedSocketLoop(uvloop.Loop):
    """uvloop, except that a server on the shared listening socket shares its connections out (above)."""

    seat: Seat

    async def create_server(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: Any = None, port: Any = None, *,
        sock: socket.socket | None = None, ssl: SSLContext | None = None, **kwargs: Any,
    ) -> asyncio.AbstractServer:
        if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return await super().create_server(protocol_factory, host, port, sock=sock, ssl=ssl, **kwargs)
        return TakeTurns(self, sock, protocol_factory, ssl, self.seat)


def shared_socket_loop(seat: Seat) -> Callable[[], SharedSocketLoop]:
    def build() -> SharedSocketLoop:
        loop = SharedSocketLoop()
        loop.seat = seat
        return loop

    return build


class TakeTurns(asyncio.AbstractServer):
    """Accepts from the shared socket as the module docstring says and hands each connection to a protocol."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 protocol_factory: Callable[[], asyncio.BaseProtocol], ssl: SSLContext | None, seat: Seat) -> None:
        self._loop = loop
        self._sock = sock
        self._factory = protocol_factory
        self._ssl = ssl
        self._seat = seat
        self._open = 0  # accepted and not yet lost, published in `seat` at every change
        self._deferred = False
        self._waiting: asyncio.TimerHandle | None = None
        self._closed: asyncio.Future[None] = loop.create_future()
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._accept_one)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,)

    def _accept_one(self) -> None:
        if not self._deferred and self._open > self._seat.fewest_elsewhere():
            self._loop.remove_reader(self._sock.fileno())  # the next wake-up goes to the others
            self._deferred = True
            self._waiting = self._loop.call_later(DEFER_S, self._resume)
            return
        self._deferred = False
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return  # another worker took it
        except OSError as exc:  # out of file descriptors, ...: the connection waits for a worker that can take it
            log.warning("could not accept a connection: %s", exc)
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._count(+1)
        task = self._loop.create_task(self._loop.connect_accepted_socket(self._counted, conn, ssl=self._ssl))
        task.add_done_callback(self._opened)

    def _resume(self) -> None:
        self._waiting = None
        if not self._closed.done():
            self._loop.add_reader(self._sock.fileno(), self._accept_one)

    def _count(self, change: int) -> None:
        self._open += change
        self._seat.publish(self._open)

    def _counted(self) -> asyncio.BaseProtocol:
        """A protocol from the factory whose connection, once lost, is counted off (set before the transport
        exists, so no loss goes uncounted; the transport calls the method it finds on the instance)."""
        protocol = self._factory()
        lost = protocol.connection_lost

        def counted(exc: Exception | None) -> None:
            self._count(-1)
            lost(exc)

        protocol.connection_lost = counted  # type: ignore[method-assign]
        return protocol

    def _opened(self, task: asyncio.Task[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]]) -> None:
        """A connection that never opened (a failed TLS handshake, a reset) never reaches `connection_lost`."""
        if task.cancelled() or task.exception() is not None:
            log.info("a connection could not be opened: %s", "cancelled" if task.cancelled() else task.exception())
            self._count(-1)

    def close(self) -> None:
        if self._closed.done():
            return
        if self._waiting is not None:
            self._waiting.cancel()
        else:
            self._loop.remove_reader(self._sock.fileno())
        self._closed.set_result(None)

    def is_serving(self) -> bool:
        return not self._closed.done()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    async def start_serving(self) -> None:
        """It serves from construction on."""

    async def serve_forever(self) -> None:
        await self._closed

    async def wait_closed(self) -> None:
        await self._closed
