"""V2 gRPC load: hand-encoded messages checked against the official stubs, and a run against a real servicer."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from inferlab.loadgen.grpcv2 import decode_metadata_inputs, encode_infer_request
from inferlab.loadgen.launch import run
from inferlab.loadgen.payloads import model_target
from inferlab.loadgen.plan import LoadPlan


class Servicer:
    """ModelMetadata and ModelInfer over generic handlers; infer echoes the input's size, with Server-Timing."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def metadata(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        reply = service_pb2.ModelMetadataResponse(name="digits", inputs=[
            service_pb2.ModelMetadataResponse.TensorMetadata(name="input", datatype="FP32", shape=[-1, 64])])
        return reply.SerializeToString()

    def infer(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        message = service_pb2.ModelInferRequest.FromString(request)
        self.seen.append(message)
        if message.model_name != "digits":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such model")
        context.set_trailing_metadata([("server-timing", "queue;dur=0.5, infer;dur=1.25")])
        return service_pb2.ModelInferResponse(model_name=message.model_name).SerializeToString()


@pytest.fixture(scope="module")
def grpc_server() -> Iterator[tuple[str, Servicer]]:
    servicer = Servicer()
    handlers = {"ModelMetadata": grpc.unary_unary_rpc_method_handler(servicer.metadata),
                "ModelInfer": grpc.unary_unary_rpc_method_handler(servicer.infer)}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("inference.GRPCInferenceService",
                                                                          handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"grpc://127.0.0.1:{port}", servicer
    server.stop(0)


def test_hand_encoded_request_matches_the_official_message() -> None:
    tensor = np.arange(128, dtype=np.float32).reshape(2, 64)
    ids = np.array([[-1, 7]], dtype=np.int64)
    data = encode_infer_request("m", "3", {"input": tensor, "ids": ids}, {"input": "FP32", "ids": "INT64"})
    message = service_pb2.ModelInferRequest.FromString(data)
    assert (message.model_name, message.model_version) == ("m", "3")
    assert [(t.name, t.datatype, list(t.shape)) for t in message.inputs] == [("input", "FP32", [2, 64]),
                                                                              ("ids", "INT64", [1, 2])]
    assert np.array_equal(np.frombuffer(message.raw_input_contents[0], np.float32).reshape(2, 64), tensor)
    assert np.array_equal(np.frombuffer(message.raw_input_contents[1], np.int64), ids.reshape(-1))


def test_metadata_decoding() -> None:
    reply = service_pb2.ModelMetadataResponse(name="x", versions=["1"], inputs=[
        service_pb2.ModelMetadataResponse.TensorMetadata(name="ids", datatype="INT64", shape=[-1, -1, 8])])
    assert decode_metadata_inputs(reply.SerializeToString()) == [("ids", "INT64", (-1, -1, 8))]


def test_grpc_load_joins_server_timing_from_trailing_metadata(grpc_server: tuple[str, Servicer]) -> None:
    url, servicer = grpc_server
    target = model_target(url, "digits", protocol="v2-grpc", batch_size=3, bodies=4)
    assert target.url == url + "/ModelInfer"
    result = run(LoadPlan(target, concurrency=3, requests=30, record_requests=True))
    assert result.counts.ok == 30, result.errors
    assert all(r.server_timing_ms == {"queue": 0.5, "infer": 1.25} for r in result.requests)
    assert list(servicer.seen[-1].inputs[0].shape) == [3, 64]
    assert sum(r.connect_ms > 0 for r in result.requests) == 3


def test_grpc_errors_map_to_http_statuses(grpc_server: tuple[str, Servicer]) -> None:
    url, _ = grpc_server
    target = model_target(url, "digits", protocol="v2-grpc", bodies=1)
    wrong = type(target)(target.url, target.method, target.headers,
                         (encode_infer_request("nope", None, {"input": np.zeros((1, 64), np.float32)},
                                               {"input": "FP32"}),))
    result = run(LoadPlan(wrong, concurrency=2, requests=6))
    assert result.status_codes == {"404": 6}
    assert result.errors[0].message == "HTTP 404 (gRPC NOT_FOUND: no such model)"
    assert result.counts.http_errors == 6
