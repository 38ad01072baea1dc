"""The Driver that runs load points with `inferlab bench`'s load generator (one LoadPlan per window)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from inferlab.experiments.points import LoadPoint
from inferlab.loadgen.launch import run
from inferlab.loadgen.plan import LoadPlan, RateShape, Target, ThinkTime
from inferlab.loadgen.result import RunResult


@dataclass(frozen=True, slots=True)
class LoadgenDriver:
    """Turns a LoadPoint into a LoadPlan on a fixed target and runs it; `labels` go into every result's config.

    Open-loop points may open up to `max_connections` connections, so a slow server queues requests on the
    client side (counted in latency from the intended time) rather than capping the offered rate.

    Example:
        >>> driver = LoadgenDriver(Target(url, "POST", bodies=(body,)), labels={"series": "REST"})
        >>> driver.run(LoadPoint(rate=100.0), duration_s=5.0, warmup_s=1.0).latency.percentiles_ms["99"]
    """

    target: Target
    timeout_s: float = 20.0
    max_connections: int = 256
    record_requests: bool = False
    processes: int = 1
    seed: int = 0
    labels: dict[str, Any] = dataclasses.field(default_factory=dict)

    def plan(self, point: LoadPoint, duration_s: float, warmup_s: float) -> LoadPlan:
        open_loop = point.mode == "open"
        return LoadPlan(
            target=self.target,
            mode=point.mode,
            concurrency=self.max_connections if open_loop else point.concurrency,
            requests=None,
            duration_s=duration_s + warmup_s,
            warmup_s=warmup_s,
            arrivals=RateShape(((math.inf, point.rate, point.rate),), poisson=point.arrivals == "poisson")
            if open_loop else None,
            think=ThinkTime("fixed", point.think_s, point.think_s) if point.think_s and not open_loop else None,
            timeout_s=self.timeout_s,
            seed=self.seed,
            processes=self.processes,
            record_requests=self.record_requests,
        )

    def run(self, point: LoadPoint, duration_s: float, warmup_s: float) -> RunResult:
        result = run(self.plan(point, duration_s, warmup_s))
        config = {**result.config, **self.labels, "load": point.as_dict()}
        return dataclasses.replace(result, config=config)
