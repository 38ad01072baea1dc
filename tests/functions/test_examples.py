"""The shipped examples, end to end on a live server: face-blur, mobilenet-classifier, embeddings."""

from __future__ import annotations

from pathlib import Path

import cv2
import httpx
import numpy as np
import orjson
import pytest

from tests.conftest import ROOT, SHARED_MODELS
from tests.functions.conftest import deploy
from tests.functions.faces import detect_faces, face_photo

EXAMPLES = ROOT / "examples"


def direct(client: httpx.Client, model: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The first output of a plain V2 call, for comparison with the function."""
    body = {"inputs": [
        {"name": name, "datatype": "FP32" if a.dtype == np.float32 else "INT64", "shape": list(a.shape),
         "data": a.ravel().tolist()} for name, a in inputs.items()
    ]}
    reply = client.post(f"/v2/models/{model}/infer", content=orjson.dumps(body))
    assert reply.status_code == 200, reply.text
    out = reply.json()["outputs"][0]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


@pytest.mark.parametrize("fmt", [".png", ".jpg"])
def test_face_blur_changes_only_the_faces(fn_client: httpx.Client, fmt: str) -> None:
    assert deploy(fn_client, "face-blur", EXAMPLES / "face-blur").status_code == 202
    ok, encoded = cv2.imencode(fmt, face_photo())
    assert ok
    original = cv2.imdecode(encoded, cv2.IMREAD_COLOR)  # what the handler sees (JPEG is lossy)
    expected = detect_faces(original)
    assert expected, "the synthetic photo must contain a face the cascade detects"
    reply = fn_client.post("/function/face-blur", content=encoded.tobytes(),
                           headers={"Content-Type": "image/png" if fmt == ".png" else "image/jpeg"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == ("image/png" if fmt == ".png" else "image/jpeg")
    boxes = orjson.loads(reply.headers["x-faces"])
    assert boxes == expected
    blurred = cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_COLOR)
    assert blurred.shape == original.shape
    inside = np.zeros(original.shape[:2], bool)
    for x, y, w, h in boxes:
        inside[y:y + h, x:x + w] = True
        region = np.abs(blurred[y:y + h, x:x + w].astype(int) - original[y:y + h, x:x + w].astype(int))
        assert region.mean() > 3  # the features are smeared out
        assert detect_faces(blurred) == []  # and no longer recognisable as a face
    outside = np.abs(blurred[~inside].astype(int) - original[~inside].astype(int))
    if fmt == ".png":
        assert outside.max() == 0  # lossless: every other pixel is untouched
    else:
        assert outside.mean() < 2  # JPEG re-encoding only
    timing = reply.headers["server-timing"]
    assert "ml;dur=" in timing and "handler;dur=" in timing


def test_face_blur_rejects_non_images(fn_client: httpx.Client) -> None:
    assert deploy(fn_client, "face-blur", EXAMPLES / "face-blur").status_code == 202
    reply = fn_client.post("/function/face-blur", content=b"not an image")
    assert reply.status_code == 400 and "JPEG or PNG" in reply.json()["error"]


def test_mobilenet_classifier_top5(fn_client: httpx.Client) -> None:
    assert deploy(fn_client, "mobilenet-classifier", EXAMPLES / "mobilenet-classifier").status_code == 202
    rng = np.random.default_rng(2)
    batch = rng.standard_normal((2, 3, 224, 224), dtype=np.float32)
    reply = fn_client.post("/function/mobilenet-classifier", content=orjson.dumps(
        {"instances": batch.tolist()}), headers={"Content-Type": "application/json"})
    assert reply.status_code == 200, reply.text
    predictions = reply.json()["predictions"]
    logits = direct(fn_client, "mobilenet_v2", {"input": batch})
    for prediction, row in zip(predictions, logits, strict=True):
        top5 = np.argsort(-row)[:5].tolist()
        assert prediction["classes"] == top5
        assert prediction["labels"] == [f"class_{i}" for i in top5]
        assert prediction["scores"] == sorted(prediction["scores"], reverse=True)
    pixels = rng.integers(0, 256, (1, 224, 224, 3)).astype(np.float32)
    from_pixels = fn_client.post("/function/mobilenet-classifier", json={"instances": pixels.tolist()})
    assert from_pixels.status_code == 200 and len(from_pixels.json()["predictions"][0]["labels"]) == 5
    wrong = fn_client.post("/function/mobilenet-classifier", json={"instances": [[1.0, 2.0]]})
    assert wrong.status_code == 400 and "[3, 224, 224]" in wrong.json()["error"]


def test_embeddings_match_the_model(fn_client: httpx.Client) -> None:
    assert deploy(fn_client, "embeddings", EXAMPLES / "embeddings").status_code == 202
    sample = orjson.loads((SHARED_MODELS / "minilm_sample.json").read_bytes())
    reply = fn_client.post("/function/embeddings", json={"sentences": sample["sentences"]})
    assert reply.status_code == 200, reply.text
    vectors = np.asarray(reply.json()["embeddings"], dtype=np.float32)
    assert vectors.shape == (2, 384) and reply.json()["dimensions"] == 384
    mask = np.asarray(sample["attention_mask"], np.int64)
    longest = int(mask.sum(axis=1).max())  # the function pads to the longest sentence, the sample to 32
    expected = direct(fn_client, "minilm", {
        "input_ids": np.asarray(sample["input_ids"], np.int64)[:, :longest], "attention_mask": mask[:, :longest],
    })
    cosine = (vectors * expected).sum(axis=1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() > 0.9999
    empty = fn_client.post("/function/embeddings", json={"sentences": []})
    assert empty.status_code == 400 and "at least one string" in empty.json()["error"]


def test_example_folders_ship_what_they_need() -> None:
    assert (EXAMPLES / "embeddings" / "minilm_tokenizer.json").read_bytes() == (
        SHARED_MODELS / "minilm_tokenizer.json").read_bytes()
    assert len((EXAMPLES / "mobilenet-classifier" / "labels.txt").read_text().splitlines()) == 1000
    assert Path(cv2.data.haarcascades, "haarcascade_frontalface_default.xml").is_file()
