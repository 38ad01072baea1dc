"""Length-prefixed pickle frames over the socket between the server and one worker process.

Both ends are our own code (the worker runs the user's handler, which is trusted as the server's
operator deployed it), so pickle is acceptable and keeps numpy arrays cheap to move. The server side
is asyncio streams; the worker side is a blocking socket shared by the handler threads under a lock.

Frames are tuples whose first item names the kind:

    server -> worker  ("invoke", inv_id, Request)   ("model_ok", call_id, outputs)
                      ("model_error", call_id, error_class, message)   ("stop",)
    worker -> server  ("ready",)   ("failed", message)   ("log", text)
                      ("result", inv_id, Response, handler_s, marks)   ("error", inv_id, error_class, message)
                      ("infer", inv_id, call_id, model, version, inputs, outputs)
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
import threading
from typing import Any

_HEADER = struct.Struct("!Q")


def encode_frame(message: tuple[Any, ...]) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    """The next frame; asyncio.IncompleteReadError when the worker is gone."""
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    message: tuple[Any, ...] = pickle.loads(await reader.readexactly(size))
    return message


class BlockingChannel:
    """The worker's end: one reader (the main thread) and any number of writers (handler threads)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        frame = encode_frame(message)
        with self._lock:
            self._sock.sendall(frame)

    def receive(self) -> tuple[Any, ...]:
        """The next frame; EOFError when the server closed its end."""
        (size,) = _HEADER.unpack(self._read(_HEADER.size))
        message: tuple[Any, ...] = pickle.loads(self._read(size))
        return message

    def _read(self, size: int) -> bytearray:
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            n = self._sock.recv_into(view[got:])
            if n == 0:
                raise EOFError("the server closed the channel")
            got += n
        return buffer
