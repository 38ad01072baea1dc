"""The V2 binary tensor extension: the byte layout, the raw-binary request form, and mixed JSON/binary replies."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from inferlab.errors import InvalidInput
from inferlab.server.protocols.kserve_binary import array_from_raw, join_bytes, raw_from_array
from tests.protocols.conftest import reference_outputs, sample_inputs
from tests.protocols.wire import binary_body, split_binary_response


def test_bytes_elements_are_length_prefixed() -> None:
    array = np.array([b"ab", b"", "c\u00e9"], dtype=object)
    raw = raw_from_array(array)
    assert raw == b"\x02\x00\x00\x00ab" + b"\x00\x00\x00\x00" + b"\x03\x00\x00\x00c\xc3\xa9"
    assert array_from_raw("t", "BYTES", (3,), raw).tolist() == [b"ab", b"", "c\u00e9".encode()]
    assert join_bytes([b"x"]) == b"\x01\x00\x00\x00x"


@pytest.mark.parametrize(("raw", "fragment"), [
    (b"\x05\x00\x00\x00ab", "runs past the end"),
    (b"\x01\x00", "inside a 4-byte length prefix"),
])
def test_truncated_bytes_data_is_refused(raw: bytes, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        array_from_raw("t", "BYTES", (1,), raw)


def test_numeric_tensors_are_views_unless_misaligned() -> None:
    data = np.arange(6, dtype=np.float32).tobytes()
    aligned = array_from_raw("t", "FP32", (2, 3), data)
    assert not aligned.flags.owndata  # a view of the request bytes
    misaligned = array_from_raw("t", "FP32", (2, 3), memoryview(b"x" + data)[1:])
    assert misaligned.flags.aligned and misaligned.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_raw_binary_request_is_the_single_input(http: httpx.Client) -> None:
    rows = sample_inputs("digits")["input"]
    reply = http.post("/v2/models/digits/infer", content=rows.tobytes(),
                      headers={"Inference-Header-Content-Length": "0", "Content-Type": "application/octet-stream"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/octet-stream"
    got = split_binary_response(reply)["probabilities"]
    np.testing.assert_allclose(got, reference_outputs("digits", {"input": rows})["probabilities"], rtol=1e-6)


def test_raw_binary_request_needs_a_single_input_model(http: httpx.Client) -> None:
    reply = http.post("/v2/models/minilm/infer", content=b"\x00" * 64,
                      headers={"Inference-Header-Content-Length": "0"})
    assert reply.status_code == 400 and "needs a model with one input" in reply.json()["error"]


def test_binary_inputs_with_json_outputs(http: httpx.Client) -> None:
    rows = sample_inputs("digits")["input"]
    body, length = binary_body({"input": rows}, binary_outputs=False)
    reply = http.post("/v2/models/digits/infer", content=body, headers={"Inference-Header-Content-Length": str(length)})
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    output = reply.json()["outputs"][0]
    np.testing.assert_allclose(np.reshape(output["data"], output["shape"]),
                               reference_outputs("digits", {"input": rows})["probabilities"], rtol=1e-6)


def test_json_request_asking_one_binary_output_with_classification(http: httpx.Client) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True, "classification": 2}}]}
    reply = http.post("/v2/models/digits/infer", content=json.dumps(body))
    assert reply.status_code == 200
    header = json.loads(reply.content[:int(reply.headers["inference-header-content-length"])])
    assert header["outputs"][0]["datatype"] == "BYTES"
    classes = split_binary_response(reply)["probabilities"]
    assert classes.shape == (1, 2) and all(c.count(b":") == 2 for c in classes.reshape(-1))
