"""Asynchronous invocation: 202 + call id, the result POSTed to a callback receiver on loopback, and polling."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functions.conftest import deploy, write_function
from tests.functions.test_invoke import ECHO, FLAKY
from tests.functions.test_scaling import wait_until


class Receiver:
    """A tiny HTTP server that records every POST it gets."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.got = threading.Event()
        receiver = self

        class Handle(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(204)
                self.end_headers()
                receiver.got.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/done"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_async_call_with_callback(fn_client: httpx.Client, tmp_path: Path, receiver: Receiver) -> None:
    assert deploy(fn_client, "echo-async", write_function(tmp_path / "echo-async", ECHO)).status_code == 202
    accepted = fn_client.post("/async-function/echo-async", content=b"hello",
                              headers={"X-Callback-Url": receiver.url, "Content-Type": "text/plain"})
    assert accepted.status_code == 202
    call_id = accepted.headers["x-call-id"]
    assert receiver.got.wait(10)
    call = receiver.calls[0]
    assert call["path"] == "/done" and call["body"] == b"olleh"
    assert call["headers"]["X-Call-Id"] == call_id and call["headers"]["X-Function-Status"] == "200"
    result = fn_client.get(f"/async-result/{call_id}")
    assert result.status_code == 200 and result.content == b"olleh"
    assert "handler;dur=" in result.headers["server-timing"]


def test_async_result_without_callback_and_errors(fn_client: httpx.Client, tmp_path: Path) -> None:
    assert deploy(fn_client, "flaky-async", write_function(tmp_path / "flaky-async", FLAKY)).status_code == 202
    call_id = fn_client.post("/async-function/flaky-async", content=b"raise").headers["x-call-id"]
    failed = wait_until(lambda: (r := fn_client.get(f"/async-result/{call_id}")).status_code != 202 and r)
    assert failed.status_code == 500 and "ValueError: boom" in failed.json()["error"]
    assert fn_client.get("/async-result/nope").status_code == 404
    bad = fn_client.post("/async-function/flaky-async", content=b"x", headers={"X-Callback-Url": "file:///etc"})
    assert bad.status_code == 400 and "X-Callback-Url" in bad.json()["error"]
