"""Repository operations over HTTP: index, load/unload, upload, delete, and the bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from inferlab.config import ServerConfig
from inferlab.server.app import serve_in_thread
from tests.conftest import SHARED_MODELS, make_repository

DIGITS = (SHARED_MODELS / "digits_mlp.onnx").read_bytes()
ROW = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [1.0] * 64}]}
TOKEN = "s3cret"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    repo = make_repository(tmp_path / "repo", {"digits": "digits_mlp"})
    with serve_in_thread(ServerConfig(model_repository=repo, http_port=0, auth_token=TOKEN)) as (_, url):
        yield url, repo


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_index_unload_load(server: tuple[str, Path]) -> None:
    url, _ = server
    assert httpx.post(f"{url}/v2/repository/index").json() == [
        {"name": "digits", "version": "1", "state": "READY", "reason": ""}
    ]
    assert httpx.post(f"{url}/v2/repository/models/digits/unload", headers=auth()).status_code == 200
    assert httpx.get(f"{url}/v2/models/digits/ready").status_code == 503
    reply = httpx.post(f"{url}/v2/models/digits/infer", json=ROW)
    assert reply.status_code == 503 and "not ready" in reply.json()["error"]
    assert httpx.post(f"{url}/v2/repository/index", json={"ready": True}).json() == []
    assert httpx.post(f"{url}/v2/repository/models/digits/load", headers=auth()).status_code == 200
    assert httpx.post(f"{url}/v2/models/digits/infer", json=ROW).status_code == 200


def test_upload_new_versions_and_delete(server: tuple[str, Path]) -> None:
    url, repo = server
    files = {"model": ("digits.onnx", DIGITS), "labels": ("labels.txt", b"zero\none\ntwo\nthree\nfour\nfive\nsix\n"
                                                                         b"seven\neight\nnine\n"),
             "config": ("config.yaml", b"max_batch_size: 8\n")}
    reply = httpx.post(f"{url}/v2/repository/models/digits2/upload", files=files, headers=auth())
    assert reply.status_code == 201, reply.text
    assert reply.json() == {"name": "digits2", "version": "1"}
    body = ROW | {"outputs": [{"name": "probabilities", "parameters": {"classification": 1}}]}
    top = httpx.post(f"{url}/v2/models/digits2/infer", json=body).json()["outputs"][0]["data"][0]
    assert top.split(":")[2] in {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
    again = httpx.post(f"{url}/v2/repository/models/digits2/upload", files={"model": ("m.onnx", DIGITS)},
                       headers=auth())
    assert again.json()["version"] == "2"
    assert httpx.get(f"{url}/v2/models/digits2").json()["versions"] == ["1", "2"]
    assert httpx.post(f"{url}/v2/models/digits2/versions/1/infer", json=ROW).status_code == 200
    assert httpx.delete(f"{url}/v2/repository/models/digits2/versions/1", headers=auth()).status_code == 200
    assert httpx.get(f"{url}/v2/models/digits2").json()["versions"] == ["2"]
    assert httpx.delete(f"{url}/v2/repository/models/digits2", headers=auth()).status_code == 200
    assert httpx.post(f"{url}/v2/models/digits2/infer", json=ROW).status_code == 404
    assert sorted(p.name for p in repo.iterdir()) == ["digits"]


def test_existing_version_is_not_overwritten(server: tuple[str, Path]) -> None:
    url, repo = server
    reply = httpx.post(f"{url}/v2/repository/models/digits/upload", files={"model": ("m.onnx", b"junk")},
                       data={"version": "1"}, headers=auth())
    assert reply.status_code == 400 and "already has version 1" in reply.json()["error"]
    assert (repo / "digits" / "1" / "model.onnx").read_bytes() == DIGITS


def test_protected_operations_need_the_token(server: tuple[str, Path]) -> None:
    url, repo = server
    for method, path in [("POST", "/v2/repository/models/digits/unload"), ("POST", "/v2/repository/models/d/upload"),
                         ("DELETE", "/v2/repository/models/digits"), ("POST", "/v2/repository/models/digits/load")]:
        reply = httpx.request(method, url + path, headers={"Authorization": "Bearer wrong"})
        assert reply.status_code == 401, path
        assert "Bearer" in reply.json()["error"] and reply.headers["www-authenticate"] == "Bearer"
    assert httpx.post(f"{url}/v2/models/digits/infer", json=ROW).status_code == 200  # inference stays open
    assert (repo / "digits" / "1" / "model.onnx").is_file()


def test_https_only_with_tls(tmp_path: Path) -> None:
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    repo = make_repository(tmp_path / "repo", {"digits": "digits_mlp"})
    config = ServerConfig(model_repository=repo, http_port=0, tls_cert=cert, tls_key=key)
    with serve_in_thread(config) as (_, url):
        assert url.startswith("https://")
        assert httpx.post(f"{url}/v2/models/digits/infer", json=ROW, verify=False).status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https://", "http://") + "/v2/health/live")
