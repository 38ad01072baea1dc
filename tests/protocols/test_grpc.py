"""gRPC specifics: reflection, message-size limits, typed BYTES outputs, uploads through RepositoryModelLoad, auth."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from inferlab.config import ServerConfig
from inferlab.server.app import Server, serve_in_thread
from inferlab.server.proto import inference_pb2 as pb
from inferlab.server.proto import inference_pb2_grpc as pb_grpc
from tests.conftest import SHARED_MODELS, make_repository
from tests.protocols.wire import grpc_request


def test_reflection_lists_and_describes_the_service(grpc_target: str) -> None:
    with grpc.insecure_channel(grpc_target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert "inference.GRPCInferenceService" in database.get_services()
        described = database.FindFileContainingSymbol("inference.GRPCInferenceService")
        assert "ModelInfer" in [m.name for m in described.service[0].method]


def test_classification_comes_back_as_typed_bytes(grpc_target: str) -> None:
    request = grpc_request("digits", {"input": np.zeros((1, 64), np.float32)}, raw=False)
    request.outputs.add(name="probabilities").parameters["classification"].int64_param = 3
    with grpc.insecure_channel(grpc_target) as channel:
        reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    (output,) = reply.outputs
    assert (output.datatype, list(output.shape)) == ("BYTES", [1, 3])
    assert all(item.count(b":") == 2 for item in output.contents.bytes_contents)


def test_model_ready_and_metadata(grpc_target: str) -> None:
    with grpc.insecure_channel(grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ModelReady(pb.ModelReadyRequest(name="minilm"), timeout=10).ready
        meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="minilm", version="1"), timeout=10)
    assert [t.name for t in meta.inputs] == ["input_ids", "attention_mask"]
    assert list(meta.outputs[0].shape) == [-1, 384]


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    root = make_repository(tmp_path_factory.mktemp("repo"), {"digits": "digits_mlp", "minilm": "minilm_l6_int8"})
    config = ServerConfig(model_repository=root, http_port=0, grpc_port=0, auth_token="s3cret",
                          grpc_max_message_bytes=1024 * 1024)
    with serve_in_thread(config) as running:
        yield running


def test_message_limit_is_configurable_and_explained(strict_server: tuple[Server, str]) -> None:
    big = grpc_request("digits", {"input": np.zeros((5000, 64), np.float32)}, raw=True)  # 1.28 MB > 1 MiB
    with grpc.insecure_channel(f"127.0.0.1:{strict_server[0].grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(big, timeout=10)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "vs. 1048576" in info.value.details()
        small = grpc_request("digits", {"input": np.zeros((3000, 64), np.float32)}, raw=True)
        assert pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(small, timeout=10).outputs[0].shape[0] == 3000
        # 22 kB in, 700 embeddings of 1.5 kB out: the reply is what is too large
        tokens = np.ones((700, 1), np.int64)
        fanout = grpc_request("minilm", {"input_ids": tokens, "attention_mask": tokens}, raw=True)
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(fanout, timeout=30)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "gRPC message limit of 1048576 bytes (--grpc-max-message-mb)" in info.value.details()


def test_repository_changes_need_the_token(strict_server: tuple[Server, str]) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{strict_server[0].grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="digits"), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        token = [("authorization", "Bearer s3cret")]
        stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="digits"), timeout=10, metadata=token)
        assert not stub.ModelReady(pb.ModelReadyRequest(name="digits"), timeout=10).ready
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="digits"), timeout=10, metadata=token)
        assert stub.ModelReady(pb.ModelReadyRequest(name="digits"), timeout=10).ready


def test_upload_through_repository_model_load(strict_server: tuple[Server, str]) -> None:
    files = {
        "file:3/model.onnx": pb.ModelRepositoryParameter(bytes_param=(SHARED_MODELS / "digits_mlp.onnx").read_bytes()),
        "file:labels.txt": pb.ModelRepositoryParameter(bytes_param=b"zero\none\ntwo\n"),
    }
    with grpc.insecure_channel(f"127.0.0.1:{strict_server[0].grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="pushed", parameters=files),
                                 timeout=30, metadata=[("authorization", "Bearer s3cret")])
        meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="pushed"), timeout=10)
        index = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=10)
    assert list(meta.versions) == ["3"]
    assert ("pushed", "3", "READY") in [(m.name, m.version, m.state) for m in index.models]
    assert (Path(strict_server[0].config.model_repository) / "pushed" / "3" / "model.onnx").is_file()


def test_tls_certificate_serves_grpc_too(tmp_path: Path) -> None:
    """With --tls-cert/--tls-key the gRPC port speaks TLS as well, with the same certificate."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    root = make_repository(tmp_path / "repo", {"digits": "digits_mlp"})
    config = ServerConfig(model_repository=root, http_port=0, grpc_port=0, tls_cert=cert, tls_key=key)
    with serve_in_thread(config) as (server, _):
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        target = f"localhost:{server.grpc_port}"
        with grpc.secure_channel(target, credentials) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
        with grpc.insecure_channel(target) as plain, pytest.raises(grpc.RpcError):
            pb_grpc.GRPCInferenceServiceStub(plain).ServerLive(pb.ServerLiveRequest(), timeout=3)
