"""Profile: measured service time per (batch size, instances x threads) + fixed overheads; record/load/save.

A profile is measured once per model and machine and then drives every prediction. Service times are
measured in process, straight on onnxruntime sessions built the way the server builds them, with
`instances` sessions running at once so that contention for the cores is part of the measurement.
The server's own per-request cost (HTTP, JSON) is measured separately (`overhead.py`). The JSON
layout is documented in docs/perfmodel.md.

Example::

    profile = record_service_times(Path("repo/mobilenet_v2/1/model.onnx"), settings=[(1, 1), (2, 1)])
    profile.save(Path("mobilenet.profile.json"))
    Profile.load(Path("mobilenet.profile.json")).service_times(instances=2, threads=1).mean(8)
"""

from __future__ import annotations

import gc
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson

from inferlab.config import ModelConfig, RuntimeOptions
from inferlab.errors import InvalidInput
from inferlab.perfmodel.cores import CpuDemand
from inferlab.perfmodel.service import ServiceTimes
from inferlab.perfmodel.simulator import Overhead
from inferlab.repository.store import MODEL_FILE
from inferlab.runtimes.onnx import OnnxRuntime
from inferlab.tensors import Array, TensorSpec

FORMAT = "inferlab-profile/1"
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32)
DEFAULT_SETTINGS = ((1, 1), (1, 2), (2, 1))  # (instances, threads): instances x threads <= 2 cores
PROTOCOLS = ("v2-json", "v2-binary")  # whose overhead `inferlab profile` measures
DYNAMIC_DIM = 32  # non-batch dynamic dimensions (sequence length) are profiled at this size
PASSES = 3  # each (setting, batch size) point is timed in this many interleaved slices
_STALL_S = 0.001  # a call off its CPU longer than this (and for most of the call) was preempted: not kept

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ProtocolOverhead:
    """The server's per-request cost for one protocol, outside the model.

    `serial_s` is CPU time on the server's event loop per request (it queues: it bounds throughput);
    `delay_s` is the rest of the unloaded latency beyond the model (client, kernel, loopback), which
    adds to every request but does not queue. `idle_penalty_s[k]` is the extra latency of a request
    sent after the system sat idle for `idle_gap_s[k]`, of which `idle_loop_s[k]` is more event-loop CPU
    (a loop that slept that long runs from cold caches): that part queues, the rest is delay.
    `latency_s` keeps the raw back-to-back samples.
    A request that finds the loop idle costs it `wake_s` more (waking it: one epoll round); one that
    arrives while a round runs waits for the next round, which costs `rewake_s` (no sleep to wake from;
    requests ready together share it). `client_cpu_s` is the load generator's CPU per
    request (it shares the cores when it runs on this machine); `handoff_s` is how long an instance sat
    idle per batch with requests waiting (results back through the loop, the next batch from it).
    `reply_share` of the loop's work on a request comes after its batch (encoding and writing the reply).
    `infer_scale` is how much slower one instance computes in the saturated server than alone (its
    Server-Timing `infer` span there over the same server's back to back on one connection, which matches
    the in-process time; 1 when the loop is the busier station): the server's loop and the client stream
    bodies through the same caches while it computes.
    """

    serial_s: float
    delay_s: float
    latency_s: tuple[float, ...] = ()
    idle_gap_s: tuple[float, ...] = ()
    idle_penalty_s: tuple[float, ...] = ()
    client_cpu_s: float = 0.0
    handoff_s: float = 0.0
    wake_s: float = 0.0
    loop_busy: float = 1.0  # the loop's utilisation when 16 connections saturated the server
    idle_loop_s: tuple[float, ...] = ()  # more loop CPU per request after each idle gap (part of idle_penalty_s)
    reply_share: float = 0.0  # the share of the loop's work per request done after the model (the reply)
    rewake_s: float = 0.0  # loop CPU of a round straight after another (0 in older profiles)
    infer_scale: float = 1.0  # one instance's time in the server over its time in process (1 in older profiles)

    def as_overhead(self) -> Overhead:
        jitter = np.asarray(self.latency_s) - float(np.median(self.latency_s)) if self.latency_s else np.zeros(0)
        cold = self.idle_loop_s if len(self.idle_loop_s) == len(self.idle_gap_s) else (0.0,) * len(self.idle_gap_s)
        delay = tuple(max(0.0, p - c) for p, c in zip(self.idle_penalty_s, cold, strict=True))
        return Overhead(self.serial_s, self.delay_s, self.wake_s, self.idle_gap_s, delay,
                        tuple(jitter.tolist()), self.handoff_s, cold if any(cold) else (), self.reply_share,
                        self.rewake_s)


@dataclass(frozen=True, slots=True)
class Profile:
    """What one model costs on one machine; see docs/perfmodel.md for the JSON form."""

    model: str
    inputs: tuple[TensorSpec, ...]
    service_s: dict[str, dict[int, tuple[float, ...]]]  # "INSTANCESxTHREADS" -> batch size -> samples
    overhead: dict[str, ProtocolOverhead] = field(default_factory=dict)  # protocol -> overhead
    machine: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> list[tuple[int, int]]:
        """The measured (instances, threads) pairs."""
        return sorted(_parse_setting(k) for k in self.service_s)

    def service_times(self, instances: int, threads: int) -> ServiceTimes:
        """Per-instance service times with `instances` running at once, each with `threads` threads."""
        key = setting_key(instances, threads)
        if key not in self.service_s:
            raise InvalidInput(
                f"profile of '{self.model}' has no measurement for {instances} instance(s) x {threads} thread(s); "
                f"measured: {', '.join(sorted(self.service_s))} (re-run `inferlab profile --settings`)"
            )
        return ServiceTimes.from_samples(self.service_s[key])

    def cpu_demand(self, protocol: str, threads: int = 1, workers: int = 1, client_on_host: bool = True
                   ) -> CpuDemand | None:
        """Who shares the cores with the model (None without a server measurement: no sharing modelled)."""
        entry = self.overhead.get(protocol)
        if entry is None:
            return None
        cores = int(self.machine.get("cpus") or os.cpu_count() or 1)
        overhead = entry.as_overhead()
        return CpuDemand(cores, entry.serial_s, entry.client_cpu_s if client_on_host else 0.0, threads, workers,
                         entry.wake_s, entry.loop_busy, overhead.idle_gap_s if overhead.idle_loop_s else (),
                         overhead.idle_loop_s)

    def overhead_for(self, protocol: str) -> Overhead:
        """The protocol's overhead, or none when the profile skipped the server (in-process predictions)."""
        entry = self.overhead.get(protocol)
        return entry.as_overhead() if entry else Overhead()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": self.model,
            "inputs": [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)} for s in self.inputs],
            "service_s": {k: {str(b): list(v) for b, v in sorted(per.items())} for k, per in self.service_s.items()},
            "overhead": {
                p: {"serial_s": o.serial_s, "delay_s": o.delay_s, "latency_s": list(o.latency_s),
                    "idle_gap_s": list(o.idle_gap_s), "idle_penalty_s": list(o.idle_penalty_s),
                    "client_cpu_s": o.client_cpu_s, "handoff_s": o.handoff_s, "wake_s": o.wake_s,
                    "loop_busy": o.loop_busy, "idle_loop_s": list(o.idle_loop_s),
                    "reply_share": o.reply_share, "rewake_s": o.rewake_s, "infer_scale": o.infer_scale}
                for p, o in self.overhead.items()
            },
            "machine": self.machine,
        }

    @classmethod
    def from_json(cls, raw: Any, where: str = "profile") -> Profile:
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise InvalidInput(f"{where}: not an inferlab profile (expected \"format\": \"{FORMAT}\")")
        try:
            return cls(
                model=str(raw["model"]),
                inputs=tuple(TensorSpec(i["name"], i["datatype"], tuple(i["shape"])) for i in raw["inputs"]),
                service_s={
                    k: {int(b): tuple(float(x) for x in v) for b, v in per.items()}
                    for k, per in raw["service_s"].items()
                },
                overhead={
                    p: ProtocolOverhead(float(o["serial_s"]), float(o["delay_s"]), tuple(o.get("latency_s", ())),
                                        tuple(o.get("idle_gap_s", ())), tuple(o.get("idle_penalty_s", ())),
                                        float(o.get("client_cpu_s", 0.0)), float(o.get("handoff_s", 0.0)),
                                        float(o.get("wake_s", 0.0)), float(o.get("loop_busy", 1.0)),
                                        tuple(float(x) for x in o.get("idle_loop_s", ())),
                                        float(o.get("reply_share", 0.0)), float(o.get("rewake_s", 0.0)),
                                        float(o.get("infer_scale", 1.0)))
                    for p, o in raw.get("overhead", {}).items()
                },
                machine=dict(raw.get("machine", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"{where}: malformed profile: {exc!r}") from None

    def save(self, path: Path) -> None:
        path.write_bytes(orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2))

    @classmethod
    def load(cls, path: Path) -> Profile:
        try:
            raw = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise InvalidInput(f"profile {path}: cannot read it as JSON: {exc}") from None
        return cls.from_json(raw, where=f"profile {path}")


def setting_key(instances: int, threads: int) -> str:
    return f"{instances}x{threads}"


def record_service_times(
    model_file: Path,
    name: str | None = None,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    settings: Sequence[tuple[int, int]] = DEFAULT_SETTINGS,
    seconds_per_point: float = 1.0,
    max_samples: int = 2000,
    progress: Progress | None = None,
) -> Profile:
    """Time the model at each batch size and (instances, threads) setting, each point for about
    `seconds_per_point` (at least 3 calls per instance, at most `max_samples`)."""
    if not model_file.is_file():
        raise InvalidInput(f"model file {model_file} does not exist")
    with tempfile.TemporaryDirectory(prefix="inferlab-profile-") as tmp:
        version_dir = Path(tmp)
        (version_dir / MODEL_FILE).symlink_to(model_file.resolve())
        service: dict[str, dict[int, tuple[float, ...]]] = {}
        inputs: tuple[TensorSpec, ...] = ()
        for instances, threads in settings:
            config = ModelConfig(runtime=RuntimeOptions(intra_op_threads=threads, inter_op_threads=1))
            runtimes = [OnnxRuntime.load(version_dir, config) for _ in range(instances)]
            inputs = runtimes[0].inputs
            per_size: dict[int, list[float]] = {b: [] for b in batch_sizes}
            feeds = {b: example_inputs(inputs, b) for b in batch_sizes}
            for _ in range(PASSES):  # sizes interleaved: a noisy moment on a shared machine hits all alike
                for b in batch_sizes:
                    if progress:
                        progress(f"{name or model_file.stem}: {instances} instance(s) x {threads} thread(s), batch {b}")
                    per_size[b].extend(_time_concurrently(runtimes, feeds[b], seconds_per_point / PASSES,
                                                          max(3, max_samples // PASSES)))
            service[setting_key(instances, threads)] = {b: tuple(sorted(v)) for b, v in per_size.items()}
            for rt in runtimes:
                rt.close()
    return Profile(model=name or model_file.stem, inputs=tuple(_per_row(s) for s in inputs),
                   service_s=service, machine=machine_facts())


def example_inputs(specs: Sequence[TensorSpec], batch_size: int) -> dict[str, Array]:
    """Seeded random inputs matching the signature; floats ~N(0,1), integers small and non-negative."""
    rng = np.random.default_rng(0)
    feed: dict[str, Array] = {}
    for spec in specs:
        shape = (batch_size, *(d if d > 0 else DYNAMIC_DIM for d in spec.shape[1:]))
        dtype = spec.dtype
        if dtype.kind in "iub":
            feed[spec.name] = rng.integers(0, 100, shape).astype(dtype)
        else:
            feed[spec.name] = rng.standard_normal(shape).astype(dtype)
    return feed


def machine_facts() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _per_row(spec: TensorSpec) -> TensorSpec:
    """The signature with dynamic non-batch dims fixed to what was profiled: what a client sends per row."""
    return TensorSpec(spec.name, spec.datatype, tuple(d if d > 0 else DYNAMIC_DIM for d in spec.shape[1:]))


def _time_concurrently(runtimes: list[OnnxRuntime], feed: dict[str, Array], seconds: float, max_samples: int
                       ) -> list[float]:
    """Each runtime on its own thread, all timed over the same window; onnxruntime releases the GIL.

    A call whose thread was off its CPU for most of it (over `_STALL_S` and over half the call) was
    preempted by other work on this shared machine and is left out: such stalls come with time, not
    with calls, so a sample would make the simulation stall a 10 us model once every ~2,000 calls (one
    profile held a 35 ms call among 2,000 of 10 us, and predicted a p99 of 30 ms against 3 ms measured).
    The tail that stalls add to every request is in the measured jitter of the unloaded latency instead.
    """
    samples: list[list[float]] = [[] for _ in runtimes]
    start = threading.Barrier(len(runtimes))
    per_instance = max(3, max_samples // len(runtimes))

    def work(i: int) -> None:
        rt, out = runtimes[i], samples[i]
        rt.infer(feed, None)  # warm-up: first calls allocate
        start.wait()
        stop = time.perf_counter() + seconds
        calls: list[tuple[float, float]] = []  # (wall, off its CPU)
        while len(calls) < per_instance and (len(calls) < 3 or time.perf_counter() < stop):
            c0 = time.thread_time()
            t0 = time.perf_counter()
            rt.infer(feed, None)
            wall = time.perf_counter() - t0
            calls.append((wall, wall - (time.thread_time() - c0)))
        out.extend(unstalled(calls))

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(runtimes))]
    gc.collect()  # this process's garbage collections are not the model's time (one took 35 ms on a 10 us call)
    gc.disable()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        gc.enable()
    return sorted(x for s in samples for x in s)


def unstalled(calls: Sequence[tuple[float, float]]) -> list[float]:
    """The wall times of the calls (wall, off-CPU seconds) that were not preempted for most of their time;
    all of them when fewer than 3 remain (a machine that busy is what there is to measure)."""
    kept = [wall for wall, off in calls if off <= _STALL_S or off <= wall / 2]
    return kept if len(kept) >= 3 else [wall for wall, _ in calls]


def _parse_setting(key: str) -> tuple[int, int]:
    instances, _, threads = key.partition("x")
    return int(instances), int(threads)
