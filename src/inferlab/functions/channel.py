"""Pickle frames with out-of-band buffers over the socket between the server and one worker process.

Both ends are our own code (the worker runs the handler the server's operator deployed), so pickle
is acceptable. Large data never goes through the pickle stream: numpy arrays, and bodies wrapped in
`pickle.PickleBuffer`, travel as protocol-5 out-of-band buffers written straight from their memory
(in-band pickling of a 1.6 MB body costs ~2 ms; out of band, ~0.1 ms). The server side is asyncio
streams; the worker side is a blocking socket shared by the handler threads under a lock.

A frame is: payload length, buffer count (!QI), each buffer's length (!Q), the pickle, the buffers.
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
from typing import Any

_HEAD = struct.Struct("!QI")
_LENGTH = struct.Struct("!Q")
_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
# asyncio pauses a stream whose buffer passes twice its limit (64 KiB by default); a tensor of a few
# MB would then cross in dozens of pause/resume round trips, so the server's reader gets a large one.
READ_BUFFER_BYTES = 64 * 1024 * 1024

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


def write_frame(writer: asyncio.StreamWriter, message: tuple[Any, ...]) -> None:
    writer.writelines(encode_frame(message))


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    """The next frame; asyncio.IncompleteReadError when the worker is gone."""
    size, count = _HEAD.unpack(await reader.readexactly(_HEAD.size))
    lengths = [_LENGTH.unpack(await reader.readexactly(_LENGTH.size))[0] for _ in range(count)]
    payload = await reader.readexactly(size)
    buffers = [await reader.readexactly(n) for n in lengths]
    message: tuple[Any, ...] = pickle.loads(payload, buffers=buffers)
    return message


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
