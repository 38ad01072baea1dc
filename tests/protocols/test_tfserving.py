"""TF Serving REST beyond :predict equivalence: status, metadata, INFless's body, classify, regress, b64."""

from __future__ import annotations

import base64

import httpx
import numpy as np

from inferlab.server.protocols import tfserving
from inferlab.tensors import TensorSpec
from tests.protocols.conftest import reference_outputs, sample_inputs


def test_model_status_lists_versions(http: httpx.Client) -> None:
    for path in ("/v1/models/digits", "/v1/models/digits/versions/1"):
        reply = http.get(path)
        assert reply.status_code == 200
        assert reply.json() == {"model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    missing = http.get("/v1/models/digits/versions/7")
    assert missing.status_code == 404 and "no version 7" in missing.json()["error"]


def test_metadata_is_a_signature_def(http: httpx.Client) -> None:
    doc = http.get("/v1/models/minilm/metadata").json()
    signature = doc["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert doc["model_spec"]["name"] == "minilm"
    assert signature["inputs"]["input_ids"]["dtype"] == "DT_INT64"
    assert signature["outputs"]["sentence_embedding"]["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""}, {"size": "384", "name": ""}]


def test_version_labels_are_not_configured(http: httpx.Client) -> None:
    reply = http.post("/v1/models/digits/labels/stable:predict", json={"instances": [[0.0] * 64]})
    assert reply.status_code == 404 and "no version label 'stable'" in reply.json()["error"]


def test_infless_body_is_accepted_as_is(http: httpx.Client) -> None:
    """Seed 002's request: signature_name + instances of {"inputs": image}, whatever the input is called."""
    image = sample_inputs("mobilenet_v2")["input"][:1]
    body = '{"signature_name": "serving_default", "instances":[{"inputs":' + str(image[0].tolist()) + "}] }"
    reply = http.post("/v1/models/mobilenet_v2:predict", content=body)
    assert reply.status_code == 200, reply.text
    want = reference_outputs("mobilenet_v2", {"input": image})["logits"]
    np.testing.assert_allclose(reply.json()["predictions"], want, rtol=1e-5, atol=1e-6)


def test_infless_nhwc_image_gets_a_clear_shape_error(http: httpx.Client) -> None:
    """INFless's own model took 224x224x3; ours is NCHW, and the error says so rather than guessing."""
    body = {"signature_name": "serving_default", "instances": [{"inputs": np.zeros((224, 224, 3)).tolist()}]}
    reply = http.post("/v1/models/mobilenet_v2:predict", json=body)
    assert reply.status_code == 400
    assert reply.json()["error"] == "input 'input': expected shape [-1, 3, 224, 224], got [1, 224, 224, 3]"


def test_classify_returns_labels_and_scores_highest_first(http: httpx.Client) -> None:
    rows = sample_inputs("digits")["input"][:2]
    reply = http.post("/v1/models/digits:classify", json={"examples": [{"input": r.tolist()} for r in rows]})
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    want = reference_outputs("digits", {"input": rows})["probabilities"]
    for result, probabilities in zip(results, want, strict=True):
        assert len(result) == 10
        assert [label for label, _ in result][:3] == [str(i) for i in np.argsort(-probabilities)[:3]]
        np.testing.assert_allclose([score for _, score in result], np.sort(probabilities)[::-1], rtol=1e-5, atol=1e-6)


def test_classify_merges_context_into_examples(http: httpx.Client) -> None:
    ids, mask = (sample_inputs("minilm")[k][:1] for k in ("input_ids", "attention_mask"))
    body = {"context": {"attention_mask": mask[0].tolist()}, "examples": [{"input_ids": ids[0].tolist()}]}
    reply = http.post("/v1/models/minilm:classify", json=body)
    assert reply.status_code == 200 and len(reply.json()["results"][0]) == 384


def test_regress_needs_one_value_per_example(http: httpx.Client) -> None:
    reply = http.post("/v1/models/digits:regress", json={"examples": [{"input": [0.0] * 64}]})
    assert reply.status_code == 400 and ":regress needs one value per example" in reply.json()["error"]


def test_b64_values_decode_to_bytes_and_bytes_outputs_encode_back() -> None:
    spec = TensorSpec("text", "BYTES", (-1,))
    array = tfserving._array("text", [{"b64": base64.b64encode(b"\x00hi").decode()}, "plain"], spec)
    assert array.tolist() == [b"\x00hi", b"plain"]
    assert tfserving._json_value("out_bytes", array) == [{"b64": "AGhp"}, {"b64": "cGxhaW4="}]
    assert tfserving._json_value("out", array) == ["\x00hi", "plain"]
