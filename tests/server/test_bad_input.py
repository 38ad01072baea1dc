"""Every kind of bad input gets a clear 4xx naming what was wrong, and the next good request still works."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import SHARED_MODELS

GOOD = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}


def _tensor(**overrides: object) -> dict:
    return {"inputs": [{**GOOD["inputs"][0], **overrides}]}


TRUNCATED = (SHARED_MODELS / "digits_mlp.onnx").read_bytes()[:5000]

# (case, method, path, kwargs, status, words the error must contain)
CASES = [
    ("malformed JSON", "POST", "/v2/models/digits/infer", {"content": b'{"inputs": [}'}, 400, "not valid JSON"),
    ("not an object", "POST", "/v2/models/digits/infer", {"content": b"[1, 2]"}, 400, "JSON object"),
    ("no inputs", "POST", "/v2/models/digits/infer", {"json": {"inputs": []}}, 400, "'inputs'"),
    ("wrong shape", "POST", "/v2/models/digits/infer",
     {"json": _tensor(shape=[1, 32], data=[0.0] * 32)}, 400, "expected shape [-1, 64], got [1, 32]"),
    ("wrong datatype", "POST", "/v2/models/digits/infer",
     {"json": _tensor(datatype="INT64", data=[0] * 64)}, 400, "expected datatype FP32, got INT64"),
    ("unknown datatype", "POST", "/v2/models/digits/infer", {"json": _tensor(datatype="FLOAT")}, 400,
     "unknown datatype 'FLOAT'"),
    ("data length vs shape", "POST", "/v2/models/digits/infer",
     {"json": _tensor(data=[0.0] * 63)}, 400, "needs 64 values, but data has 63"),
    ("non-numeric data", "POST", "/v2/models/digits/infer",
     {"json": _tensor(data=["x"] * 64)}, 400, "not a (nested) list of FP32"),
    ("ragged data", "POST", "/v2/models/digits/infer",
     {"json": _tensor(shape=[2, 64], data=[[0.0] * 64, [0.0] * 3])}, 400, "input 'input'"),
    ("negative shape", "POST", "/v2/models/digits/infer", {"json": _tensor(shape=[-1, 64])}, 400,
     "non-negative integers"),
    ("unknown input", "POST", "/v2/models/digits/infer", {"json": _tensor(name="pixels")}, 400,
     "unknown input 'pixels'"),
    ("unknown output", "POST", "/v2/models/digits/infer", {"json": GOOD | {"outputs": [{"name": "nope"}]}}, 400,
     "unknown output(s) ['nope']"),
    ("unknown model", "POST", "/v2/models/nosuch/infer", {"json": GOOD}, 404,
     "model 'nosuch' is not in the repository"),
    ("unknown version", "POST", "/v2/models/digits/versions/7/infer", {"json": GOOD}, 404,
     "no loaded version 7"),
    ("bad version", "POST", "/v2/models/digits/versions/x1/infer", {"json": GOOD}, 400, "invalid model version"),
    ("unknown route", "GET", "/v2/nothing/here", {}, 404, "no route for GET /v2/nothing/here"),
    ("wrong method", "GET", "/v2/models/digits/infer", {}, 405, "method GET is not allowed"),
    ("truncated ONNX upload", "POST", "/v2/repository/models/broken/upload",
     {"files": {"model": ("model.onnx", TRUNCATED)}}, 400, "not a loadable ONNX model"),
    ("upload without model part", "POST", "/v2/repository/models/x/upload",
     {"files": {"labels": ("labels.txt", b"a\n")}}, 400, "part named 'model'"),
    ("model name with ../", "POST", "/v2/repository/models/..%2Fescape/upload",
     {"files": {"model": ("model.onnx", b"x")}}, 400, "invalid model name '../escape'"),
    ("model name with /", "POST", "/v2/repository/models/a%2Fb/upload",
     {"files": {"model": ("model.onnx", b"x")}}, 400, "invalid model name 'a/b'"),
    ("dot-dot model name", "POST", "/v2/repository/models/..evil/load", {}, 400, "invalid model name"),
    ("oversized body", "POST", "/v2/models/digits/infer", {"content": b" " * (9 * 1024 * 1024)}, 413,
     "over the server's limit"),
    ("bad config in upload", "POST", "/v2/repository/models/badcfg/upload",
     {"files": {"model": ("model.onnx", (SHARED_MODELS / "digits_mlp.onnx").read_bytes()),
                "config": ("config.yaml", b"max_batch_size: -3\n")}}, 400, "max_batch_size: -3"),
]


@pytest.mark.parametrize(("case", "method", "path", "kwargs", "status", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_4xx(
    base_url: str, model_repository: Path, case: str, method: str, path: str, kwargs: dict, status: int, words: str
) -> None:
    before = sorted(p.name for p in model_repository.iterdir())
    reply = httpx.request(method, base_url + path, timeout=30, **kwargs)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert words in reply.json()["error"]
    assert sorted(p.name for p in model_repository.iterdir()) == before, "the repository changed"
    good = httpx.post(f"{base_url}/v2/models/digits/infer", json=GOOD)
    assert good.status_code == 200 and good.json()["outputs"][0]["shape"] == [1, 10]
