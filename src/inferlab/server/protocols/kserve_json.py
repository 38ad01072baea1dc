"""KServe V2 / Open Inference Protocol JSON bodies (and the binary extension's header) <-> messages.

Syntax only: JSON into numpy arrays of the declared datatype, and back. Whether the tensors fit the
model is the service's job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from inferlab.errors import InvalidInput
from inferlab.messages import InferRequest, InferResponse
from inferlab.server.protocols.kserve_binary import BinarySegments, array_from_raw, raw_from_array
from inferlab.server.web import json_object
from inferlab.tensors import Array, v2_datatype, v2_dtype


@dataclass(frozen=True, slots=True)
class OutputOptions:
    """What the client asked of the outputs: top-k `classification` counts, and binary encoding per output."""

    classification: dict[str, int] = field(default_factory=dict)
    binary: dict[str, bool] = field(default_factory=dict)
    binary_default: bool = False

    def is_binary(self, name: str) -> bool:
        return self.binary.get(name, self.binary_default)


def decode_request(
    body: bytes | memoryview, model: str, version: str | None, header_length: int | None = None
) -> tuple[InferRequest, OutputOptions]:
    """Parse a V2 infer body; `header_length` splits off a binary-extension tail holding raw tensor data."""
    if header_length is None:
        header, segments = body, None
    elif header_length > len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length {header_length} is larger than the {len(body)}-byte body"
        )
    else:
        header, segments = body[:header_length], BinarySegments(memoryview(body)[header_length:])
    doc = json_object(header)
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    inputs: dict[str, Array] = {}
    for tensor in raw_inputs:
        name, array = decode_tensor(tensor, segments)
        if name in inputs:
            raise InvalidInput(f"input '{name}' is given more than once")
        inputs[name] = array
    if segments is not None:
        segments.finish()
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput("'parameters' must be a JSON object")
    outputs, options = _requested_outputs(doc.get("outputs"), bool(parameters.get("binary_data_output", False)))
    request_id = doc.get("id")
    return (
        InferRequest(
            model=model,
            version=version,
            inputs=inputs,
            outputs=outputs,
            id=None if request_id is None else str(request_id),
            parameters=parameters,
        ),
        options,
    )


def decode_tensor(tensor: Any, segments: BinarySegments | None = None) -> tuple[str, Array]:
    """One `{"name", "shape", "datatype", "data"}` object into (name, array of that shape).

    With the binary extension, `parameters.binary_data_size` replaces `data` with the next raw segment.
    """
    if not isinstance(tensor, dict):
        raise InvalidInput(f"each input must be an object with name, shape, datatype, data; got {tensor!r:.80}")
    name = tensor.get("name")
    if not isinstance(name, str):
        raise InvalidInput("an input has no 'name' string")
    shape = _shape(name, tensor.get("shape"))
    dtype = v2_dtype(tensor.get("datatype"))
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if segments is None:
            raise InvalidInput(f"input '{name}' has binary_data_size but no Inference-Header-Content-Length header")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInput(f"input '{name}': binary_data_size must be a non-negative integer, got {size!r}")
        return name, array_from_raw(name, tensor["datatype"], shape, segments.take(name, size))
    if "data" not in tensor:
        raise InvalidInput(f"input '{name}' has no 'data'")
    data = tensor["data"]
    try:
        if dtype.kind == "O":
            array = np.array([_as_bytes(v) for v in _flatten(data)], dtype=object)
        else:
            array = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(
            f"input '{name}': data is not a (nested) list of {tensor['datatype']} values: {exc}"
        ) from None
    expected = math.prod(shape)
    if array.size != expected:
        raise InvalidInput(
            f"input '{name}': shape {list(shape)} needs {expected} values, but data has {array.size}"
        )
    return name, array.reshape(shape)


def encode_response(response: InferResponse) -> bytes:
    """A V2 response body; arrays go out flat, row-major."""
    doc: dict[str, Any] = {
        "model_name": response.model,
        "model_version": response.version,
        "outputs": [encode_tensor(name, array) for name, array in response.outputs.items()],
    }
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def encode_binary_response(response: InferResponse, options: OutputOptions) -> tuple[bytes, int]:
    """A V2 response with the binary extension: JSON header, then the raw bytes of each binary output.

    Returns the body and the header length for `Inference-Header-Content-Length`.
    """
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, array in response.outputs.items():
        if options.is_binary(name):
            blob = raw_from_array(array)
            tensors.append({
                "name": name, "datatype": v2_datatype(array.dtype), "shape": list(array.shape),
                "parameters": {"binary_data_size": len(blob)},
            })
            blobs.append(blob)
        else:
            tensors.append(encode_tensor(name, array))
    doc: dict[str, Any] = {"model_name": response.model, "model_version": response.version, "outputs": tensors}
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    return b"".join([header, *blobs]), len(header)


def encode_tensor(name: str, array: Array) -> dict[str, Any]:
    return {"name": name, "datatype": v2_datatype(array.dtype), "shape": list(array.shape), "data": json_data(array)}


def json_data(array: Array) -> Any:
    """Flat data orjson can write: numpy where it can (fast path), lists for BYTES and FP16."""
    flat = array.reshape(-1)
    if flat.dtype.kind in "OSU":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    if flat.dtype == np.float16:
        return flat.astype(np.float32)
    return np.ascontiguousarray(flat)


def _shape(name: str, raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw):
        raise InvalidInput(f"input '{name}': 'shape' must be a list of non-negative integers, got {raw!r:.80}")
    return tuple(raw)


def _requested_outputs(raw: Any, binary_default: bool) -> tuple[list[str] | None, OutputOptions]:
    if raw is None:
        return None, OutputOptions(binary_default=binary_default)
    if not isinstance(raw, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in raw):
        raise InvalidInput("'outputs' must be a list of objects with a 'name'")
    classification: dict[str, int] = {}
    binary: dict[str, bool] = {}
    for o in raw:
        parameters = o.get("parameters") or {}
        count = parameters.get("classification")
        if count is not None:
            if isinstance(count, bool) or not isinstance(count, int):
                raise InvalidInput(f"output '{o['name']}': classification must be an integer, got {count!r}")
            classification[o["name"]] = count
        if "binary_data" in parameters:
            binary[o["name"]] = bool(parameters["binary_data"])
    return [o["name"] for o in raw] or None, OutputOptions(classification, binary, binary_default)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item)) if isinstance(item, list) else out.append(item)
    return out


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"BYTES elements must be strings, got {type(value).__name__}")
