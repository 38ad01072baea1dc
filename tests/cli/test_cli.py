"""The `inferlab` console script as a user runs it: serve the demo repository, infer, manage models."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, SHARED_MODELS

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "120"}


def inferlab(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "inferlab", *args], input=stdin.decode() if stdin else None,
                          capture_output=True, text=True, env=ENV, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo_data_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data-home")


@pytest.fixture(scope="module")
def demo_server(demo_data_home: Path) -> Iterator[str]:
    """`inferlab serve` with no repository named: a copy of the built-in demo repository."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "inferlab", "serve", "--http-port", str(port),
                             "--auth-token", "tok"], env={**ENV, "XDG_DATA_HOME": str(demo_data_home)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "inferlab serve did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_demo_is_served_from_a_writable_copy(demo_server: str, demo_data_home: Path) -> None:
    copy = demo_data_home / "inferlab" / "demo-repository"
    assert (copy / "digits" / "1" / "model.onnx").is_file()
    assert httpx.get(f"{demo_server}/v2/models/digits/ready").status_code == 200
    assert not (ROOT / "src" / "inferlab" / "demo_repository" / ".inferlab").exists()  # the package stays as shipped


def test_infer_prints_the_digit_and_probabilities(demo_server: str) -> None:
    result = inferlab("infer", "digits", "--data", str(SHARED_MODELS / "digits_sample.json"), "--url", demo_server)
    assert result.returncode == 0, result.stderr
    rows = [line.split("│") for line in result.stdout.splitlines() if line.count("│") == 5]
    firsts = [cells[2].strip() for cells in rows if cells[1].strip()]
    assert firsts == ["7", "6", "3", "7"]
    assert "0.9996" in result.stdout


def test_infer_reads_stdin_and_prints_raw_json(demo_server: str) -> None:
    result = inferlab("infer", "digits", "--data", "-", "--raw", "--url", demo_server, stdin=b"[[0, 1, 2, 3, 4, 5, 6, 7"
                      + b", 8" * 56 + b"]]")
    assert result.returncode == 0, result.stderr
    assert '"shape": [\n        1,\n        10\n      ]' in result.stdout


def test_models_list_upload_rm(demo_server: str) -> None:
    common = ("--url", demo_server, "--token", "tok")
    up = inferlab("models", "upload", "mlp", str(SHARED_MODELS / "digits_mlp.onnx"), "--labels",
                  str(SHARED_MODELS / "digits_labels.txt"), *common)
    assert up.returncode == 0 and "uploaded mlp version 1" in up.stdout, up.stderr
    listed = inferlab("models", "list", *common)
    assert "mlp" in listed.stdout and "READY" in listed.stdout
    assert inferlab("models", "rm", "mlp", *common).returncode == 0
    assert "mlp" not in inferlab("models", "list", *common).stdout


def test_exit_codes(demo_server: str, tmp_path: Path) -> None:
    denied = inferlab("models", "rm", "digits", "--url", demo_server, "--token", "wrong")
    assert denied.returncode == 3 and "401" in denied.stderr
    unreachable = inferlab("models", "list", "--url", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 4 and "cannot reach" in unreachable.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert inferlab("infer", "digits", "--data", str(bad), "--url", demo_server).returncode == 2


@pytest.mark.parametrize("command", [[], ["serve"], ["models"], ["models", "list"], ["models", "upload"],
                                     ["models", "rm"], ["infer"]])
def test_help_everywhere(command: list[str]) -> None:
    result = inferlab(*command, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout
