"""Hand-written clients for every protocol and encoding, so the tests exercise the wire formats themselves."""

from __future__ import annotations

import json
import struct
from typing import Any

import grpc
import httpx
import numpy as np
import numpy.typing as npt
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from inferlab.server.proto import inference_pb2 as pb
from inferlab.server.proto import inference_pb2_grpc as pb_grpc
from inferlab.tensors import v2_datatype

Array = npt.NDArray[Any]
Arrays = dict[str, Array]


def v2_json(http: httpx.Client, grpc_target: str, model: str, inputs: Arrays) -> Arrays:
    body = {"inputs": [
        {"name": n, "shape": list(a.shape), "datatype": v2_datatype(a.dtype), "data": a.reshape(-1).tolist()}
        for n, a in inputs.items()
    ]}
    reply = http.post(f"/v2/models/{model}/infer", json=body)
    assert reply.status_code == 200, reply.text
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in reply.json()["outputs"]}


def binary_body(inputs: Arrays, binary_outputs: bool = True) -> tuple[bytes, int]:
    """A V2 binary-extension request: JSON header, then each input's raw little-endian bytes."""
    header = {"inputs": [
        {"name": n, "shape": list(a.shape), "datatype": v2_datatype(a.dtype),
         "parameters": {"binary_data_size": a.nbytes}}
        for n, a in inputs.items()
    ], "parameters": {"binary_data_output": binary_outputs}}
    head = json.dumps(header).encode()
    return head + b"".join(np.ascontiguousarray(a).tobytes() for a in inputs.values()), len(head)


def split_binary_response(reply: httpx.Response) -> Arrays:
    length = int(reply.headers["inference-header-content-length"])
    header = json.loads(reply.content[:length])
    out: Arrays = {}
    offset = length
    for o in header["outputs"]:
        size = o["parameters"]["binary_data_size"]
        raw = reply.content[offset:offset + size]
        offset += size
        out[o["name"]] = decode_raw(o["datatype"], o["shape"], raw)
    return out


def decode_raw(datatype: str, shape: list[int], raw: bytes) -> Array:
    if datatype == "BYTES":
        items, offset = [], 0
        while offset < len(raw):
            (n,) = struct.unpack_from("<I", raw, offset)
            items.append(raw[offset + 4:offset + 4 + n])
            offset += 4 + n
        return np.array(items, dtype=object).reshape(shape)
    dtype = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}[datatype]
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def v2_binary(http: httpx.Client, grpc_target: str, model: str, inputs: Arrays) -> Arrays:
    body, length = binary_body(inputs)
    reply = http.post(f"/v2/models/{model}/infer", content=body,
                      headers={"Inference-Header-Content-Length": str(length),
                               "Content-Type": "application/octet-stream"})
    assert reply.status_code == 200, reply.text
    return split_binary_response(reply)


def grpc_request(model: str, inputs: Arrays, raw: bool) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    for name, array in inputs.items():
        tensor = request.inputs.add(name=name, datatype=v2_datatype(array.dtype), shape=array.shape)
        if raw:
            request.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
        else:
            field = {"FP32": "fp32_contents", "INT64": "int64_contents"}[tensor.datatype]
            getattr(tensor.contents, field).extend(array.reshape(-1).tolist())
    return request


def grpc_outputs(reply: pb.ModelInferResponse) -> Arrays:
    out: Arrays = {}
    for i, o in enumerate(reply.outputs):
        if reply.raw_output_contents:
            out[o.name] = decode_raw(o.datatype, list(o.shape), reply.raw_output_contents[i])
        else:
            out[o.name] = np.asarray(o.contents.fp32_contents, dtype=np.float32).reshape(list(o.shape))
    return out


def _grpc(grpc_target: str, model: str, inputs: Arrays, raw: bool) -> Arrays:
    with grpc.insecure_channel(grpc_target) as channel:
        reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(grpc_request(model, inputs, raw), timeout=30)
    assert bool(reply.raw_output_contents) == raw  # answered in the form it was asked
    return grpc_outputs(reply)


