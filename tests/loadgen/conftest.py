"""A tiny HTTP server in its own process, for every load generator test in this folder."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve().parent


class TinyServer:
    """Handle on the running tinyserver.py process (see its docstring for the paths)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    @property
    def requests(self) -> int:
        return int(httpx.get(self.url + "/_count").text)

    def stall(self, after_s: float, for_s: float) -> None:
        httpx.get(self.url + f"/_stall?after={after_s}&for={for_s}")


@pytest.fixture(scope="module")
def tiny() -> Iterator[TinyServer]:
    proc = subprocess.Popen([sys.executable, str(HERE / "tinyserver.py")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield TinyServer(int(proc.stdout.readline()))
    finally:
        proc.terminate()
        proc.wait(5)
