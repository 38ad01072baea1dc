"""Model payloads built from a live server's metadata, and the bodies each protocol gets."""

from __future__ import annotations

import numpy as np
import orjson

from inferlab.loadgen.launch import run
from inferlab.loadgen.payloads import TensorSpec, encode_body, fetch_inputs, model_target, model_url
from inferlab.loadgen.plan import LoadPlan
from tests.conftest import SHARED_MODELS

SPECS = [TensorSpec("input", "FP32", (-1, 64))]


def test_v2_json_load_on_a_live_model(base_url: str) -> None:
    target = model_target(base_url, "digits", batch_size=4, bodies=8)
    assert target.url == base_url + "/v2/models/digits/infer"
    assert len(set(target.bodies)) == 8  # every body differs
    result = run(LoadPlan(target, concurrency=2, requests=40))
    assert result.counts.ok == 40, result.errors


def test_inputs_sampled_from_a_file(base_url: str) -> None:
    target = model_target(base_url, "digits", batch_size=2, input_path=SHARED_MODELS / "digits_sample.json",
                          bodies=16, seed=3)
    rows = orjson.loads(target.bodies[0])["inputs"][0]
    assert rows["shape"] == [2, 64]
    sample = np.asarray(orjson.loads((SHARED_MODELS / "digits_sample.json").read_bytes())["inputs"])
    assert any(np.array_equal(np.asarray(rows["data"][:64]), row) for row in sample)
    assert run(LoadPlan(target, concurrency=2, requests=16)).counts.ok == 16


def test_metadata_comes_from_the_server(base_url: str) -> None:
    assert fetch_inputs(base_url, "digits") == SPECS


def test_v2_binary_body_is_a_json_header_then_raw_tensors() -> None:
    tensor = np.arange(128, dtype=np.float32).reshape(2, 64)
    body, headers = encode_body("v2-binary", SPECS, {"input": tensor})
    length = int(headers["Inference-Header-Content-Length"])
    header = orjson.loads(body[:length])
    assert header["inputs"][0]["parameters"] == {"binary_data_size": 512}
    assert np.array_equal(np.frombuffer(body[length:], dtype=np.float32).reshape(2, 64), tensor)


def test_tfserving_body_uses_instances() -> None:
    tensor = np.ones((2, 64), dtype=np.float32)
    body, _ = encode_body("tfserving", SPECS, {"input": tensor})
    assert np.asarray(orjson.loads(body)["instances"]).shape == (2, 64)
    assert model_url("http://h:1", "tfserving", "digits") == "http://h:1/v1/models/digits:predict"


def test_tfaas_body_is_one_row_of_values() -> None:
    body, _ = encode_body("tfaas", SPECS, {"input": np.full((1, 64), 2.0, dtype=np.float32)}, model="digits")
    doc = orjson.loads(body)
    assert doc["model"] == "digits" and doc["values"] == [2.0] * 64 and len(doc["keys"]) == 64
    assert model_url("http://h:1", "tfaas", "digits") == "http://h:1/json"
