"""The foundation's bad-input cases, repeated for every protocol: a clear 4xx / gRPC status, and the server goes on."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from inferlab.server.proto import inference_pb2 as pb
from inferlab.server.proto import inference_pb2_grpc as pb_grpc
from tests.conftest import SHARED_MODELS
from tests.protocols.wire import binary_body, grpc_request, v2_json

ROW = np.zeros((1, 64), dtype=np.float32)
TRUNCATED_ONNX = (SHARED_MODELS / "digits_mlp.onnx").read_bytes()[:5000]
OVERSIZED = 9 * 1024 * 1024  # the live server allows 8 MiB over HTTP and gRPC


def _v2(data: Any, shape: list[int], datatype: str = "FP32", name: str = "input") -> dict[str, Any]:
    return {"json": {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}}


def _binary(array: Any, shape: list[int] | None = None, datatype: str | None = None, name: str = "input",
            extra: bytes = b"") -> dict[str, Any]:
    body, length = binary_body({name: array})
    header = json.loads(body[:length])
    if shape is not None:
        header["inputs"][0]["shape"] = shape
    if datatype is not None:
        header["inputs"][0]["datatype"] = datatype
    head = json.dumps(header).encode()
    return {"content": head + body[length:] + extra, "headers": {"Inference-Header-Content-Length": str(len(head))}}


def _bundle(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


V2 = "/v2/models/digits/infer"
TFS = "/v1/models/digits:predict"
HTTP_CASES = [
    # KServe V2 JSON
    ("v2-malformed-json", "POST", V2, {"content": b'{"inputs": ['}, 400, "not valid JSON"),
    ("v2-wrong-shape", "POST", V2, _v2([0.0] * 63, [1, 63]), 400, "expected shape [-1, 64]"),
    ("v2-wrong-datatype", "POST", V2, _v2([0] * 64, [1, 64], "INT64"), 400, "expected datatype FP32"),
    ("v2-length-mismatch", "POST", V2, _v2([0.0] * 10, [1, 64]), 400, "needs 64 values"),
    ("v2-unknown-input", "POST", V2, _v2([0.0] * 64, [1, 64], name="pixels"), 400, "unknown input 'pixels'"),
    ("v2-unknown-model", "POST", "/v2/models/nope/infer", _v2([0.0] * 64, [1, 64]), 404, "'nope'"),
    ("v2-unknown-version", "POST", "/v2/models/digits/versions/9/infer", _v2([0.0] * 64, [1, 64]), 404, "version 9"),
    ("v2-dotdot-name", "POST", "/v2/models/%2E%2E/infer", _v2([0.0] * 64, [1, 64]), 400, "invalid model name"),
    ("v2-oversized", "POST", V2, {"content": b" " * OVERSIZED}, 413, "over the server's limit"),
    # KServe V2 binary tensors
    ("bin-malformed-header", "POST", V2, {"content": b"{nope" + ROW.tobytes(),
                                          "headers": {"Inference-Header-Content-Length": "5"}}, 400, "not valid JSON"),
    ("bin-header-too-long", "POST", V2, {"content": b"{}", "headers": {"Inference-Header-Content-Length": "99"}},
     400, "larger than the 2-byte body"),
    ("bin-wrong-shape", "POST", V2, _binary(np.zeros((1, 63), np.float32)), 400, "expected shape [-1, 64]"),
    ("bin-wrong-datatype", "POST", V2, _binary(np.zeros((1, 64), np.int64)), 400, "expected datatype FP32"),
    ("bin-length-mismatch", "POST", V2, _binary(np.zeros((1, 60), np.float32), shape=[1, 64]), 400,
     "needs 256 bytes, got 240"),
    ("bin-trailing-bytes", "POST", V2, _binary(ROW, extra=b"xx"), 400, "2 binary bytes"),
    ("bin-unknown-input", "POST", V2, _binary(ROW, name="pixels"), 400, "unknown input 'pixels'"),
    ("bin-unknown-model", "POST", "/v2/models/nope/infer", _binary(ROW), 404, "'nope'"),
    ("bin-raw-bad-length", "POST", V2, {"content": b"x" * 100, "headers": {"Inference-Header-Content-Length": "0"}},
     400, "not a whole number"),
    ("bin-bad-header-value", "POST", V2, {"content": b"{}", "headers": {"Inference-Header-Content-Length": "ten"}},
     400, "not a non-negative integer"),
    # TF Serving REST
    ("tfs-malformed-json", "POST", TFS, {"content": b"{instances"}, 400, "not valid JSON"),
    ("tfs-wrong-shape", "POST", TFS, {"json": {"instances": [[0.0] * 63]}}, 400, "expected shape [-1, 64]"),
    ("tfs-wrong-datatype", "POST", TFS, {"json": {"instances": [["a"] * 64]}}, 400, "FP32 values"),
    ("tfs-ragged-rows", "POST", TFS, {"json": {"instances": [[0.0] * 64, [0.0] * 10]}}, 400, "one shape"),
    ("tfs-unknown-input", "POST", TFS, {"json": {"inputs": {"pixels": [[0.0] * 64]}}}, 400, "unknown input 'pixels'"),
    ("tfs-unknown-model", "POST", "/v1/models/nope:predict", {"json": {"instances": [[0.0] * 64]}}, 404, "'nope'"),
    ("tfs-unknown-version", "POST", "/v1/models/digits/versions/9:predict", {"json": {"instances": [[0.0] * 64]}},
     404, "version 9"),
    ("tfs-dotdot-name", "POST", "/v1/models/%2E%2E:predict", {"json": {"instances": [[0.0] * 64]}}, 400,
     "invalid model name"),
    ("tfs-both-forms", "POST", TFS, {"json": {"instances": [[0.0] * 64], "inputs": [[0.0] * 64]}}, 400,
     "exactly one of"),
    ("tfs-signature", "POST", TFS, {"json": {"signature_name": "other", "instances": [[0.0] * 64]}}, 400,
     "unknown signature_name"),
    ("tfs-oversized", "POST", TFS, {"content": b" " * OVERSIZED}, 413, "over the server's limit"),
    # TFaaS
    ("tfaas-malformed-json", "POST", "/json", {"content": b"{keys"}, 400, "not valid JSON"),
    ("tfaas-wrong-length", "POST", "/json", {"json": {"values": [0.0] * 63, "model": "digits"}}, 400,
     "63 values do not fit"),
    ("tfaas-wrong-datatype", "POST", "/json", {"json": {"values": ["x"] * 64, "model": "digits"}}, 400,
     "values do not fit"),
    ("tfaas-no-values", "POST", "/json", {"json": {"keys": ["a"], "model": "digits"}}, 400, "'values'"),
    ("tfaas-unknown-model", "POST", "/json", {"json": {"values": [0.0] * 64, "model": "nope"}}, 404, "'nope'"),
    ("tfaas-dotdot-name", "POST", "/json", {"json": {"values": [0.0] * 64, "model": "../digits"}}, 400,
     "invalid model name"),
    ("tfaas-oversized", "POST", "/json", {"content": b" " * OVERSIZED}, 413, "over the server's limit"),
    ("tfaas-truncated-onnx", "POST", "/upload", {"files": {"model": ("broken.onnx", TRUNCATED_ONNX)}}, 400,
     "not a loadable ONNX model"),
    ("tfaas-upload-dotdot-name", "POST", "/upload",
     {"files": {"model": ("m.onnx", TRUNCATED_ONNX)}, "data": {"name": "../evil"}}, 400, "invalid model name"),
    ("tfaas-upload-slash-name", "POST", "/upload",
     {"files": {"model": ("m.onnx", TRUNCATED_ONNX)}, "data": {"name": "a/b"}}, 400, "invalid model name"),
    ("tfaas-bundle-escape", "POST", "/upload", {"content": _bundle("../../evil.onnx", b"x")}, 400,
     "outside the bundle"),
    ("tfaas-bundle-not-tar", "POST", "/upload", {"content": b"plain bytes"}, 400, "tar/tar.gz"),
    ("tfaas-image-not-image", "POST", "/image", {"files": {"image": ("x.png", b"nope")},
                                                 "data": {"model": "mobilenet_v2"}}, 400, "not an image"),
    ("tfaas-delete-unknown", "DELETE", "/delete/nope", {}, 404, "'nope'"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "fragment"),
                         [pytest.param(*case[1:], id=case[0]) for case in HTTP_CASES])
def test_http_bad_input_is_a_clear_4xx(
    http: httpx.Client, grpc_target: str, method: str, path: str, kwargs: dict[str, Any], status: int, fragment: str
) -> None:
    reply = http.request(method, path, **kwargs)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert fragment in reply.json()["error"]
    _still_serving(http, grpc_target)


def _raw(array: Any, **changes: Any) -> pb.ModelInferRequest:
    request = grpc_request("digits", {"input": array}, raw=True)
    for key, value in changes.items():
        if key in ("model_name", "model_version"):
            setattr(request, key, value)
        elif key == "shape":
            del request.inputs[0].shape[:]
            request.inputs[0].shape.extend(value)
        else:
            setattr(request.inputs[0], key, value)
    return request


GRPC_CASES = [
    ("typed-wrong-shape", grpc_request("digits", {"input": np.zeros((1, 63), np.float32)}, raw=False),
     grpc.StatusCode.INVALID_ARGUMENT, "expected shape [-1, 64]"),
    ("typed-wrong-datatype", grpc_request("digits", {"input": np.zeros((1, 64), np.int64)}, raw=False),
     grpc.StatusCode.INVALID_ARGUMENT, "expected datatype FP32"),
    ("typed-length-mismatch", pb.ModelInferRequest(model_name="digits", inputs=[pb.ModelInferRequest.InferInputTensor(
        name="input", datatype="FP32", shape=[1, 64], contents=pb.InferTensorContents(fp32_contents=[0.0] * 10))]),
     grpc.StatusCode.INVALID_ARGUMENT, "needs 64 values"),
    ("typed-unknown-input", grpc_request("digits", {"pixels": ROW}, raw=False),
     grpc.StatusCode.INVALID_ARGUMENT, "unknown input 'pixels'"),
    ("typed-unknown-datatype", _raw(ROW, datatype="FLOAT"), grpc.StatusCode.INVALID_ARGUMENT, "unknown datatype"),
    ("raw-wrong-shape", _raw(np.zeros((1, 63), np.float32)), grpc.StatusCode.INVALID_ARGUMENT, "expected shape"),
    ("raw-wrong-datatype", _raw(np.zeros((1, 64), np.int64)), grpc.StatusCode.INVALID_ARGUMENT, "expected datatype"),
    ("raw-length-mismatch", _raw(np.zeros((1, 60), np.float32), shape=[1, 64]), grpc.StatusCode.INVALID_ARGUMENT,
     "needs 256 bytes, got 240"),
    ("raw-unknown-input", grpc_request("digits", {"pixels": ROW}, raw=True), grpc.StatusCode.INVALID_ARGUMENT,
     "unknown input 'pixels'"),
    ("raw-count-mismatch", pb.ModelInferRequest(model_name="digits", raw_input_contents=[ROW.tobytes()]),
     grpc.StatusCode.INVALID_ARGUMENT, "1 entries for 0 inputs"),
    ("unknown-model", _raw(ROW, model_name="nope"), grpc.StatusCode.NOT_FOUND, "'nope'"),
    ("unknown-version", _raw(ROW, model_version="9"), grpc.StatusCode.NOT_FOUND, "version 9"),
    ("dotdot-name", _raw(ROW, model_name="../digits"), grpc.StatusCode.INVALID_ARGUMENT, "invalid model name"),
    ("slash-name", _raw(ROW, model_name="a/b"), grpc.StatusCode.INVALID_ARGUMENT, "invalid model name"),
    ("oversized", _raw(np.zeros((OVERSIZED // 256, 64), np.float32)), grpc.StatusCode.RESOURCE_EXHAUSTED,
     "larger than max"),
]


@pytest.mark.parametrize(("request_message", "code", "fragment"),
                         [pytest.param(*case[1:], id=case[0]) for case in GRPC_CASES])
def test_grpc_bad_input_is_a_clear_status(
    http: httpx.Client, grpc_target: str, request_message: pb.ModelInferRequest, code: grpc.StatusCode, fragment: str
) -> None:
    options = [("grpc.max_send_message_length", 2 * OVERSIZED)]
    with grpc.insecure_channel(grpc_target, options=options) as channel, pytest.raises(grpc.RpcError) as info:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request_message, timeout=30)
    assert info.value.code() == code
    assert fragment in info.value.details()
    _still_serving(http, grpc_target)


def test_grpc_malformed_protobuf_is_invalid_argument(http: httpx.Client, grpc_target: str) -> None:
    with grpc.insecure_channel(grpc_target) as channel, pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")(b"\xff\xff\xff not protobuf", timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid inference.ModelInferRequest" in info.value.details()
    _still_serving(http, grpc_target)


@pytest.mark.parametrize(("name", "code", "fragment"), [
    ("broken", grpc.StatusCode.INVALID_ARGUMENT, "not a loadable ONNX model"),
    ("../evil", grpc.StatusCode.INVALID_ARGUMENT, "invalid model name"),
])
def test_grpc_upload_of_bad_model_is_refused(
    http: httpx.Client, grpc_target: str, name: str, code: grpc.StatusCode, fragment: str
) -> None:
    request = pb.RepositoryModelLoadRequest(
        model_name=name, parameters={"file:1/model.onnx": pb.ModelRepositoryParameter(bytes_param=TRUNCATED_ONNX)}
    )
    with grpc.insecure_channel(grpc_target) as channel, pytest.raises(grpc.RpcError) as info:
        pb_grpc.GRPCInferenceServiceStub(channel).RepositoryModelLoad(request, timeout=30)
    assert info.value.code() == code
    assert fragment in info.value.details()
    _still_serving(http, grpc_target)


def _still_serving(http: httpx.Client, grpc_target: str) -> None:
    outputs = v2_json(http, grpc_target, "digits", {"input": ROW})
    assert outputs["probabilities"].shape == (1, 10)
    with grpc.insecure_channel(grpc_target) as channel:
        assert pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=10).live
