"""The server's own per-request cost, measured over the wire against a real server process.

The server runs in its own process (as in production) so that the client's work does not share its
interpreter. Unloaded latency minus the model's in-process service time is the whole overhead; the
event loop's cost per request under load is the part that queues (see `measure_overhead`). The rest
is delay: client, kernel and loopback time that every request pays but none waits for.

Example::

    with server_process(repo) as server:
        apply_config(server.url, "digits", ModelConfig(max_batch_size=8))
        oh = measure_overhead(server, encode_call("v2-json", "digits", profile.inputs), model_s=1e-5)
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import IO

import httpx
import numpy as np
import numpy.typing as npt
import orjson

import inferlab
from inferlab.config import ModelConfig
from inferlab.errors import InvalidInput
from inferlab.experiments import experiment
from inferlab.loadgen.launch import run
from inferlab.loadgen.plan import LoadPlan, RateShape, Target
from inferlab.loadgen.result import RunResult
from inferlab.perfmodel.profile import PROTOCOLS, ProtocolOverhead, example_inputs
from inferlab.tensors import TensorSpec

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_SATURATING_CONNECTIONS = 16
_IDLE_GAPS_S = (0.0, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.02, 0.1)
_MIN_PER_GAP = 15  # requests per idle gap: a median of fewer let one noisy moment set the whole curve
_SPLIT_MIN_BUSY = 0.5  # below this loop utilisation the saturated run cannot split serial from wake
_PACED_CLEAR_PERCENTILE = 90  # paced sends leave this share of the requests done before the gap starts
_IDLE_PROBE_S = 0.3  # how long the idle loop's own CPU use is measured, to take it out of the idle gaps
_OPEN_LOOP_SHARE = 0.5  # the client's open-loop CPU is measured at this share of the saturated rate


@dataclass(frozen=True, slots=True)
class ServerProcess:
    """A running `inferlab serve` child process and where it listens."""

    url: str
    pid: int


@contextmanager
def server_process(repository: Path, workers: int = 1, start_timeout_s: float = 60.0) -> Iterator[ServerProcess]:
    """Run `python -m inferlab serve --workers N` on a free loopback port until the block ends."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(inferlab.__file__).resolve().parents[1])}
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(
            [sys.executable, "-m", "inferlab", "serve", "--model-repository", str(repository),
             "--http-port", str(port), "--workers", str(workers)],
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


@dataclass(frozen=True, slots=True)
class InferCall:
    """One inference request, encoded once: where it goes, its extra headers and its body."""

    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def encode_call(protocol: str, model: str, inputs: Sequence[TensorSpec], batch_size: int = 1) -> InferCall:
    """A request for `batch_size` rows of seeded example data in `protocol` (one of PROTOCOLS)."""
    full = [TensorSpec(s.name, s.datatype, (-1, *s.shape)) for s in inputs]
    feed = example_inputs(full, batch_size)
    path = f"/v2/models/{model}/infer"
    if protocol == "v2-json":
        body = orjson.dumps({"inputs": [
            {"name": name, "datatype": spec.datatype, "shape": list(arr.shape), "data": arr.ravel().tolist()}
            for (name, arr), spec in zip(feed.items(), full, strict=True)
        ]})
        return InferCall(path, (("Content-Type", "application/json"),), body)
    if protocol == "v2-binary":  # the binary tensor extension: JSON header, then raw little-endian tensors
        header = orjson.dumps({
            "inputs": [{"name": name, "datatype": spec.datatype, "shape": list(arr.shape),
                        "parameters": {"binary_data_size": arr.nbytes}}
                       for (name, arr), spec in zip(feed.items(), full, strict=True)],
            "parameters": {"binary_data_output": True},
        })
        tail = b"".join(np.ascontiguousarray(arr).tobytes() for arr in feed.values())
        return InferCall(path, (("Content-Type", "application/octet-stream"),
                                ("Inference-Header-Content-Length", str(len(header)))), header + tail)
    raise InvalidInput(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")


def apply_config(url: str, model: str, config: ModelConfig, timeout_s: float = 120.0) -> None:
    """Write `config` as the model's config.yaml, reload it through the repository load API, wait until ready."""
    experiment.apply_config(url, model, config.to_dict(), timeout_s)


def measure_overhead(server: ServerProcess, call: InferCall, model_s: float, seconds: float = 3.0) -> ProtocolOverhead:
    """Runs of inferlab.loadgen (a lean client, so it measures the server).

    One connection gives the unloaded latency back to back, and paced open-loop sends (`_paced`) the
    latency after idle gaps from 0.1 to 100 ms (the wake-up penalty curve), with the event loop's CPU
    per request after each gap: a loop
    that slept runs its next request from cold caches, which costs it CPU time that queues (digits
    over JSON: 0.11 ms back to back, 0.34 ms per request at 1,000 Poisson arrivals/s), not just delay
    (`idle_loop_s`: beyond an equal run without pauses, which pays for opening its connection too).
    The event loop's CPU time per request (its thread's, from
    /proc) is measured twice: with one connection, where every request finds the loop idle, and with
    16 connections saturating the server (one instance, no batching), where most find it busy; the
    difference, over the loaded loop's utilisation, is what waking the loop costs (`wake_s`), the rest
    is `serial_s` (`split_loop_cost`). Unless the loop is the busier station, the time per request beyond the
    model's own (the server's Server-Timing `infer` span) there is the instance's hand-off between batches,
    `handoff_s`, and that span's median over its median back to back on one connection just before is
    `infer_scale` (mobilenet_v2 over binary: 3.50 ms saturated against 3.37 ms back to back and 3.33 ms in
    process; 3.50-3.71 ms under 50-220 Poisson arrivals/s). Not over the in-process time itself: that was
    measured a minute earlier, and this machine's speed moves by as much as the effect within a minute. The load
    generator's CPU per request, `client_cpu_s`, comes from an open-loop Poisson run at half the saturated rate,
    as predictions and validations load the server: open loop, each request has its own timer wake-up and finds
    the client idle more often, which costs it 2-3x the CPU of a closed-loop request, more at low rates (digits
    0.06-0.10 against 0.03 ms, mobilenet_v2 0.52-0.71 against 0.32-0.37 ms). The server's `encode` and `decode`
    spans back to back give `reply_share`. A round of the loop straight after another costs it as much as waking
    it (`rewake_s` = `wake_s`): pairs of digits requests 0.05-0.2 ms apart cost the loop 0.13-0.16 ms of CPU
    each, as much as one alone, and re-predicting eight validation runs of `benchmarks/perfmodel.py` with it
    instead of a round cost fitted to one open-loop run scored as well or better in every run (p50 within 15 %:
    132 against 122 of 180 points; p99 within 25 %: 93 against 82; docs/perfmodel.md).
    """
    url = server.url
    _closed(url, call, 1, requests=10)  # warm-up: connections, first-call allocations
    cpu0 = _main_thread_cpu_s(server.pid)
    alone = _closed(url, call, 1, duration_s=seconds / 4)  # each request wakes the idle loop
    latencies = _latencies(alone)
    cpu1 = _main_thread_cpu_s(server.pid)
    woken_s = (cpu1 - cpu0) / max(1, latencies.size)
    warm = float(np.median(latencies))
    round_s = sum(_IDLE_GAPS_S) + len(_IDLE_GAPS_S) * (warm + max(model_s, 1e-3))  # one request per gap
    per_gap = max(_MIN_PER_GAP, min(40, int(seconds / 4 / round_s)))
    before = _main_thread_cpu_s(server.pid)
    time.sleep(_IDLE_PROBE_S)
    idle_cpu = (_main_thread_cpu_s(server.pid) - before) / _IDLE_PROBE_S  # the idle loop's own timers
    before = _main_thread_cpu_s(server.pid)
    _closed(url, call, 1, requests=per_gap)  # as the paced runs, without pauses: a run opens a connection
    unpaused = (_main_thread_cpu_s(server.pid) - before) / per_gap
    points = []  # (actual gap, paced latencies, loop CPU per request beyond the idle loop's)
    busy_s = warm  # how long a paced request holds the system: paced from the longest gap down, the last run's
    for gap in sorted(_IDLE_GAPS_S[1:], reverse=True):
        for _ in range(2):  # again when no request found the system idle (all queued behind a slow connection)
            before = _main_thread_cpu_s(server.pid)
            paced = _paced(url, call, 1.0 / (gap + busy_s), per_gap)
            lat, actual = paced_latencies(paced), paced_gap_s(paced)
            if actual > 0:
                break
        busy_s = max(warm, float(np.percentile(lat, _PACED_CLEAR_PERCENTILE)))
        if actual > 0:  # a run that left no gap twice measured queueing, not waking up: left out of the curve
            points.append((actual, lat, (_main_thread_cpu_s(server.pid) - before) / per_gap - idle_cpu * actual))
    gaps, penalties, gap_cpu = [0.0], [], []
    for actual, lat, cpu in sorted(points, key=lambda point: point[0]):
        gaps.append(max(gaps[-1] + 1e-6, actual))
        penalties.append(lat)
        gap_cpu.append(cpu)
    lone = _closed(url, call, 1, duration_s=seconds / 8)  # the model alone, seconds before it is saturated
    cpu1 = _main_thread_cpu_s(server.pid)
    loaded = _closed(url, call, _SATURATING_CONNECTIONS, duration_s=seconds / 2)
    requests = max(1, loaded.counts.requests)
    cpu_s = (_main_thread_cpu_s(server.pid) - cpu1) / requests
    per_request_s = 1.0 / loaded.ok_per_s
    poisson_rps = _OPEN_LOOP_SHARE * loaded.ok_per_s
    client_s = _open_loop_client_cpu_s(url, call, poisson_rps, seconds / 4)
    busy = min(1.0, cpu_s / per_request_s)
    infer_s = loaded.server_timing["infer"].mean_ms / 1e3 if "infer" in loaded.server_timing else 0.0
    instance_bound = infer_s > cpu_s  # the instance, not the loop, is the busier station
    handoff = max(0.0, per_request_s - infer_s) if instance_bound else 0.0
    lone_s = median_infer_s(lone)
    scale = median_infer_s(loaded) / lone_s if instance_bound and lone_s > 0 else 1.0
    # Beyond the model's time in the same run, not in the profile's process a minute before: the machine's
    # speed moved by more than the whole overhead in between once (mobilenet_v2's loop came out 0.06 ms, not 0.31).
    total = max(0.0, warm - (median_infer_s(alone) or model_s))
    serial, wake = split_loop_cost(woken_s, cpu_s, busy, total)
    curve = monotone_fit([0.0, *(max(0.0, float(np.median(lat)) - warm) for lat in penalties)])
    cold = monotone_fit([0.0, *(max(0.0, c - unpaused) for c in gap_cpu)])
    return ProtocolOverhead(serial_s=serial, delay_s=max(0.0, total - serial - wake),
                            latency_s=tuple(latencies.tolist()), idle_gap_s=tuple(gaps),
                            idle_penalty_s=tuple(curve), client_cpu_s=client_s,
                            handoff_s=handoff, wake_s=wake, loop_busy=busy, idle_loop_s=tuple(cold),
                            reply_share=reply_share(alone), rewake_s=wake, infer_scale=scale)


def median_infer_s(result: RunResult) -> float:
    """The median of the run's Server-Timing `infer` spans in seconds (0 when the server did not report
    them). A median: a preempted call's span is a stall, not the model."""
    spans = [r.server_timing_ms["infer"] for r in result.requests if "infer" in r.server_timing_ms]
    return float(np.median(spans)) / 1e3 if spans else 0.0


def reply_share(result: RunResult) -> float:
    """The share of a request's loop work that comes after the model: its reply's encoding over both codecs'
    (the server's Server-Timing `encode` and `decode` spans, with `receive`, the body's arrival, counted with
    decode as the profiles measured before it was its own span; parsing the request and writing the reply,
    outside them, are taken as alike). 0 when the server did not report them."""
    spans = result.server_timing
    if "encode" not in spans or "decode" not in spans:
        return 0.0
    encode = spans["encode"].mean_ms
    decode = spans["decode"].mean_ms + (spans["receive"].mean_ms if "receive" in spans else 0.0)
    return encode / (encode + decode) if encode + decode > 0 else 0.0


def split_loop_cost(alone_s: float, loaded_s: float, busy: float, total_s: float) -> tuple[float, float]:
    """(serial_s, wake_s) from the loop's CPU per request alone (serial + wake) and saturated (serial + wake x
    the share of requests that found it idle, 1 - `busy`), within the unloaded overhead `total_s`.

    A loop busy less than half the time when saturated (the instance was the bottleneck) divides the two
    runs' noise by its small utilisation (mobilenet_v2: 0.09; all its ~0.4 ms went to wake_s, so a request
    arriving while the loop worked cost it nothing): then a saturated request's cost is `serial_s` and
    only the rest is waking.
    """
    if busy >= _SPLIT_MIN_BUSY:
        wake = min(alone_s, max(0.0, (alone_s - loaded_s) / busy))
        return max(0.0, min(total_s - wake, loaded_s - wake * (1.0 - busy))), wake
    wake = min(alone_s, max(0.0, alone_s - loaded_s))
    return max(0.0, min(total_s - wake, loaded_s)), wake


def monotone_fit(values: Sequence[float]) -> list[float]:
    """The non-decreasing sequence closest to `values` in least squares (pool adjacent violators).

    The wake-up penalty cannot shrink as the idle gap grows, but each gap's median is noisy on a shared
    machine. A running maximum would let one noisy gap lift every longer gap to its value (one profile
    put 4.4 ms on every gap from 0.25 ms on, against ~1 ms measured at the gaps after it); pooling a
    violating gap with its neighbours averages the noise out instead.
    """
    blocks: list[list[float]] = []  # [mean, count] of pooled neighbours
    for v in values:
        blocks.append([float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, count = blocks.pop()
            prev = blocks[-1]
            prev[0] = (prev[0] * prev[1] + mean * count) / (prev[1] + count)
            prev[1] += count
    return [mean for mean, count in blocks for _ in range(int(count))]


def target_for(url: str, call: InferCall) -> Target:
    """The load generator's target for this call on the server at base `url`."""
    return Target(url.rstrip("/") + call.path, method="POST", headers=call.headers, bodies=(call.body,))


def _closed(url: str, call: InferCall, connections: int, requests: int | None = None,
            duration_s: float | None = None) -> RunResult:
    return _checked(LoadPlan(target_for(url, call), mode="closed", concurrency=connections, requests=requests,
                             duration_s=duration_s, record_requests=True))


def _checked(plan: LoadPlan) -> RunResult:
    """Run a profiling plan; any failed request fails the profile."""
    result = run(plan)
    if result.counts.ok != result.counts.requests:
        first = result.errors[0].message if result.errors else f"status codes {result.status_codes}"
        raise InvalidInput(f"requests to {plan.target.url} failed while profiling: {first}")
    return result


def _open_loop_client_cpu_s(url: str, call: InferCall, rate_rps: float, seconds: float) -> float:
    """The load generator's CPU seconds per request when it sends Poisson arrivals at `rate_rps`."""
    plan = LoadPlan(target_for(url, call), mode="open", concurrency=32, requests=max(50, int(rate_rps * seconds)),
                    arrivals=RateShape(((math.inf, rate_rps, rate_rps),), poisson=True), timeout_s=30.0)
    result = run(plan)
    return result.self_check.cpu_seconds / max(1, result.counts.requests)


def _paced(url: str, call: InferCall, rate_rps: float, requests: int) -> RunResult:
    """`requests` open-loop sends evenly spaced at `rate_rps` (and one more, which opens the connection).

    Paced like this, the client sends as predictions and validations do (a precise timer per send,
    latency from the intended send time), and the system sits idle between a response and the next
    send for the spacing less the latency. A paced request takes longer than one back to back
    (mobilenet_v2 over binary: ~1 ms), so spacing by the back-to-back latency left no gap at all and
    the sends queued behind each other: the spacing adds the 90th percentile latency of the run before
    (the runs go from the longest gap down). A closed loop's think-time pause ended on the event loop's millisecond
    timer instead: 0.25 and 0.5 ms pauses came out ~0.01 ms, and the client's timer wake-up was not in
    the latency (digits over JSON: 0.22-0.27 ms paced, at every gap from 0.1 to 20 ms, against 0.175 ms
    back to back).
    """
    return _checked(LoadPlan(target_for(url, call), mode="open", concurrency=1, requests=requests + 1,
                             arrivals=RateShape(((math.inf, rate_rps, rate_rps),)), timeout_s=30.0,
                             record_requests=True))


def _paced_pairs(result: RunResult) -> list[tuple[float, float]]:
    """(idle gap before it, latency in seconds) of each request of a paced run that found the system idle.

    The first request opens the connection, and one intended before the request ahead of it had finished
    queued behind it instead of finding the system idle: a connection opening that took ~5 ms once held
    up a whole run of 0.1 ms gaps, which then came out as no gap at all with 5 ms of latency, and the
    monotone fit spread that over every gap (0.4-0.8 ms on all of them). All of them when none found it idle
    (`measure_overhead` then runs it again, and leaves the gap out if none does again: one opening took 7 ms,
    and 16 requests 0.1 ms apart never caught up; mobilenet_v2's 0.1 ms run once left no gap twice, and
    its 0.66 ms of queueing, pooled, became the penalty at every gap: +25 % at p50 without batching).
    """
    recs = sorted(result.requests, key=lambda r: r.intended_s)
    pairs = [(b.intended_s - (a.intended_s + a.latency_ms / 1e3), b.latency_ms / 1e3) for a, b in pairwise(recs)]
    return [p for p in pairs if p[0] > 0] or pairs


def paced_gap_s(result: RunResult) -> float:
    """The median time from a response to the next intended send of a paced run: what the system sat idle."""
    gaps = [gap for gap, _ in _paced_pairs(result)]
    return max(0.0, float(np.median(gaps))) if gaps else 0.0


def paced_latencies(result: RunResult) -> npt.NDArray[np.float64]:
    """A paced run's latencies in seconds, from each intended send (the client's timer lateness included)."""
    return np.array([latency for _, latency in _paced_pairs(result)], dtype=np.float64)


def _latencies(result: RunResult) -> npt.NDArray[np.float64]:
    """A closed-loop run's latencies in seconds, from each actual send."""
    return np.array([r.service_ms for r in result.requests], dtype=np.float64) / 1e3


def _main_thread_cpu_s(pid: int) -> float:
    """CPU seconds of the process's main thread (the event loop), from /proc: nanoseconds from schedstat
    where the kernel keeps it (the clock ticks of stat are 10 ms, too coarse for a short run)."""
    try:
        return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
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
