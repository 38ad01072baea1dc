"""What the benchmarks share: start a server process, wait for it, load it with wrk, stop it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[1]
SHARED = next(p for p in (ROOT.parent / "shared", ROOT / "shared") if (p / "models").is_dir())
MODELS = SHARED / "models"
WRK_LUA = SHARED / "bench" / "wrk_post.lua"
BENCH_WORK = Path(os.environ.get("BENCH_WORK", ROOT.parent / ".benchwork"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(
    cmd: list[str], ready_url: str, env: dict[str, str] | None = None, timeout_s: float = 120
) -> Iterator[None]:
    """Start `cmd` in its own session, wait until GET `ready_url` answers 200, and kill the session after."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        yield from _serve_until_done(proc, log, ready_url, timeout_s)


def _serve_until_done(
    proc: subprocess.Popen[bytes], log: IO[bytes], ready_url: str, timeout_s: float
) -> Iterator[None]:
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"{proc.args!r} did not become ready:\n{tail}")
            time.sleep(0.2)
        yield
    finally:
        with_session(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with_session(proc, signal.SIGKILL)
            proc.wait()


def with_session(proc: subprocess.Popen[bytes], sig: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def inferlab_cmd(repository: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "inferlab", "serve", "--model-repository", str(repository),
            "--http-port", str(port), *extra]


def digits_repository(root: Path, config: str | None = None) -> Path:
    (root / "digits" / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(MODELS / "digits_mlp.onnx", root / "digits" / "1" / "model.onnx")
    if config:
        (root / "digits" / "config.yaml").write_text(config)
    return root


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def wrk(url: str, body: Path, connections: int, seconds: float, threads: int = 1) -> WrkResult:
    """POST `body` with wrk for `seconds`; errors = non-2xx + socket errors."""
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
         "-s", str(WRK_LUA), url],
        env={**os.environ, "BODY": str(body)}, capture_output=True, text=True, check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKRESULT"))
    fields = dict(re.findall(r"(\w+)=([\d.]+)", line))
    errors = sum(int(fields[k]) for k in ("non2xx", "connect", "read", "write", "timeout"))
    return WrkResult(float(fields["rps"]), float(fields["p50_ms"]), float(fields["p99_ms"]),
                     int(fields["requests"]), errors)
