"""Deploy, invoke and remove functions on a live server; timings, errors and isolation."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import orjson

from inferlab.functions.package import deploy_body
from inferlab.server.app import Server
from tests.conftest import SHARED_MODELS
from tests.functions.conftest import deploy, write_function

ECHO = """
    from inferlab.functions import Handler, Request, Response

    class Echo(Handler):
        def handle(self, request: Request) -> Response:
            print("echo", len(request.body))
            return Response(request.body[::-1], request.content_type, headers={"X-Path": request.path})
"""


def test_deploy_invoke_remove(fn_client: httpx.Client, tmp_path: Path) -> None:
    folder = write_function(tmp_path / "echo", ECHO, idle_timeout_s=5)
    assert deploy(fn_client, "echo", folder).status_code == 202
    reply = fn_client.post("/function/echo/sub/dir", content=b"abc", headers={"Content-Type": "text/plain"})
    assert reply.status_code == 200, reply.text
    assert reply.content == b"cba"
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.headers["x-path"] == "sub/dir"
    assert reply.headers["x-cold-start"] == "true"
    timing = reply.headers["server-timing"]
    assert all(f"{p};dur=" in timing for p in ("queue", "cold-start", "handler", "model"))
    again = fn_client.post("/function/echo", content=b"xy")
    assert again.content == b"yx" and again.headers["x-cold-start"] == "false"
    names = [row["name"] for row in fn_client.get("/system/functions").json()]
    assert "echo" in names
    logs = fn_client.get("/system/logs", params={"name": "echo"}).text
    assert "echo 3" in logs
    assert fn_client.request("DELETE", "/system/functions", json={"functionName": "echo"}).status_code == 202
    gone = fn_client.post("/function/echo", content=b"x")
    assert gone.status_code == 404 and "not deployed" in gone.json()["error"]

FLAKY = """
    import os
    import time

    from inferlab.errors import InvalidInput
    from inferlab.functions import Handler, Request

    class Flaky(Handler):
        def handle(self, request: Request) -> str:
            what = request.body.decode()
            if what == "raise":
                raise ValueError("boom")
            if what == "invalid":
                raise InvalidInput("the body must not say 'invalid'")
            if what == "crash":
                os._exit(3)
            if what == "hang":
                time.sleep(30)
            return "ok " + str(os.getpid())
"""

DIGITS = """
    import numpy as np

    from inferlab.functions import Handler, Request

    class Digits(Handler):
        def decode(self, request: Request) -> np.ndarray:
            return np.asarray(request.json()["rows"], dtype=np.float32)

        def predict(self, rows: np.ndarray) -> np.ndarray:
            with self.timed("model-call"):
                return self.infer("digits", {"input": rows})["probabilities"]

        def encode(self, probabilities: np.ndarray) -> dict:
            return {"labels": probabilities.argmax(axis=1).tolist()}
