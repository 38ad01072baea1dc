"""Pickle frames with out-of-band buffers over the socket between the server and one worker process.

Both ends are our own code (the worker runs the handler the server's operator deployed), so pickle
is acceptable. Large data never goes through the pickle stream: numpy arrays, and bodies wrapped in
`pickle.PickleBuffer`, travel as protocol-5 out-of-band buffers written straight from their memory
(in-band pickling of a 1.6 MB body costs ~2 ms; out of band, ~0.1 ms). The server side is an asyncio
protocol; the worker side is a blocking socket shared by the handler threads under a lock.

A frame is: payload length, buffer count (!QI), each buffer's length (!Q), the pickle, the buffers.
The server reads frames with `FrameReader` (an asyncio protocol) and writes them with
`transport.writelines(encode_frame(message))`.
Messages are tuples whose first item names the kind:

    server -> worker  ("invoke", inv_id, Request, body)   ("model_ok", call_id, outputs)
                      ("model_error", call_id, error_class, message)   ("stop",)
    worker -> server  ("ready",)   ("failed", message)   ("log", text)
                      ("result", inv_id, Response, body, handler_s, marks)
                      ("error", inv_id, error_class, message)
                      ("infer", inv_id, call_id, model, version, inputs, outputs)
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
import threading
from collections.abc import Callable, Generator
from typing import Any

_HEAD = struct.Struct("!QI")
_LENGTH = struct.Struct("!Q")
_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024

Part = bytes | memoryview


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair with buffers large enough for an image or tensor to pass in one go."""
    pair = socket.socketpair()
    for sock in pair:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER_BYTES)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER_BYTES)
    return pair


def encode_frame(message: tuple[Any, ...]) -> list[Part]:
    """The frame as parts to write in order; the buffers are views of the caller's memory, not copies."""
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    head = _HEAD.pack(len(payload), len(raws)) + b"".join(_LENGTH.pack(r.nbytes) for r in raws)
    return [head, payload, *raws]


class FrameReader(asyncio.BufferedProtocol):
    """The server's end: each frame part is received straight into its own buffer, and each whole
    message goes to `on_message` from the event loop's read callback.

    Why not asyncio streams: a StreamReader copies every chunk into its buffer and again out of it,
    and wakes the reading task once per part; for a 600 KB tensor that was a few hundred microseconds
    of a function's model call. Here the kernel writes the bytes where pickle will find them.
    """

    def __init__(self, on_message: Callable[[tuple[Any, ...]], None], on_closed: Callable[[], None]) -> None:
        self._on_message = on_message
        self._on_closed = on_closed
        self._parts = self._frames()
        self._target = next(self._parts)
        self._filled = 0

    def _frames(self) -> Generator[bytearray, bytearray, None]:
        """Yields the buffer to fill next and is sent it back full: head, lengths, payload, buffers."""
        while True:
            size, count = _HEAD.unpack((yield bytearray(_HEAD.size)))
            lengths = struct.unpack(f"!{count}Q", (yield bytearray(_LENGTH.size * count)))
            payload = yield bytearray(size)
            buffers = []
            for length in lengths:
                buffers.append((yield bytearray(length)))
            self._on_message(pickle.loads(payload, buffers=buffers))

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._target)[self._filled:]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        while self._filled == len(self._target):  # empty parts (no buffers, empty bodies) complete at once
            self._target, self._filled = self._parts.send(self._target), 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_closed()


class BlockingChannel:
    """The worker's end: one reader (the main thread) and any number of writers (handler threads)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        views = [memoryview(part) for part in encode_frame(message)]
        with self._lock:
            while views:
                sent = self._sock.sendmsg(views)
                while views and sent >= views[0].nbytes:
                    sent -= views.pop(0).nbytes
                if sent:
                    views[0] = views[0][sent:]

    def receive(self) -> tuple[Any, ...]:
        """The next frame; EOFError when the server closed its end.

        Buffers arrive as `bytes` read straight from the socket (one allocation, no copy), so a body
        is ready to hand to the handler and arrays rebuilt from them are read-only.
        """
        size, count = _HEAD.unpack(self._read(_HEAD.size))
        lengths = [_LENGTH.unpack(self._read(_LENGTH.size))[0] for _ in range(count)]
        payload = self._read(size)
        message: tuple[Any, ...] = pickle.loads(payload, buffers=[self._read(n) for n in lengths])
        return message

    def _read(self, size: int) -> bytes:
        data = self._sock.recv(size, socket.MSG_WAITALL)
        if len(data) == size:
            return data
        parts, got = [data], len(data)
        while data and got < size:  # a signal can cut MSG_WAITALL short
            data = self._sock.recv(size - got, socket.MSG_WAITALL)
            parts.append(data)
            got += len(data)
        if got < size:
            raise EOFError("the server closed the channel")
        return b"".join(parts)
