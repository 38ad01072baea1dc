"""The TFaaS seed's curl sequence and the rest of the TFaaS API, as a plain HTTP client sends them."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from inferlab.server.app import Server
from tests.conftest import SHARED_MODELS
from tests.protocols.conftest import reference_outputs, sample_inputs


@pytest.fixture(scope="module")
def client(digits_server: tuple[Server, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=digits_server[1], timeout=60) as http:
        yield http


def _bundle(files: dict[str, bytes], gzip: bool) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gzip else "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_seed_curl_sequence(client: httpx.Client) -> None:
    """Seed 000 steps 1-6: list, upload model + labels, read params, post params, read again, predict."""
    listed = client.get("/models")
    assert listed.status_code == 200 and listed.headers["content-type"] == "application/json"
    assert [m["name"] for m in listed.json()] == ["digits"]

    uploaded = client.post("/upload", files={
        "model": ("model_0228.onnx", (SHARED_MODELS / "digits_mlp.onnx").read_bytes()),
        "labels": ("labels.txt", (SHARED_MODELS / "digits_labels.txt").read_bytes()),
    })
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["name"] == "model_0228"  # no name part: named after the model file

    params = client.get("/params")
    assert params.status_code == 200 and params.json()["name"] == "model_0228"

    posted = client.post("/params", headers={"Content-type": "application/json"}, content=json.dumps({
        "name": "model_0228", "model": "model_0228.onnx", "labels": "labels.txt",
        "inputNode": "input", "outputNode": "probabilities",
    }))
    assert posted.status_code == 200, posted.text
    again = client.get("/params").json()
    assert (again["input_node"], again["output_node"]) == ("input", "probabilities")

    rows = sample_inputs("digits")["input"]
    predicted = client.post("/json", headers={"Content-type": "application/json"},
                            json={"keys": [f"f{i}" for i in range(64)], "values": rows[0].tolist()})
    assert predicted.status_code == 200 and predicted.headers["content-type"] == "application/json"
    want = reference_outputs("digits", {"input": rows[:1]})["probabilities"][0]
    np.testing.assert_allclose(predicted.json(), want, rtol=1e-5, atol=1e-6)


def test_upload_with_params_part_in_either_spelling(client: httpx.Client) -> None:
    model = (SHARED_MODELS / "digits_mlp.onnx").read_bytes()
    for name, params in (("camel", {"inputNode": "input", "outputNode": "probabilities"}),
                         ("snake", {"input_node": "input", "output_node": "probabilities"})):
        reply = client.post("/upload", data={"name": name, "op": "ignored"}, files={
            "model": ("m.onnx", model), "params": ("params.json", json.dumps(params).encode()),
        })
        assert reply.status_code == 200, reply.text
        stored = client.get(f"/params/{name}").json()
        assert (stored["input_node"], stored["output_node"]) == ("input", "probabilities")


def test_upload_with_base64_model_part(client: httpx.Client) -> None:
    """TFaaS's Python client base64-encodes binary parts and says so with Content-Encoding."""
    import base64

    encoded = base64.b64encode((SHARED_MODELS / "digits_mlp.onnx").read_bytes())
    reply = client.post("/upload", data={"name": "b64model"}, files={"model": ("m.onnx", encoded)},
                        headers={"Content-Encoding": "base64"})
    assert reply.status_code == 200, reply.text
    assert client.post("/json", json={"values": [0.0] * 64, "model": "b64model"}).status_code == 200


@pytest.mark.parametrize("gzip", [False, True], ids=["tar", "tar.gz"])
def test_bundle_upload(client: httpx.Client, gzip: bool) -> None:
    name = f"bundled_{'gz' if gzip else 'tar'}"
    body = _bundle({
        f"{name}/digits.onnx": (SHARED_MODELS / "digits_mlp.onnx").read_bytes(),
        f"{name}/labels.txt": (SHARED_MODELS / "digits_labels.txt").read_bytes(),
        f"{name}/params.json": json.dumps({"input_node": "input", "labels": "labels.txt"}).encode(),
    }, gzip)
    headers = {"Content-Type": "application/octet-stream"} | ({"Content-Encoding": "gzip"} if gzip else {})
    reply = client.post("/upload", content=body, headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.json()["name"] == name and reply.json()["labels"] == "labels.txt"
    assert name in [m["name"] for m in client.get("/models").json()]


def test_bundle_with_link_is_refused(client: httpx.Client) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        link = tarfile.TarInfo("m/model.onnx")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    reply = client.post("/upload", content=buf.getvalue())
    assert reply.status_code == 400 and "links are not accepted" in reply.json()["error"]


def test_image_top5_matches_onnxruntime(client: httpx.Client) -> None:
    body = _bundle({
        "mobile/model.onnx": (SHARED_MODELS / "mobilenet_v2.onnx").read_bytes(),
        "mobile/labels.txt": (SHARED_MODELS / "imagenet_labels.txt").read_bytes(),
    }, gzip=True)
    assert client.post("/upload", content=body).status_code == 200
    pixels = (np.random.default_rng(3).random((240, 320, 3)) * 255).astype(np.uint8)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, "PNG")
    reply = client.post("/image", files={"image": ("cat.png", png.getvalue())}, data={"model": "mobile"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["filename"] == "cat.png"
    labels = reply.json()["labels"]

    resized = np.asarray(Image.fromarray(pixels).resize((224, 224)), dtype=np.float32) / 255.0
    normalised = (resized - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    session = ort.InferenceSession(str(SHARED_MODELS / "mobilenet_v2.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": normalised.transpose(2, 0, 1)[np.newaxis].astype(np.float32)})[0][0]
    probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    top = np.argsort(-probabilities)[:5]
    assert [item["label"] for item in labels] == [f"class_{i}" for i in top]
    np.testing.assert_allclose([item["probability"] for item in labels], probabilities[top], rtol=1e-4)


def test_delete_by_path_and_by_form_field(client: httpx.Client) -> None:
    model = (SHARED_MODELS / "digits_mlp.onnx").read_bytes()
    for name in ("gone1", "gone2"):
        assert client.post("/upload", data={"name": name}, files={"model": ("m.onnx", model)}).status_code == 200
    assert client.delete("/delete/gone1").status_code == 200
    form = client.build_request("DELETE", "/delete", data={"model": "gone2"})
    assert client.send(form).status_code == 200
    names = [m["name"] for m in client.get("/models").json()]
    assert "gone1" not in names and "gone2" not in names
    assert client.post("/json", json={"values": [0.0] * 64, "model": "gone1"}).status_code == 404


def test_params_for_unknown_node_is_refused(client: httpx.Client) -> None:
    reply = client.post("/params", json={"name": "digits", "outputNode": "logits"})
    assert reply.status_code == 400 and "output_node 'logits'" in reply.json()["error"]
