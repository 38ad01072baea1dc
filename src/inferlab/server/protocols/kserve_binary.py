"""KServe V2 binary tensor data: raw bytes <-> numpy, shared by the HTTP binary extension and gRPC raw contents.

Layout (both transports): little-endian, row-major, no padding; BOOL is one byte per element; BYTES
elements are a 4-byte little-endian length followed by the bytes. Numeric tensors decode with
`np.frombuffer` (no copy unless the buffer is misaligned for the dtype).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping

import numpy as np

from inferlab.errors import InvalidInput
from inferlab.messages import InferRequest
from inferlab.tensors import Array, TensorSpec, v2_dtype

HEADER = "inference-header-content-length"
_LENGTH = struct.Struct("<I")


def array_from_raw(name: str, datatype: str, shape: tuple[int, ...], raw: bytes | memoryview) -> Array:
    """One tensor's raw bytes as an array of `shape`; InvalidInput when the byte count does not fit."""
    dtype = v2_dtype(datatype)
    count = math.prod(shape)
    if dtype.kind == "O":
        items = split_bytes(name, raw)
        if len(items) != count:
            raise InvalidInput(f"input '{name}': shape {list(shape)} needs {count} BYTES elements, got {len(items)}")
        array = np.empty(count, dtype=object)
        array[:] = items
        return array.reshape(shape)
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidInput(
            f"input '{name}': shape {list(shape)} of {datatype} needs {expected} bytes, got {len(raw)}"
        )
    array = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape)
    return array if array.flags.aligned else array.copy()


def raw_from_array(array: Array) -> bytes:
    """An array's raw bytes in the V2 layout."""
    if array.dtype.kind in "OSU":
        return join_bytes(array.reshape(-1))
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def split_bytes(name: str, raw: bytes | memoryview) -> list[bytes]:
    """Length-prefixed BYTES elements into a list; a truncated element is an error, not silently dropped."""
    view = memoryview(raw)
    items: list[bytes] = []
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise InvalidInput(f"input '{name}': BYTES data ends inside a 4-byte length prefix")
        (size,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + size > len(view):
            raise InvalidInput(f"input '{name}': BYTES element of {size} bytes runs past the end of the data")
        items.append(bytes(view[offset:offset + size]))
        offset += size
    return items


def join_bytes(items: Iterable[object]) -> bytes:
    parts: list[bytes] = []
    for item in items:
        data = item if isinstance(item, bytes) else str(item).encode()
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


class BinarySegments:
    """The binary tail of an HTTP request, handed out in input order by each input's `binary_data_size`."""

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._offset = 0

    def take(self, name: str, size: int) -> memoryview:
        end = self._offset + size
        if end > len(self._data):
            raise InvalidInput(
                f"input '{name}': binary_data_size {size} runs past the end of the body "
                f"({len(self._data) - self._offset} binary bytes left)"
            )
        segment = self._data[self._offset:end]
        self._offset = end
        return segment

    def finish(self) -> None:
        left = len(self._data) - self._offset
        if left:
            raise InvalidInput(f"the body has {left} binary bytes that no input's binary_data_size accounts for")


def header_length(headers: Mapping[str, str]) -> int | None:
    """The `Inference-Header-Content-Length` value, None when absent (a plain JSON request)."""
    value = headers.get(HEADER)
    if value is None:
        return None
    if not value.strip().isdigit():
        raise InvalidInput(f"Inference-Header-Content-Length {value!r} is not a non-negative integer")
    return int(value)


def decode_raw_request(
    body: bytes | memoryview, model: str, version: str | None, specs: tuple[TensorSpec, ...]
) -> InferRequest:
    """The raw binary request form: the whole body is the model's single input, batch 1.

    The input's one variable dimension (a leading batch dimension counts as 1) is inferred from the
    body length.
    """
    if len(specs) != 1:
        raise InvalidInput(
            f"a raw binary request (Inference-Header-Content-Length: 0) needs a model with one input; "
            f"'{model}' has {[s.name for s in specs]}"
        )
    spec = specs[0]
    shape = list(spec.shape)
    if shape.count(-1) > 1 and shape[0] == -1:
        shape[0] = 1
    if shape.count(-1) > 1:
        raise InvalidInput(
            f"a raw binary request needs an input with at most one variable dimension; '{spec.name}' has {shape}"
        )
    if -1 in shape:
        dtype = v2_dtype(spec.datatype)
        if dtype.kind == "O":
            shape[shape.index(-1)] = len(split_bytes(spec.name, body))
        else:
            known = math.prod(d for d in shape if d != -1) * dtype.itemsize
            if known == 0 or len(body) % known:
                raise InvalidInput(
                    f"input '{spec.name}': a raw body of {len(body)} bytes is not a whole number of "
                    f"{spec.datatype} {spec.shape} rows ({known} bytes each)"
                )
            shape[shape.index(-1)] = len(body) // known
    array = array_from_raw(spec.name, spec.datatype, tuple(shape), body)
    return InferRequest(model=model, version=version, inputs={spec.name: array})
