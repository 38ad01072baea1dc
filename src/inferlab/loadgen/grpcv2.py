"""V2 gRPC (GRPCInferenceService) for the generator: hand-encoded requests and a slot with the Connection interface.

Requests are serialised once, before the run, straight to protobuf wire bytes (the messages are small
and stable), and sent through grpcio's generic byte-in/byte-out call, so no stubs or protobuf runtime
sit on the hot path and the generator stays independent of any server package. A `GrpcSlot` is one
channel (one HTTP/2 connection) carrying one call at a time, so `-c` means the same as for HTTP/1.1.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from inferlab.loadgen.http1 import Exchange, OnComplete, OnLost

SERVICE = "/inference.GRPCInferenceService/"

#: gRPC status -> the HTTP status with the same meaning, so reports treat both protocols alike.
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409, grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
}


def encode_infer_request(model: str, version: str | None, tensors: dict[str, npt.NDArray[Any]],
                         datatypes: dict[str, str]) -> bytes:
    """A ModelInferRequest with every input in `raw_input_contents` (little-endian bytes), as wire bytes."""
    out = _string(1, model) + (_string(2, version) if version else b"")
    for name, array in tensors.items():
        shape = b"".join(_varint(d) for d in array.shape)
        tensor = _string(1, name) + _string(2, datatypes[name]) + _field(3, shape)
        out += _field(5, tensor)
    for array in tensors.values():
        out += _field(7, np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())
    return out


def encode_metadata_request(model: str, version: str | None) -> bytes:
    return _string(1, model) + (_string(2, version) if version else b"")


def decode_metadata_inputs(data: bytes) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, datatype, shape) of each input in a ModelMetadataResponse."""
    inputs = []
    for number, value in _fields(data):
        if number == 4 and isinstance(value, bytes):
            name = datatype = ""
            shape: list[int] = []
            for n, v in _fields(value):
                if n == 1 and isinstance(v, bytes):
                    name = v.decode()
                elif n == 2 and isinstance(v, bytes):
                    datatype = v.decode()
                elif n == 3:
                    shape.extend(_signed(x) for x in (_packed(v) if isinstance(v, bytes) else [v]))
            inputs.append((name, datatype, tuple(shape)))
    return inputs


class GrpcSlot:
    """One channel carrying one unary call at a time; calls back like `http1.Connection`.

    Example (inside a running loop):
        >>> slot = await GrpcSlot.connect("127.0.0.1:8001", "ModelInfer", on_complete, on_lost, timeout_s=20)
        >>> slot.send(Exchange(0, perf_counter()), request_bytes)
    """

    def __init__(self, channel: grpc.aio.Channel, method: str, on_complete: OnComplete, on_lost: OnLost,
                 timeout_s: float) -> None:
        self._channel = channel
        self._call = channel.unary_unary(SERVICE + method)  # no (de)serialisers: bytes in, bytes out
        self._on_complete = on_complete
        self._on_lost = on_lost
        self._timeout = timeout_s or None
        self._task: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self.exchange: Exchange | None = None
        self.open = True

    @classmethod
    async def connect(cls, address: str, method: str, on_complete: OnComplete, on_lost: OnLost,
                      timeout_s: float) -> GrpcSlot:
        channel = grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout_s or None)
        except BaseException:
            await channel.close()
            raise
        return cls(channel, method, on_complete, on_lost, timeout_s)

    def send(self, exchange: Exchange, request: bytes) -> None:
        self.exchange = exchange
        exchange.sent = exchange.written = perf_counter()
        exchange.bytes_out = len(request)
        self._task = asyncio.get_running_loop().create_task(self._run(exchange, request))

    async def _run(self, ex: Exchange, request: bytes) -> None:
        call = self._call(request, timeout=self._timeout)
        try:
            reply = await call
            ex.first_byte = ex.done = perf_counter()
            ex.status = 200
            ex.bytes_in = len(reply)
        except grpc.aio.AioRpcError as exc:
            ex.first_byte = ex.done = perf_counter()
            code = exc.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                ex.fail("timeout", f"no reply within {self._timeout:g} s")
            else:
                ex.status = _HTTP_STATUS.get(code, 500)
                ex.error = f"HTTP {ex.status} (gRPC {code.name}: {exc.details()})"
        timing = dict(await call.trailing_metadata() or ()).get("server-timing")
        if timing:
            ex.server_timing = timing.encode() if isinstance(timing, str) else bytes(timing)
        self.exchange = None
        self._on_complete(self, ex)

    def abort(self, kind: str, message: str) -> None:
        ex = self.exchange
        if self._task is not None and ex is not None:
            self._task.cancel()
            ex.fail(kind, message)
            self.exchange = None
            self.close()  # lost links are not closed at the end of the run: close its channel now
            self._on_lost(self, ex)

    def close(self) -> None:
        self.open = False
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._channel.close())

    async def wait_closed(self) -> None:
        if self._closing is not None:
            await self._closing


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values are ten-byte two's complement on the wire
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string(number: int, text: str) -> bytes:
    return _field(number, text.encode())


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = _read_varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _read_varint(data, at)
            out.append((number, value))
        elif wire == 2:
            length, at = _read_varint(data, at)
            out.append((number, data[at:at + length]))
            at += length
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def _packed(data: bytes) -> list[int]:
    values, at = [], 0
    while at < len(data):
        value, at = _read_varint(data, at)
        values.append(value)
    return values


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value
