"""tritonclient (HTTP JSON and binary, gRPC) against the server: health, metadata, inference, repository."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from inferlab.server.app import Server
from tests.protocols.conftest import reference_outputs, sample_inputs
from tests.protocols.wire import triton_http_client

Client = triton_http.InferenceServerClient | triton_grpc.InferenceServerClient


@pytest.fixture(params=["http", "grpc"])
def client(request: pytest.FixtureRequest, digits_server: tuple[Server, str]) -> Iterator[Client]:
    server, url = digits_server
    if request.param == "http":
        yield triton_http_client(url)
    else:
        with triton_grpc.InferenceServerClient(f"127.0.0.1:{server.grpc_port}") as made:
            yield made


def test_health_and_metadata(client: Client) -> None:
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("digits")
    grpc = isinstance(client, triton_grpc.InferenceServerClient)
    meta = client.get_server_metadata(as_json=True) if grpc else client.get_server_metadata()
    assert "binary_tensor_data" in meta["extensions"] and "model_repository" in meta["extensions"]
    model = client.get_model_metadata("digits", as_json=True) if grpc else client.get_model_metadata("digits")
    assert model["inputs"][0]["name"] == "input" and model["outputs"][0]["name"] == "probabilities"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_and_classification(client: Client, binary: bool) -> None:
    rows = sample_inputs("digits")["input"]
    if isinstance(client, triton_http.InferenceServerClient):
        tensor = triton_http.InferInput("input", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows, binary_data=binary)
        plain = triton_http.InferRequestedOutput("probabilities", binary_data=binary)
        top = triton_http.InferRequestedOutput("probabilities", binary_data=binary, class_count=2)
    else:  # gRPC has one encoding (raw); both parametrizations run it
        tensor = triton_grpc.InferInput("input", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        plain = triton_grpc.InferRequestedOutput("probabilities")
        top = triton_grpc.InferRequestedOutput("probabilities", class_count=2)
    want = reference_outputs("digits", {"input": rows})["probabilities"]
    got = client.infer("digits", [tensor], outputs=[plain]).as_numpy("probabilities")
    np.testing.assert_allclose(got, want, rtol=1e-6)
    classes = client.infer("digits", [tensor], outputs=[top]).as_numpy("probabilities")
    assert classes.shape == (4, 2)
    best = [item.decode() if isinstance(item, bytes) else str(item) for item in classes[:, 0]]
    # "score:index:label"; the digits labels file names class i "i"
    assert [b.split(":")[1:] for b in best] == [[str(i), str(i)] for i in np.argmax(want, axis=1)]


def test_errors_surface_as_client_exceptions(client: Client) -> None:
    module = triton_http if isinstance(client, triton_http.InferenceServerClient) else triton_grpc
    tensor = module.InferInput("input", [1, 63], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 63), np.float32))
    with pytest.raises(InferenceServerException, match=r"expected shape \[-1, 64\], got \[1, 63\]"):
        client.infer("digits", [tensor])
    with pytest.raises(InferenceServerException, match="'nope' is not in the repository"):
        client.get_model_metadata("nope")


def test_repository_index_unload_load(client: Client) -> None:
    grpc = isinstance(client, triton_grpc.InferenceServerClient)

    def states() -> dict[str, str]:
        index = client.get_model_repository_index(as_json=True)["models"] if grpc \
            else client.get_model_repository_index()
        return {row["name"]: row.get("state", "") for row in index}

    assert states()["digits"] == "READY"
    client.unload_model("digits")
    assert not client.is_model_ready("digits")
    assert states()["digits"] == "UNAVAILABLE"
    client.load_model("digits")
    assert client.is_model_ready("digits")


def test_grpc_stream_answers_each_request_in_order(digits_server: tuple[Server, str]) -> None:
    """Triton's ModelStreamInfer: a bad request gets its error in the stream, and the stream goes on."""
    results: list[tuple[object, object]] = []
    rows = sample_inputs("digits")["input"]
    with triton_grpc.InferenceServerClient(f"127.0.0.1:{digits_server[0].grpc_port}") as client:
        client.start_stream(callback=lambda result, error: results.append((result, error)))
        for shape in ([4, 64], [1, 63], [4, 64]):
            tensor = triton_grpc.InferInput("input", shape, "FP32")
            tensor.set_data_from_numpy(rows if shape[0] == 4 else np.zeros(shape, np.float32))
            client.async_stream_infer("digits", [tensor])
        client.stop_stream()  # waits for the responses
    assert [error is None for _, error in results] == [True, False, True]
    assert "expected shape [-1, 64]" in str(results[1][1])
    want = reference_outputs("digits", {"input": rows})["probabilities"]
    np.testing.assert_allclose(results[2][0].as_numpy("probabilities"), want, rtol=1e-6)
