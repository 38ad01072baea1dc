"""LoadPlan: target, mode (open/closed), rate or concurrency, n or duration, ramp, think time, timeout.

A plan is a frozen, picklable value: the CLI and the Python API build one, `runner.run(plan)` executes it,
and `RunResult.config` records it, so a run can be repeated from its result.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from inferlab.durations import parse_duration as parse_duration  # re-exported: the loadgen's callers use it
from inferlab.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Target:
    """Where requests go and what they carry. Several bodies are cycled in a seeded shuffled order."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    bodies: tuple[bytes, ...] = (b"",)
    keepalive: bool = True

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "https"

    @property
    def grpc(self) -> bool:
        """grpc://HOST:PORT/METHOD targets the V2 GRPCInferenceService; bodies are serialised messages."""
        return urlsplit(self.url).scheme == "grpc"

    @property
    def grpc_method(self) -> str:
        return urlsplit(self.url).path.strip("/") or "ModelInfer"

    def encode_requests(self) -> list[bytes]:
        """Every request as the exact bytes to write, built once so the hot path only writes."""
        if self.grpc:
            return list(self.bodies)
        parts = urlsplit(self.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        names = {name.lower() for name, _ in self.headers}
        head = [f"{self.method} {path} HTTP/1.1"]
        if "host" not in names:
            head.append(f"Host: {parts.netloc}")
        if "user-agent" not in names:
            head.append("User-Agent: inferlab-bench")
        if not self.keepalive:
            head.append("Connection: close")
        head.extend(f"{name}: {value}" for name, value in self.headers if name.lower() != "content-length")
        prefix = "\r\n".join(head)
        out = []
        for body in self.bodies:
            length = f"\r\nContent-Length: {len(body)}" if body or self.method in ("POST", "PUT", "PATCH") else ""
            out.append(f"{prefix}{length}\r\n\r\n".encode("latin-1") + body)
        return out


@dataclass(frozen=True, slots=True)
class RateShape:
    """A piecewise-linear total rate: stages of (duration_s, start_rate, end_rate); Poisson or evenly spaced.

    A constant rate is one stage; a ramp is a stage whose rates differ; INFless traces are steps.
    The last stage may last `math.inf`.
    """

    stages: tuple[tuple[float, float, float], ...]
    poisson: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class Timestamps:
    """Explicit intended send offsets (seconds from the start, sorted): trace replay."""

    offsets_s: npt.NDArray[np.float64]


Arrivals = RateShape | Timestamps


@dataclass(frozen=True, slots=True)
class ThinkTime:
    """A closed-loop user's pause after each response: fixed, exponential (mean) or uniform [low, high]."""

    kind: str = "fixed"
    a_s: float = 0.0
    b_s: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> ThinkTime:
        """"0.1", "exp:0.1", "uniform:0.05:0.2" (seconds)."""
        kind, _, rest = spec.partition(":") if ":" in spec else ("fixed", "", spec)
        try:
            values = [float(v) for v in rest.split(":")]
        except ValueError:
            raise InvalidInput(f"think time {spec!r}: expected SECONDS, exp:MEAN or uniform:LOW:HIGH") from None
        if kind not in ("fixed", "exp", "uniform") or len(values) != (2 if kind == "uniform" else 1):
            raise InvalidInput(f"think time {spec!r}: expected SECONDS, exp:MEAN or uniform:LOW:HIGH")
        if min(values) < 0:
            raise InvalidInput(f"think time {spec!r}: times must be >= 0")
        return cls(kind, values[0], values[-1])

    def sampler(self, rng: np.random.Generator) -> Any:
        """A zero-argument function returning the next pause in seconds."""
        if self.kind == "exp":
            return lambda: float(rng.exponential(self.a_s))
        if self.kind == "uniform":
            return lambda: float(rng.uniform(self.a_s, self.b_s))
        return lambda: self.a_s


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """One run. Closed loop: `concurrency` users; open loop: `arrivals` over at most `concurrency` connections.

    Exactly the requests asked for are sent with `requests` (no n % c remainder dropped); with `duration_s`
    the run stops scheduling at that time and waits (up to the timeout) for requests in flight.

    Example:
        >>> plan = LoadPlan(Target("http://127.0.0.1:8000/"), mode="open",
        ...                 arrivals=RateShape(((math.inf, 200.0, 200.0),), poisson=True), duration_s=10)
    """

    target: Target
    mode: str = "closed"
    concurrency: int = 50
    requests: int | None = 200
    duration_s: float | None = None
    arrivals: Arrivals | None = None
    per_user_rate: float = 0.0  # hey -q: each closed-loop user sends at most this many requests per second
    think: ThinkTime | None = None
    ramp_up_s: float = 0.0
    warmup_s: float = 0.0
    timeout_s: float = 20.0  # 0 = none
    seed: int = 0
    processes: int = 1
    record_requests: bool = False
    interval_s: float = 1.0
    max_lag_p99_ms: float = 5.0
    max_cpu_percent: float = 90.0
    argv: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        checks = [
            (self.mode in ("open", "closed"), f"mode {self.mode!r} is not 'open' or 'closed'"),
            (self.concurrency >= 1, f"concurrency {self.concurrency} is not >= 1"),
            (self.requests is None or self.requests >= 1, f"requests {self.requests} is not >= 1"),
            (self.duration_s is None or self.duration_s > 0, f"duration_s {self.duration_s} is not > 0"),
            (self.requests is not None or self.duration_s is not None or ends(self.arrivals),
             "give a request count or a duration"),
            (self.mode == "closed" or self.arrivals is not None, "an open-loop plan needs arrivals (a rate)"),
            (self.timeout_s >= 0, f"timeout_s {self.timeout_s} is not >= 0"),
            (self.processes >= 1, f"processes {self.processes} is not >= 1"),
            (self.warmup_s >= 0 and self.ramp_up_s >= 0, "warmup_s and ramp_up_s must be >= 0"),
            (self.per_user_rate >= 0, f"per_user_rate {self.per_user_rate} is not >= 0"),
            (self.interval_s > 0, f"interval_s {self.interval_s} is not > 0"),
            (urlsplit(self.target.url).scheme in ("http", "https", "grpc"),
             f"URL {self.target.url!r} is not http://, https:// or grpc://"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidInput(f"load plan: {message}")
        if self.processes > self.concurrency:
            raise InvalidInput(f"load plan: {self.processes} processes need at least as many connections (-c)")

    def describe(self) -> dict[str, Any]:
        """The plan as JSON-ready data for `RunResult.config` (bodies summarised, not copied)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "target":
                value = {"url": value.url, "method": value.method, "headers": [list(h) for h in value.headers],
                         "bodies": len(value.bodies), "body_bytes": [len(b) for b in value.bodies[:16]],
                         "keepalive": value.keepalive}
            elif isinstance(value, Timestamps):
                value = {"timestamps": int(value.offsets_s.size)}
            elif isinstance(value, RateShape):
                value = {"stages": [[_finite(x) for x in stage] for stage in value.stages], "poisson": value.poisson}
            elif isinstance(value, ThinkTime):
                value = dataclasses.asdict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def ends(arrivals: Arrivals | None) -> bool:
    """Whether a schedule ends by itself (a trace, or stages that are all finite)."""
    if isinstance(arrivals, Timestamps):
        return True
    return arrivals is not None and all(math.isfinite(stage[0]) for stage in arrivals.stages)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
