"""Batching, admission control, metrics and the latency breakdown through a real server on loopback."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from inferlab.config import ServerConfig
from inferlab.runtimes import RUNTIMES
from inferlab.server.app import serve_in_thread
from inferlab.server.http_protocol import DIRECT_BODY_BYTES
from tests.batching.conftest import Recorder, recording_repository
from tests.conftest import SHARED_MODELS

REC_CONFIG = "max_batch_size: 8\nbatching:\n  max_queue_delay_us: 1000\n  max_queue_size: 1\n"
DIGITS_CONFIG = "max_batch_size: 64\nbatching:\n  max_queue_delay_us: 3000\n"


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, recorder: Recorder) -> Iterator[tuple[str, Path]]:
    root = recording_repository(tmp_path_factory.mktemp("repo"), REC_CONFIG)
    (root / "digits" / "1").mkdir(parents=True)
    shutil.copyfile(SHARED_MODELS / "digits_mlp.onnx", root / "digits" / "1" / "model.onnx")
    (root / "digits" / "config.yaml").write_text(DIGITS_CONFIG)
    config = ServerConfig(model_repository=root, http_port=0, access_log=True)
    with serve_in_thread(config, runtimes={**RUNTIMES, "recording": recorder.load}) as (_, url):
        yield url, root


def body(name: str, x: np.ndarray, **parameters: object) -> dict[str, object]:
    doc: dict[str, object] = {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32",
                                          "data": x.ravel().tolist()}]}
    if parameters:
        doc["parameters"] = parameters
    return doc


def metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on /metrics keyed by (name, sorted labels)."""
    text = httpx.get(f"{url}/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def sample(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted({"model": "rec", "version": "1", **labels}.items()))), 0.0)


def test_concurrent_mixed_sizes_on_a_real_model_match_unbatched_onnxruntime(server: tuple[str, Path]) -> None:
    url, _ = server
    session = ort.InferenceSession(str(SHARED_MODELS / "digits_mlp.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    xs = [rng.integers(0, 17, size=(int(rng.integers(1, 5)), 64)).astype(np.float32) for _ in range(48)]
    with httpx.Client() as client, ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda x: client.post(f"{url}/v2/models/digits/infer", json=body("input", x)), xs))
    sizes = []
    for x, reply in zip(xs, replies, strict=True):
        assert reply.status_code == 200, reply.text
        out = reply.json()["outputs"][0]
        assert out["shape"] == [len(x), 10]
        want = session.run(None, {"input": x})[0]
        np.testing.assert_allclose(np.array(out["data"], np.float32).reshape(len(x), 10), want, atol=1e-5)
        sizes.append(reply.json()["parameters"]["batch_size"])
    assert max(sizes) > 4, "concurrent requests were batched"


def test_full_queue_answers_503_with_retry_after(server: tuple[str, Path], recorder: Recorder) -> None:
    url, _ = server
    before = metrics(url)
    recorder.gate.clear()
    recorder.started.clear()
    with httpx.Client(timeout=10) as client, ThreadPoolExecutor(2) as pool:
        running = pool.submit(client.post, f"{url}/v2/models/rec/infer", json=body("x", np.ones((1, 2), np.float32)))
        assert recorder.started.wait(5)
        queued = pool.submit(client.post, f"{url}/v2/models/rec/infer", json=body("x", np.ones((1, 2), np.float32)))
        _wait_for_queue_depth(url, 1)
        refused = client.post(f"{url}/v2/models/rec/infer", json=body("x", np.ones((1, 2), np.float32)))
        recorder.gate.set()
        assert running.result().status_code == 200
        assert queued.result().status_code == 200
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    assert "is overloaded" in refused.json()["error"]
    after = metrics(url)
    assert sample(after, "inferlab_request_failure_total", reason="overloaded") - sample(
        before, "inferlab_request_failure_total", reason="overloaded") >= 1
    assert sample(after, "inferlab_request_success_total") - sample(before, "inferlab_request_success_total") == 2


def _wait_for_queue_depth(url: str, depth: int) -> None:
    for _ in range(500):
        if sample(metrics(url), "inferlab_queue_depth") == depth:
            return
    raise AssertionError(f"the queue never held {depth} request(s)")


@pytest.mark.parametrize("how", ["header", "parameter"])
def test_request_that_times_out_in_the_queue_gets_504_and_never_runs(
    server: tuple[str, Path], recorder: Recorder, how: str
) -> None:
    url, _ = server
    before = metrics(url)
    recorder.gate.clear()
    recorder.started.clear()
    marker = np.full((3, 2), 42.0, np.float32)
    with httpx.Client(timeout=10) as client, ThreadPoolExecutor(1) as pool:
        running = pool.submit(client.post, f"{url}/v2/models/rec/infer", json=body("x", np.ones((1, 2), np.float32)))
        assert recorder.started.wait(5)
        if how == "header":
            reply = client.post(f"{url}/v2/models/rec/infer", json=body("x", marker),
                                headers={"Inferlab-Timeout-Ms": "20"})
        else:
            reply = client.post(f"{url}/v2/models/rec/infer", json=body("x", marker, timeout=20_000))
        recorder.gate.set()
        assert running.result().status_code == 200
    assert reply.status_code == 504, reply.text
    assert "was not run" in reply.json()["error"]
    assert (3, 2) not in recorder.batches
    after = metrics(url)
    assert sample(after, "inferlab_request_failure_total", reason="timeout") - sample(
        before, "inferlab_request_failure_total", reason="timeout") == 1


def test_bad_timeout_is_a_400_naming_it(server: tuple[str, Path]) -> None:
    url, _ = server
    reply = httpx.post(f"{url}/v2/models/rec/infer", json=body("x", np.ones((1, 2), np.float32)),
                       headers={"Inferlab-Timeout-Ms": "soon"})
    assert reply.status_code == 400
    assert "Inferlab-Timeout-Ms" in reply.json()["error"]


def test_metrics_count_requests_batches_flushes_and_latencies(server: tuple[str, Path], recorder: Recorder) -> None:
    url, _ = server
    before = metrics(url)
    with httpx.Client() as client:  # one at a time: this model's queue holds a single request
        replies = [client.post(f"{url}/v2/models/rec/infer", json=body("x", np.full((1, 2), i, np.float32)))
                   for i in range(4)]
    assert all(r.status_code == 200 for r in replies)
    bad = httpx.post(f"{url}/v2/models/rec/infer", json=body("nope", np.ones((1, 2), np.float32)))
    assert bad.status_code == 400
    after = metrics(url)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("inferlab_request_success_total") == 4
    assert delta("inferlab_request_failure_total", reason="invalid") == 1
    for name in ("inferlab_request_duration_seconds_count", "inferlab_queue_duration_seconds_count",
                 "inferlab_inference_duration_seconds_count"):
        assert delta(name) == 4, name
    assert delta("inferlab_request_duration_seconds_sum") > 0
    flushes = sum(delta("inferlab_batch_flushes_total", cause=c) for c in ("full", "preferred", "delay"))
    assert flushes == delta("inferlab_batch_size_count") >= 1
    assert delta("inferlab_batch_size_sum") == 4
    assert sample(after, "inferlab_queue_depth") == 0


def test_server_timing_parts_add_up_to_the_total(server: tuple[str, Path]) -> None:
    url, _ = server
    reply = httpx.post(f"{url}/v2/models/digits/infer", json=body("input", np.ones((2, 64), np.float32)))
    assert reply.status_code == 200
    parts: dict[str, str] = {}
    for item in reply.headers["server-timing"].split(","):
        name, _, value = item.strip().partition(";")
        parts[name] = value.split("=", 1)[1].strip('"')
    assert set(parts) == {"receive", "decode", "queue", "infer", "encode", "total", "batch"}
    total = float(parts["total"])
    assert sum(float(parts[p]) for p in ("receive", "decode", "queue", "infer", "encode")) >= 0.95 * total
    assert total > 0
    assert int(parts["batch"]) >= 2
    params = reply.json()["parameters"]
    assert {"receive_ms", "decode_ms", "queue_ms", "infer_ms", "batch_size"} <= set(params)


def test_a_body_that_arrives_late_is_receive_time_not_decode_time(server: tuple[str, Path]) -> None:
    """The route starts when the head is parsed; the time the body takes to come is transport."""
    url, _ = server
    payload = orjson.dumps(body("input", np.full((64, 64), 0.123456789, np.float32)))  # read directly: see below
    assert len(payload) > DIRECT_BODY_BYTES
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload[:1000])
        time.sleep(0.2)
        sock.sendall(payload[1000:])
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(65536)
    head = reply.split(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("http/1.1 200")
    timing = head.split("server-timing:")[1].split("\r\n")[0]
    parts = {name.strip(): float(value) for name, _, value in
             (item.partition(";dur=") for item in timing.split(",")) if value}
    assert parts["receive"] >= 150  # the 200 ms pause, less what the head's route start took to schedule
    assert parts["decode"] < 100


def test_access_log_has_one_json_line_per_request(server: tuple[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    url, _ = server
    with caplog.at_level(logging.INFO, logger="inferlab.access"):
        doc = body("input", np.ones((1, 64), np.float32))
        doc["id"] = "req-17"
        assert httpx.post(f"{url}/v2/models/digits/infer", json=doc).status_code == 200
        assert httpx.post(f"{url}/v2/models/digits/infer", json=body("x", np.ones((1, 64)))).status_code == 400
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "inferlab.access"]
    assert [line["status"] for line in lines] == [200, 400]
    assert lines[0]["id"] == "req-17"
    assert {"receive_ms", "decode_ms", "queue_ms", "infer_ms", "encode_ms", "total_ms", "batch_size"} <= set(lines[0])
    assert lines[1]["id"] and "unknown input 'x'" in lines[1]["error"]


def test_load_with_a_config_parameter_rewrites_config_yaml_and_reloads(server: tuple[str, Path]) -> None:
    url, root = server
    config_path = root / "digits" / "config.yaml"
    new = {"max_batch_size": 32, "batching": {"max_queue_delay_us": 0}}
    reply = httpx.post(f"{url}/v2/repository/models/digits/load", json={"parameters": {"config": json.dumps(new)}})
    assert reply.status_code == 200, reply.text
    assert yaml.safe_load(config_path.read_text()) == new
    too_big = httpx.post(f"{url}/v2/models/digits/infer", json=body("input", np.ones((40, 64), np.float32)))
    assert too_big.status_code == 400 and "max_batch_size 32" in too_big.json()["error"]

    bad = {"max_batch_size": 0, "batching": {"max_queue_delay_us": 0}}
    reply = httpx.post(f"{url}/v2/repository/models/digits/load", json={"parameters": {"config": json.dumps(bad)}})
    assert reply.status_code == 400 and "max_batch_size >= 1" in reply.json()["error"]
    assert yaml.safe_load(config_path.read_text()) == new, "a config that does not load is not kept"
    assert httpx.get(f"{url}/v2/models/digits/ready").status_code == 200

    reply = httpx.post(f"{url}/v2/repository/models/digits/load", json={"parameters": {"config": "{nope"}})
    assert reply.status_code == 400 and "not valid JSON" in reply.json()["error"]
    config_path.write_text(DIGITS_CONFIG)
    assert httpx.post(f"{url}/v2/repository/models/digits/load").status_code == 200