def grpc_typed(http: httpx.Client, grpc_target: str, model: str, inputs: Arrays) -> Arrays:
    return _grpc(grpc_target, model, inputs, raw=False)


def grpc_raw(http: httpx.Client, grpc_target: str, model: str, inputs: Arrays) -> Arrays:
    return _grpc(grpc_target, model, inputs, raw=True)


def tfs_row(http: httpx.Client, grpc_target: str, model: str, inputs: Arrays) -> Arrays:
    batch = len(next(iter(inputs.values())))
    if len(inputs) == 1:
        instances: list[Any] = next(iter(inputs.values())).tolist()
    else:
        instances = [{n: a[i].tolist() for n, a in inputs.items()} for i in range(batch)]
    reply = http.post(f"/v1/models/{model}:predict", json={"signature_name": "serving_default", "instances": instances})
    assert reply.status_code == 200, reply.text
    predictions = reply.json()["predictions"]
    if isinstance(predictions[0], dict):
        return {n: np.asarray([p[n] for p in predictions]) for n in predictions[0]}
    return {"*": np.asarray(predictions)}


def tfs_columnar(http: httpx.Client, grpc_target: str, model: str, inputs: Arrays) -> Arrays:
    reply = http.post(f"/v1/models/{model}/versions/1:predict",
                      json={"inputs": {n: a.tolist() for n, a in inputs.items()}})
    assert reply.status_code == 200, reply.text
    outputs = reply.json()["outputs"]
    return {n: np.asarray(v) for n, v in outputs.items()} if isinstance(outputs, dict) else {"*": np.asarray(outputs)}


def tfaas_json(http: httpx.Client, grpc_target: str, model: str, inputs: Arrays) -> Arrays:
    """TFaaS predicts one row per request; the rows are sent one by one and stacked."""
    (array,) = inputs.values()
    rows = []
    for row in array:
        reply = http.post("/json", json={"keys": [], "values": row.reshape(-1).tolist(), "model": model})
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == "application/json"
        rows.append(reply.json())
    return {"*": np.asarray(rows)}


def triton_http_json(http: httpx.Client, grpc_target: str, model: str, inputs: Arrays) -> Arrays:
    return _triton_http(http, model, inputs, binary=False)


def triton_http_binary(http: httpx.Client, grpc_target: str, model: str, inputs: Arrays) -> Arrays:
    return _triton_http(http, model, inputs, binary=True)


_TRITON_HTTP: dict[str, triton_http.InferenceServerClient] = {}


def triton_http_client(base_url: str) -> triton_http.InferenceServerClient:
    """One tritonclient.http client per server for the whole run.

    Its gevent pool must be joined on the thread that made it; a client garbage-collected on the
    server's thread raises in `__del__`. Kept alive here, they are closed at exit on the main thread.
    """
    address = base_url.removeprefix("http://").rstrip("/")
    if address not in _TRITON_HTTP:
        _TRITON_HTTP[address] = triton_http.InferenceServerClient(address)
    return _TRITON_HTTP[address]


def _triton_http(http: httpx.Client, model: str, inputs: Arrays, binary: bool) -> Arrays:
    client = triton_http_client(str(http.base_url))
    tensors = []
    for name, array in inputs.items():
        tensor = triton_http.InferInput(name, list(array.shape), v2_datatype(array.dtype))
        tensor.set_data_from_numpy(array, binary_data=binary)
        tensors.append(tensor)
    result = client.infer(model, tensors)
    return {o["name"]: result.as_numpy(o["name"]) for o in result.get_response()["outputs"]}


def triton_grpc_raw(http: httpx.Client, grpc_target: str, model: str, inputs: Arrays) -> Arrays:
    client = triton_grpc.InferenceServerClient(grpc_target)
    try:
        tensors = []
        for name, array in inputs.items():
            tensor = triton_grpc.InferInput(name, list(array.shape), v2_datatype(array.dtype))
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        result = client.infer(model, tensors)
        return {o.name: result.as_numpy(o.name) for o in result.get_response().outputs}
    finally:
        client.close()
