"""KServe V2 over HTTP against a live server: every endpoint, outputs equal to onnxruntime's."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from inferlab.config import ServerConfig
from inferlab.server.app import serve_in_thread
from tests.conftest import SHARED_MODELS
from tests.onnx_models import V2_ONNX_TYPES, write_identity_model

DIGITS_SAMPLE = json.loads((SHARED_MODELS / "digits_sample.json").read_text())


def ort_run(stem: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(str(SHARED_MODELS / f"{stem}.onnx")).run(None, feeds)


def digits_body(flat: bool = True) -> dict:
    x = np.asarray(DIGITS_SAMPLE["inputs"], dtype=np.float32)
    data = x.reshape(-1).tolist() if flat else x.tolist()
    return {"id": "req-42", "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": data}]}


def test_health_and_server_metadata(base_url: str) -> None:
    assert httpx.get(f"{base_url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{base_url}/v2/health/ready").status_code == 200
    meta = httpx.get(f"{base_url}/v2").json()
    assert meta["name"] == "inferlab" and "model_repository" in meta["extensions"]


def test_model_metadata_and_ready(base_url: str) -> None:
    meta = httpx.get(f"{base_url}/v2/models/minilm").json()
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [
        {"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]},
        {"name": "attention_mask", "datatype": "INT64", "shape": [-1, -1]},
    ]
    assert meta["outputs"] == [{"name": "sentence_embedding", "datatype": "FP32", "shape": [-1, 384]}]
    assert httpx.get(f"{base_url}/v2/models/digits/versions/1").json()["name"] == "digits"
    assert httpx.get(f"{base_url}/v2/models/digits/ready").json() == {"name": "digits", "ready": True}
    assert httpx.get(f"{base_url}/v2/models/digits/versions/1/ready").status_code == 200


@pytest.mark.parametrize("flat", [True, False])
def test_digits_infer_matches_onnxruntime(base_url: str, flat: bool) -> None:
    reply = httpx.post(f"{base_url}/v2/models/digits/infer", json=digits_body(flat))
    assert reply.status_code == 200, reply.text
    doc = reply.json()
    assert doc["id"] == "req-42" and doc["model_name"] == "digits" and doc["model_version"] == "1"
    (out,) = doc["outputs"]
    assert out["name"] == "probabilities" and out["datatype"] == "FP32" and out["shape"] == [4, 10]
    expected = ort_run("digits_mlp", {"input": np.asarray(DIGITS_SAMPLE["inputs"], dtype=np.float32)})[0]
    np.testing.assert_allclose(np.asarray(out["data"]).reshape(4, 10), expected, rtol=1e-6, atol=1e-7)
    assert np.argmax(expected, axis=1).tolist() == DIGITS_SAMPLE["expected_labels"]


def test_minilm_two_int64_inputs(base_url: str) -> None:
    sample = json.loads((SHARED_MODELS / "minilm_sample.json").read_text())
    ids = np.asarray(sample["input_ids"], dtype=np.int64)
    mask = np.asarray(sample["attention_mask"], dtype=np.int64)
    body = {"inputs": [
        {"name": "input_ids", "shape": list(ids.shape), "datatype": "INT64", "data": ids.tolist()},
        {"name": "attention_mask", "shape": list(mask.shape), "datatype": "INT64", "data": mask.tolist()},
    ]}
    doc = httpx.post(f"{base_url}/v2/models/minilm/infer", json=body).json()
    expected = ort_run("minilm_l6_int8", {"input_ids": ids, "attention_mask": mask})[0]
    np.testing.assert_allclose(np.asarray(doc["outputs"][0]["data"]).reshape(expected.shape), expected, atol=1e-5)


def test_output_selection_and_classification(base_url: str) -> None:
    body = digits_body() | {"outputs": [{"name": "probabilities", "parameters": {"classification": 2}}]}
    doc = httpx.post(f"{base_url}/v2/models/digits/infer", json=body).json()
    (out,) = doc["outputs"]
    assert out["datatype"] == "BYTES" and out["shape"] == [4, 2]
    top = [entry.split(":") for entry in out["data"][::2]]
    assert [int(index) for _, index, _ in top] == DIGITS_SAMPLE["expected_labels"]
    assert [label for _, _, label in top] == [str(d) for d in DIGITS_SAMPLE["expected_labels"]]


def test_every_datatype_round_trips(tmp_path: Path) -> None:
    write_identity_model(tmp_path / "identity" / "1" / "model.onnx")
    values = {
        "BOOL": [True, False, True], "BYTES": ["a", "bc", "déf"], "FP16": [0.5, -1.25, 2.0],
        "FP32": [0.1, -2.5, 3e10], "FP64": [1e-300, -2.5, 3.14159265358979],
    }
    inputs = []
    for v2 in V2_ONNX_TYPES:
        data = values.get(v2, [0, 1, 7] if v2.startswith("U") else [-1, 0, 7])
        inputs.append({"name": f"in_{v2}", "shape": [1, 3], "datatype": v2, "data": data})
    with serve_in_thread(ServerConfig(model_repository=tmp_path, http_port=0)) as (_, url):
        reply = httpx.post(f"{url}/v2/models/identity/infer", json={"inputs": inputs})
    assert reply.status_code == 200, reply.text
    outputs = {o["name"]: o for o in reply.json()["outputs"]}
    for tensor in inputs:
        out = outputs["out_" + tensor["datatype"]]
        assert out["datatype"] == tensor["datatype"] and out["shape"] == [1, 3]
        if tensor["datatype"] in ("FP16", "FP32"):
            np.testing.assert_allclose(out["data"], tensor["data"], rtol=1e-3)
        else:
            assert out["data"] == tensor["data"]


def test_tritonclient_http(base_url: str) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(base_url.removeprefix("http://"))
    assert client.is_server_live() and client.is_model_ready("digits")
    assert client.get_model_metadata("digits")["inputs"][0]["name"] == "input"
    x = np.asarray(DIGITS_SAMPLE["inputs"], dtype=np.float32)
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=False)
    result = client.infer("digits", [tensor], outputs=[triton.InferRequestedOutput("probabilities", binary_data=False)])
    np.testing.assert_allclose(result.as_numpy("probabilities"), ort_run("digits_mlp", {"input": x})[0], rtol=1e-6)
