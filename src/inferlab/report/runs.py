"""What a report needs to know about each run: its series, its offered load and its think time.

A RunResult's `config` is the load plan as run. Sweeps and experiments add a "load" mapping (see
experiments/points.py) and a "series" name; plain `inferlab bench` runs and imported runs are read from
the plan's own fields, so any result can be placed on a load axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inferlab.loadgen.result import RunResult


@dataclass(frozen=True, slots=True)
class RunView:
    """A run placed for plotting. `load` is the x value: users (closed loop) or offered rate (open loop)."""

    result: RunResult
    series: str
    mode: str
    concurrency: int
    rate: float
    think_s: float
    name: str  # unique within the report: series plus load

    @property
    def load(self) -> float:
        return self.rate if self.mode == "open" else float(self.concurrency)


def view(result: RunResult) -> RunView:
    config = result.config
    raw = config.get("load")
    load: dict[str, Any] = raw if isinstance(raw, dict) else {}
    mode = str(load.get("mode") or config.get("mode") or result.mode)
    concurrency = int(load.get("concurrency") or config.get("concurrency") or 0)
    rate = float(load.get("rate") or _plan_rate(config))
    think = float(load["think_s"]) if "think_s" in load else _plan_think(config)
    series = str(config.get("series") or _default_series(config))
    users = f"c={concurrency}" if concurrency else ""  # hey's CSV does not say how many users ran
    where = f"rate={rate:g}/s" if mode == "open" else users + (f" think={think:g}s" if think else "")
    return RunView(result, series, mode, concurrency, rate, think, f"{series} {where}".strip())


def views(results: Sequence[RunResult]) -> list[RunView]:
    """Views in a stable order (series, think time, load); repeated names get #2, #3 so legends stay apart."""
    placed = sorted((view(r) for r in results), key=lambda v: (v.series, v.think_s, v.mode, v.load))
    seen: dict[str, int] = {}
    out = []
    for v in placed:
        seen[v.name] = seen.get(v.name, 0) + 1
        if seen[v.name] > 1:
            v = RunView(v.result, v.series, v.mode, v.concurrency, v.rate, v.think_s, f"{v.name} #{seen[v.name]}")
        out.append(v)
    return out


def _plan_rate(config: dict[str, Any]) -> float:
    """A loadgen plan's rate is the first stage's start rate (constant-rate runs have one stage)."""
    arrivals = config.get("arrivals")
    if isinstance(arrivals, dict) and arrivals.get("stages"):
        return float(arrivals["stages"][0][1] or 0.0)
    return 0.0


def _plan_think(config: dict[str, Any]) -> float:
    think = config.get("think")
    return float(think.get("a_s", 0.0)) if isinstance(think, dict) else 0.0


def _default_series(config: dict[str, Any]) -> str:
    if config.get("tool"):
        return f"{config['tool']}: {config.get('source', '')}".strip()
    target = config.get("target")
    if isinstance(target, dict) and target.get("url"):
        return str(target["url"])
    return "run"
