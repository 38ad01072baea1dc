"""The server's own per-request cost, measured over the wire against a real server process.

The server runs in its own process (as in production) so that the client's work does not share its
interpreter. Unloaded latency minus the model's in-process service time is the whole overhead; the
server's event-loop CPU time per request (read from /proc for its main thread) is the part that
queues. The rest is delay: client, kernel and loopback time that every request pays but none waits for.

Example::

    with server_process(repo) as server:
        apply_config(server.url, "digits", ModelConfig(max_batch_size=8))
        oh = measure_overhead(server, "digits", v2_json_body(profile.inputs), model_s=1e-5)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import numpy as np
import orjson

import inferlab
from inferlab.config import ModelConfig
from inferlab.errors import InvalidInput
from inferlab.perfmodel.profile import ProtocolOverhead, example_inputs
from inferlab.tensors import TensorSpec

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ServerProcess:
    """A running `inferlab serve` child process and where it listens."""

    url: str
    pid: int


@contextmanager
def server_process(repository: Path, start_timeout_s: float = 60.0) -> Iterator[ServerProcess]:
    """Run `python -m inferlab serve` on a free loopback port until the block ends."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(inferlab.__file__).resolve().parents[1])}
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(
            [sys.executable, "-m", "inferlab", "serve", "--model-repository", str(repository),
             "--http-port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, proc, log, start_timeout_s)
            yield ServerProcess(url, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def v2_json_body(inputs: Sequence[TensorSpec], batch_size: int = 1) -> bytes:
    """A KServe V2 JSON request for `batch_size` rows of seeded example data, encoded once."""
    full = [TensorSpec(s.name, s.datatype, (-1, *s.shape)) for s in inputs]
    feed = example_inputs(full, batch_size)
    return orjson.dumps({"inputs": [
        {"name": name, "datatype": spec.datatype, "shape": list(arr.shape), "data": arr.ravel().tolist()}
        for (name, arr), spec in zip(feed.items(), full, strict=True)
    ]})


def apply_config(url: str, model: str, config: ModelConfig, timeout_s: float = 120.0) -> None:
    """Write `config` as the model's config.yaml and reload it, through the repository load API."""
    body = {"parameters": {"config": orjson.dumps(config.to_dict()).decode()}}
    response = httpx.post(f"{url}/v2/repository/models/{model}/load", json=body, timeout=timeout_s)
    if response.status_code != 200:
        raise InvalidInput(f"loading '{model}' with the new config failed: {response.status_code} {response.text}")


def measure_overhead(
    server: ServerProcess, model: str, body: bytes, model_s: float, seconds: float = 3.0, max_requests: int = 2000
) -> ProtocolOverhead:
    """Send V2 JSON requests one at a time for about `seconds`; split the overhead into serial and delay."""
    latencies: list[float] = []
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        url = f"/v2/models/{model}/infer"
        for _ in range(5):  # warm-up: connection, first-call allocations
            _check(client.post(url, content=body, headers=headers), model)
        cpu0 = _main_thread_cpu_s(server.pid)
        stop = time.perf_counter() + seconds
        while len(latencies) < max_requests and (len(latencies) < 20 or time.perf_counter() < stop):
            t0 = time.perf_counter()
            response = client.post(url, content=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            _check(response, model)
        cpu = _main_thread_cpu_s(server.pid) - cpu0
    total = max(0.0, float(np.median(latencies)) - model_s)
    serial = min(total, cpu / len(latencies))
    return ProtocolOverhead(serial_s=serial, delay_s=total - serial, latency_s=tuple(latencies))


def _check(response: httpx.Response, model: str) -> None:
    if response.status_code != 200:
        raise InvalidInput(f"inference on '{model}' failed while profiling: {response.status_code} {response.text}")


def _main_thread_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process's main thread (the event loop), from /proc."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: IO[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            err = log.read().decode(errors="replace")
            raise InvalidInput(f"the server exited with {proc.returncode} before it was ready: {err[-2000:]}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise InvalidInput(f"the server at {url} was not ready within {timeout_s:.0f} s")
