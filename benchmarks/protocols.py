"""What JSON costs: mobilenet_v2 at 8 connections over V2 JSON, V2 binary tensors and gRPC raw contents.

Starts `inferlab serve` as a subprocess (one mobilenet_v2, one ONNX thread), drives HTTP with wrk
(Lua body file) and gRPC with a bounded grpc.aio client loop, and reports per protocol:
requests/s, client p50/p99, and the server process's CPU time per request (read from
/proc/PID/stat around each run, all threads), beside onnxruntime's own CPU time for the same input.
The same model runs behind every protocol, so the difference in server CPU per request is what the
encoding costs.

    flock /tmp/inferlab-bench.lock python benchmarks/protocols.py [--seconds 10]

(always under that lock: the machine is shared, and two load tests at once measure each other)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from inferlab.server.proto import inference_pb2 as pb  # noqa: E402
from inferlab.server.proto import inference_pb2_grpc as pb_grpc  # noqa: E402

SHARED_MODEL = next(p for p in (ROOT.parent / "shared", ROOT / "shared") if p.is_dir()) / "models" / "mobilenet_v2.onnx"
CONNECTIONS = 8
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Result:
    protocol: str
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per protocol")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured time per protocol first")
    args = parser.parse_args()
    run(args.seconds, args.warmup)


def run(seconds: float, warmup: float) -> None:
    image = np.random.default_rng(1).standard_normal((1, 3, 224, 224), dtype=np.float32)
    model_ms = _onnxruntime_ms(image)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        (repo / "mobilenet_v2" / "1").mkdir(parents=True)
        shutil.copyfile(SHARED_MODEL, repo / "mobilenet_v2" / "1" / "model.onnx")
        bodies = _write_bodies(Path(tmp), image)
        http_port, grpc_port = _free_port(), _free_port()
        server = _start_server(repo, http_port, grpc_port)
        try:
            url = f"http://127.0.0.1:{http_port}/v2/models/mobilenet_v2/infer"
            results = [
                _wrk("V2 JSON", url, server.pid, bodies["json"], "application/json", None, seconds, warmup),
                _wrk("V2 binary", url, server.pid, bodies["binary"], "application/octet-stream",
                     bodies["header_length"], seconds, warmup),
                _grpc_raw(f"127.0.0.1:{grpc_port}", server.pid, image, seconds, warmup),
            ]
        finally:
            server.terminate()
            server.wait(timeout=15)
    _print(results, model_ms, bodies)


def _write_bodies(folder: Path, image: np.ndarray) -> dict[str, object]:
    tensor = {"name": "input", "shape": list(image.shape), "datatype": "FP32"}
    json_body = json.dumps({"inputs": [{**tensor, "data": image.reshape(-1).tolist()}]}).encode()
    header = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": image.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    (folder / "body.json").write_bytes(json_body)
    (folder / "body.bin").write_bytes(header + image.tobytes())
    return {"json": folder / "body.json", "binary": folder / "body.bin", "header_length": len(header),
            "json_bytes": len(json_body), "binary_bytes": len(header) + image.nbytes}


def _start_server(repo: Path, http_port: int, grpc_port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen(
        [sys.executable, "-m", "inferlab", "serve", "--model-repository", str(repo),
         "--http-port", str(http_port), "--grpc-port", str(grpc_port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read().decode() if server.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/v2/models/mobilenet_v2/ready", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not become ready in 60 s")


def _cpu_s(pid: int) -> float:
    """User + system CPU of the whole server process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _wrk(name: str, url: str, pid: int, body: object, content_type: str, header_length: object,
         seconds: float, warmup: float) -> Result:
    env = {**os.environ, "BODY": str(body), "CONTENT_TYPE": content_type,
           "HEADER_LENGTH": "" if header_length is None else str(header_length)}
    script = str(Path(__file__).with_name("wrk_body.lua"))

    def wrk(duration: float) -> dict[str, float]:
        out = subprocess.run(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration:g}s", "--timeout", "10s", "-s", script,
                              url], env=env, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
        line = next(x for x in out.splitlines() if x.startswith("WRKRESULT"))
        return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", line)}

    wrk(warmup)
    before = _cpu_s(pid)
    stats = wrk(seconds)
    cpu = _cpu_s(pid) - before
    requests = int(stats["requests"])
    return Result(name, requests, int(stats["non2xx"] + stats["errors"]), stats["rps"], stats["p50_ms"],
                  stats["p99_ms"], 1000 * cpu / max(requests, 1))


def _grpc_raw(target: str, pid: int, image: np.ndarray, seconds: float, warmup: float) -> Result:
    request = pb.ModelInferRequest(model_name="mobilenet_v2", raw_input_contents=[image.tobytes()])
    request.inputs.add(name="input", datatype="FP32", shape=image.shape)

    async def drive(duration: float) -> tuple[list[float], int]:
        latencies: list[float] = []
        errors = 0
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            stop = time.perf_counter() + duration

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < stop:  # bounded by time; each call by its own timeout
                    start = time.perf_counter()
                    try:
                        await stub.ModelInfer(request, timeout=10)
                        latencies.append(time.perf_counter() - start)
                    except grpc.aio.AioRpcError:
                        errors += 1

            await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return latencies, errors

    asyncio.run(drive(warmup))
    before = _cpu_s(pid)
    start = time.perf_counter()
    latencies, errors = asyncio.run(drive(seconds))
    elapsed = time.perf_counter() - start
    cpu = _cpu_s(pid) - before
    ms = np.asarray(latencies) * 1000
    return Result("gRPC raw", len(latencies), errors, len(latencies) / elapsed, float(np.percentile(ms, 50)),
                  float(np.percentile(ms, 99)), 1000 * cpu / max(len(latencies), 1))


def _onnxruntime_ms(image: np.ndarray) -> float:
    """The model alone, as the server runs it (one intra-op thread): median thread CPU time of 50 calls.

    CPU time of the calling thread (where a one-thread session does all its work), not wall time, so
    that other processes on the shared machine do not inflate it; comparable with the server's CPU.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(SHARED_MODEL), options, providers=["CPUExecutionProvider"])
    times = []
    for _ in range(60):
        start = time.thread_time()
        session.run(None, {"input": image})
        times.append(time.thread_time() - start)
    return float(np.median(times[10:])) * 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _print(results: list[Result], model_ms: float, bodies: dict[str, object]) -> None:
    print(f"mobilenet_v2, batch 1, {CONNECTIONS} connections; onnxruntime alone: {model_ms:.1f} ms CPU per call "
          f"(1 thread); bodies: JSON {bodies['json_bytes']:,} B, binary {bodies['binary_bytes']:,} B")
    base = results[-1]
    print(f"{'protocol':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'server CPU ms/req':>18} "
          f"{'vs gRPC raw':>12} {'errors':>7}")
    for r in results:
        print(f"{r.protocol:<10} {r.rps:>8.1f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.cpu_ms_per_request:>18.1f} "
              f"{r.cpu_ms_per_request - base.cpu_ms_per_request:>+12.1f} {r.errors:>7}")
    for r in results[:-1]:
        print(f"{r.protocol} vs {base.protocol}: {r.rps / base.rps:.2f}x the requests/s, "
              f"{r.cpu_ms_per_request / base.cpu_ms_per_request:.2f}x the server CPU per request")


if __name__ == "__main__":
    main()
