"""Deploy, invoke and remove functions on a live server; timings, errors and isolation."""

from __future__ import annotations

from pathlib import Path

import httpx

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