"""


def test_handler_errors_and_crashes_are_isolated(fn_client: httpx.Client, tmp_path: Path) -> None:
    assert deploy(fn_client, "flaky", write_function(tmp_path / "flaky", FLAKY, timeout_s=0.5)).status_code == 202
    assert deploy(fn_client, "echo2", write_function(tmp_path / "echo2", ECHO)).status_code == 202
    first = fn_client.post("/function/flaky", content=b"hi")
    assert first.status_code == 200 and first.text.startswith("ok ")

    raised = fn_client.post("/function/flaky", content=b"raise")
    assert raised.status_code == 500 and "ValueError: boom" in raised.json()["error"]
    assert fn_client.post("/function/flaky", content=b"hi").text == first.text  # same instance survived

    invalid = fn_client.post("/function/flaky", content=b"invalid")
    assert invalid.status_code == 400 and "must not say" in invalid.json()["error"]

    crashed = fn_client.post("/function/flaky", content=b"crash")
    assert crashed.status_code == 500 and "exited (code 3)" in crashed.json()["error"]
    replaced = fn_client.post("/function/flaky", content=b"hi")
    assert replaced.status_code == 200 and replaced.text != first.text

    hung = fn_client.post("/function/flaky", content=b"hang")
    assert hung.status_code == 504 and "timeout_s=0.5" in hung.json()["error"]
    assert fn_client.post("/function/echo2", content=b"ab").content == b"ba"
    after = fn_client.post("/function/flaky", content=b"hi")
    assert after.status_code == 200 and after.text not in (first.text, replaced.text)
    logs = fn_client.get("/system/logs", params={"name": "flaky"}).text
    assert "ValueError: boom" in logs and "timeout_s=0.5" in logs


def test_handler_calls_server_model(fn_client: httpx.Client, tmp_path: Path) -> None:
    folder = write_function(tmp_path / "digits-fn", DIGITS, models=["digits"])
    assert deploy(fn_client, "digits-fn", folder).status_code == 202
    sample = orjson.loads((SHARED_MODELS / "digits_sample.json").read_bytes())
    rows = sample["inputs"]
    reply = fn_client.post("/function/digits-fn", json={"rows": rows})
    assert reply.status_code == 200, reply.text
    direct = fn_client.post("/v2/models/digits/infer", json={
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [len(rows), 64], "data": rows}]})
    probabilities = np.asarray(direct.json()["outputs"][0]["data"]).reshape(len(rows), 10)
    assert reply.json()["labels"] == probabilities.argmax(axis=1).tolist()
    timing = dict(part.split(";dur=") for part in reply.headers["server-timing"].split(", "))
    assert float(timing["model"]) > 0 and float(timing["model-call"]) >= float(timing["model"])
    bad = fn_client.post("/function/digits-fn", json={"rows": [[1.0, 2.0]]})
    assert bad.status_code == 400 and "input 'input'" in bad.json()["error"]


def test_model_not_listed_is_refused(fn_client: httpx.Client, tmp_path: Path) -> None:
    folder = write_function(tmp_path / "sneaky", DIGITS)  # calls digits without listing it
    assert deploy(fn_client, "sneaky", folder).status_code == 202
    reply = fn_client.post("/function/sneaky", json={"rows": [[0.0] * 64]})
    assert reply.status_code == 400 and "add it under 'models:'" in reply.json()["error"]


def test_deploy_checks_models_and_hooks(fn_client: httpx.Client, tmp_path: Path) -> None:
    missing = deploy(fn_client, "nomodel", write_function(tmp_path / "nomodel", DIGITS, models=["nope"]))
    assert missing.status_code == 400 and "'nope' is not a model" in missing.json()["error"]
    code = "from inferlab.functions import Handler\nclass B(Handler):\n    pass\n"
    broken = write_function(tmp_path / "broken", code)
    reply = deploy(fn_client, "broken", broken)
    assert reply.status_code == 400 and "overrides neither handle() nor predict()" in reply.json()["error"]
    assert "broken" not in [row["name"] for row in fn_client.get("/system/functions").json()]


def test_management_needs_the_token(fn_server: tuple[Server, str], tmp_path: Path) -> None:
    with httpx.Client(base_url=fn_server[1]) as anonymous:
        assert anonymous.get("/system/functions").status_code == 401
        body = deploy_body("echo3", write_function(tmp_path / "echo3", ECHO))
        assert anonymous.post("/system/functions", json=body).status_code == 401
        assert anonymous.post("/system/scale-function/echo3", json={"replicas": 1}).status_code == 401


BROKEN_SETUP = """
    from inferlab.functions import Handler, Request

    class Broken(Handler):
        def setup(self) -> None:
            raise RuntimeError("weights file missing")

        def handle(self, request: Request) -> str:
            return "never"
"""


def test_failing_setup_is_reported_and_not_retried_in_a_loop(fn_client: httpx.Client, tmp_path: Path) -> None:
    folder = write_function(tmp_path / "bad-setup", BROKEN_SETUP, min_instances=1)
    assert deploy(fn_client, "bad-setup", folder).status_code == 202  # hooks are fine; setup runs per instance
    reply = fn_client.post("/function/bad-setup")
    assert reply.status_code == 500
    assert "failed to start: setup() raised RuntimeError: weights file missing" in reply.json()["error"]
    failures = fn_client.get("/system/function/bad-setup").json()["metrics"]["start_failures"]
    assert 1 <= failures <= 3  # backed off, not one start per autoscaler tick
    assert "weights file missing" in fn_client.get("/system/logs", params={"name": "bad-setup"}).text


MALFORMED = '''
from inferlab.functions import Handler, Request, Response


class Thing:
    pass


class Malformed(Handler):
    def handle(self, request: Request) -> Response:
        if request.body == b"object-header":
            return Response(b"x", headers={"x-thing": Thing()})
        if request.body == b"split-header":
            return Response(b"x", headers={"x-a": "1\\r\\nx-b: 2"})
        if request.body == b"status":
            return Response(b"x", status="teapot")
        return Response(b"fine")
'''


def test_malformed_response_is_a_clear_500_and_the_instance_survives(fn_client: httpx.Client, tmp_path: Path) -> None:
    assert deploy(fn_client, "malformed", write_function(tmp_path / "malformed", MALFORMED)).status_code == 202
    expected = {b"object-header": "Response.headers must map str to str", b"split-header": "on one line each",
                b"status": "HTTP status code (100-599), not 'teapot'"}
    for body, message in expected.items():
        reply = fn_client.post("/function/malformed", content=body)
        assert reply.status_code == 500 and message in reply.json()["error"], reply.text
    fine = fn_client.post("/function/malformed", content=b"ok")
    assert fine.status_code == 200 and fine.content == b"fine"
    metrics = fn_client.get("/system/function/malformed").json()["metrics"]
    assert metrics["cold_starts"] == 1 and metrics["errors"] == 3  # one instance answered all four: none replaced
