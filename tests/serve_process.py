"""`inferlab serve --workers N` as a real subprocess: its log file, its URL, and its worker processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import ROOT


@dataclass(frozen=True, slots=True)
class ServeProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path  # stderr: log lines and JSON access-log lines

    def access_log(self, id_prefix: str) -> list[dict[str, object]]:
        """The access-log records of the requests whose V2 id starts with `id_prefix`."""
        needle = f'"id":"{id_prefix}'
        return [json.loads(line) for line in self.log.read_text().splitlines() if needle in line]

    def worker_pids(self) -> set[int]:
        """The supervisor's live worker processes (its other child is multiprocessing's resource tracker)."""
        task = Path(f"/proc/{self.proc.pid}/task")
        children = {int(pid) for t in task.iterdir() for pid in (t / "children").read_text().split()}
        pids = set()
        for pid in children:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                continue
            if b"spawn_main" in cmdline and state != "Z":
                pids.add(pid)
        return pids


def fresh(url: str) -> httpx.Client:
    """A client whose single connection is new (so the kernel picks a worker for it)."""
    return httpx.Client(base_url=url, limits=httpx.Limits(max_keepalive_connections=0))


def start_serve(repository: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with open(log, "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "inferlab", "serve", "--http-port", "0", "--grpc-port", "-1",
             "--model-repository", str(repository), "--access-log", *args],
            env=env, stderr=stderr,
        )


@contextmanager
def serve_workers(repository: Path, log: Path, workers: int = 2, ready_model: str = "digits") -> Iterator[ServeProcess]:
    """The server with `workers` workers, once every worker has `ready_model` loaded; SIGTERM must stop it cleanly."""
    proc = start_serve(repository, log, "--workers", str(workers))
    try:
        yield ServeProcess(proc, _wait_ready(proc, log, ready_model), log)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0


def _wait_ready(proc: subprocess.Popen[bytes], log: Path, model: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"workers serving on ([\d.]+):(\d+)", log.read_text())
        if not found:
            time.sleep(0.05)
        else:
            url = f"http://{found[1]}:{found[2]}"
            while time.monotonic() < deadline:  # both workers listening and loaded
                try:
                    if all(fresh(url).get(f"/v2/models/{model}/ready").status_code == 200 for _ in range(8)):
                        return url
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
    raise AssertionError(f"the workers did not start:\n{log.read_text()[-3000:]}")
